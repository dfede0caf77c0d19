package tunnel_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

func TestMain(m *testing.M) {
	tunneltest.MaybeRunAgent()
	os.Exit(m.Run())
}

// waitFor retries f until it succeeds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, f func() error) {
	t.Helper()
	clustertest.WaitFor(t, d, what, f)
}

// never asserts that f keeps failing for a while.
func never(t *testing.T, what string, f func() error) {
	t.Helper()
	for i := 0; i < 2; i++ {
		if err := f(); err == nil {
			t.Fatalf("%s: got through", what)
		}
	}
}

type peerKeys struct {
	priv wgtypes.Key
	peer profiles.Peer
}

func newPeer(t testing.TB, id, user, addr string) peerKeys {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return peerKeys{priv: k, peer: profiles.Peer{ID: id, UserID: user, Email: user + "@example.com", Device: "laptop",
		PublicKey: k.PublicKey().String(), Address: netip.MustParseAddr(addr), Profile: "eng",
		Issued: now.Add(-time.Minute), Expires: now.Add(time.Hour), SessionID: "s-" + id}}
}

func put(t *testing.T, a *tunneltest.Agent, key string, v any) uint64 {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return a.Must(t, tunneltest.Request{Op: "put", Key: key, Value: data}).Rev
}

// findEvent returns the first event match accepts; a flow event is
// searched tuple by tuple (audit.Event.FlowRecords).
func findEvent(evs []audit.Event, match func(e *audit.Event) bool) *audit.Event {
	evs = expandFlows(evs)
	for i := range evs {
		if match(&evs[i]) {
			return &evs[i]
		}
	}
	return nil
}

// expandFlows replaces every flow event by its tuples, one event each.
func expandFlows(evs []audit.Event) []audit.Event {
	out := make([]audit.Event, 0, len(evs))
	for i := range evs {
		if evs[i].IsFlow() {
			out = append(out, evs[i].FlowRecords()...)
		} else {
			out = append(out, evs[i])
		}
	}
	return out
}

func waitEvent(t *testing.T, a *tunneltest.Agent, what string, d time.Duration, match func(e *audit.Event) bool) *audit.Event {
	t.Helper()
	var got *audit.Event
	waitFor(t, what, d, func() error {
		evs := a.Must(t, tunneltest.Request{Op: "events"}).Events
		if got = findEvent(evs, match); got == nil {
			return fmt.Errorf("%d events, none matching", len(evs))
		}
		return nil
	})
	return got
}

func metricValue(t testing.TB, a *tunneltest.Agent, series string) float64 {
	t.Helper()
	text := a.Must(t, tunneltest.Request{Op: "metrics"}).Text
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

func findWireGuardGo(t testing.TB) string {
	for _, name := range []string{"wireguard-go", "wireguard"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	home, _ := os.UserHomeDir()
	for _, p := range []string{filepath.Join(home, "go", "bin", "wireguard")} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("needs the wireguard-go binary (go install golang.zx2c4.com/wireguard@v0.0.0-20260522210424-ecfc5a8d5446)")
	return ""
}

// wgQuickEnv prepares PATH for wg-quick: wireguard-go under that name and a
// resolvconf stub (DNS = needs one).
func wgQuickEnv(t testing.TB, wgGo string) []string {
	dir := t.TempDir()
	if err := os.Symlink(wgGo, filepath.Join(dir, "wireguard-go")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolvconf"), []byte("#!/bin/sh\ncat >/dev/null\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"PATH=" + dir + ":" + os.Getenv("PATH"), "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go"}
}

func engProfile(ports ...profiles.PortRange) profiles.Profile {
	return profiles.Profile{Name: "eng", MaxSession: time.Hour, MaxDevices: 5, DNS: []netip.Addr{netip.MustParseAddr("10.99.0.53")},
		Rules: []profiles.Rule{
			{CIDR: netip.MustParsePrefix("10.99.0.1/32"), Protocol: "tcp", Ports: ports},
			{CIDR: netip.MustParsePrefix("10.99.0.0/24"), Protocol: "udp", Ports: []profiles.PortRange{{From: 7002, To: 7002}}},
			{CIDR: netip.MustParsePrefix("10.99.0.2/32"), Protocol: "icmp"},
		}}
}

// topology is the shared test network: two gateways (s1, s2) of one
// cluster, three clients (c1 with wg-quick, c2 embedded, c3 with ferry up
// --embedded), a VPC.
type topology struct {
	net               *tunneltest.Net
	s1, s2, vpc       *tunneltest.Agent
	c1, c2, c3        *tunneltest.Agent
	c1ns, c2ns        string
	s1ns, s2ns        string
	c1if, c2if        string
	ferry             *tunneltest.Ferry // c3's
	srvKey            wgtypes.Key
	alice, bob, carol peerKeys
	profileVersion    uint64
}

func startTopology(t *testing.T) *topology {
	tunneltest.Require(t, "wg", "wg-quick", "sysctl", "nft", "nsenter")
	wgGo := findWireGuardGo(t)
	n := tunneltest.NewNet(t)
	tp := &topology{net: n}
	sw := n.NS("fsw")
	n.Must("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
	n.Must("ip", "-n", sw, "link", "set", "br0", "up")
	vpc := n.NS("fv")
	for _, lo := range []string{"10.99.0.1/32", "10.99.0.2/32", "10.98.0.1/32"} {
		n.Must("ip", "-n", vpc, "addr", "add", lo, "dev", "lo")
	}
	under := map[string]string{"fs1": "10.200.0.1/24", "fs2": "10.200.0.2/24", "fc1": "10.200.0.11/24", "fc2": "10.200.0.12/24", "fc3": "10.200.0.13/24"}
	ns := map[string]string{}
	for _, base := range []string{"fs1", "fs2", "fc1", "fc2", "fc3"} {
		ns[base] = n.NS(base)
		n.Veth(ns[base], "u0", under[base], sw, base, "")
		n.Must("ip", "-n", sw, "link", "set", base, "master", "br0")
	}
	for i, s := range []string{"fs1", "fs2"} {
		n.Veth(ns[s], "v0", fmt.Sprintf("10.201.%d.2/24", i+1), vpc, s, fmt.Sprintf("10.201.%d.1/24", i+1))
		n.Must("ip", "-n", ns[s], "route", "add", "10.98.0.0/15", "via", fmt.Sprintf("10.201.%d.1", i+1))
	}
	tp.c1ns, tp.c2ns, tp.s1ns, tp.s2ns = ns["fc1"], ns["fc2"], ns["fs1"], ns["fs2"]

	ca := clustertest.NewCA(t)
	caKey, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if tp.srvKey, err = wgtypes.GeneratePrivateKey(); err != nil {
		t.Fatal(err)
	}
	server := func(id, bind, iface string, boot bool) *tunneltest.ServerConfig {
		return &tunneltest.ServerConfig{NodeID: id, DataDir: filepath.Join(t.TempDir(), id), Bind: bind, Bootstrap: boot,
			CACert: ca.CertPEM(), CAKey: caKey, Interface: iface, PrivateKey: tp.srvKey.String(), Address: "100.64.0.1/16",
			PollInterval: 200 * time.Millisecond, DenyInterval: 200 * time.Millisecond, FlowWindow: time.Second,
			FlowActiveTimeout: 2 * time.Second, Kernel: *kernelDevice}
	}
	tp.vpc = tunneltest.StartAgent(t, n, vpc, "vpc", tunneltest.AgentConfig{Echo: []string{
		"tcp:0.0.0.0:7001", "udp:10.99.0.1:7002", "udp:10.99.0.1:7003", "tcp:0.0.0.0:7003", "sink:0.0.0.0:7004"}})
	tp.s1 = tunneltest.StartAgent(t, n, ns["fs1"], "s1", tunneltest.AgentConfig{Server: server("n1", "10.200.0.1:7946", n.Name("fw1-"), true)})
	tp.s1.Must(t, tunneltest.Request{Op: "leader"})
	tp.s2 = tunneltest.StartAgent(t, n, ns["fs2"], "s2", tunneltest.AgentConfig{Server: server("n2", "10.200.0.2:7946", n.Name("fw2-"), false)})
	tp.s1.Must(t, tunneltest.Request{Op: "addvoter", ID: "n2", Addr: "10.200.0.2:7946"})
	requireKernelLink(t, ns["fs1"], n.Name("fw1-"))
	requireKernelLink(t, ns["fs2"], n.Name("fw2-"))
	for _, s := range []string{"fs1", "fs2"} {
		// Short conntrack timeouts, so DESTROY events come within the test.
		n.Sysctl(ns[s], "net.netfilter.nf_conntrack_tcp_timeout_time_wait", "1")
		n.Sysctl(ns[s], "net.netfilter.nf_conntrack_tcp_timeout_close_wait", "1")
		n.Sysctl(ns[s], "net.netfilter.nf_conntrack_tcp_timeout_fin_wait", "1")
		n.Sysctl(ns[s], "net.netfilter.nf_conntrack_udp_timeout", "1")
		n.Sysctl(ns[s], "net.netfilter.nf_conntrack_icmp_timeout", "1")
	}

	prof := engProfile(profiles.PortRange{From: 7001, To: 7001}, profiles.PortRange{From: 7004, To: 7004})
	tp.profileVersion = put(t, tp.s1, profiles.ProfilePrefix+"eng", prof)
	prof.Version = tp.profileVersion
	tp.alice = newPeer(t, "pa", "alice", "100.64.0.11")
	tp.bob = newPeer(t, "pb", "bob", "100.64.0.12")
	tp.carol = newPeer(t, "pc", "carol", "100.64.0.13")
	for _, p := range []*peerKeys{&tp.alice, &tp.bob, &tp.carol} {
		p.peer.ProfileVersion = tp.profileVersion
		put(t, tp.s1, profiles.PeerPrefix+p.peer.ID, p.peer)
	}

	// c1: the issued config, brought up by wg-quick and wireguard-go.
	tp.c1 = tunneltest.StartAgent(t, n, ns["fc1"], "c1", tunneltest.AgentConfig{Echo: []string{"tcp:0.0.0.0:7001"}})
	tp.c1if = n.Name("fq")
	conf := profiles.RenderConfig(tp.alice.peer, prof, profiles.Server{PublicKey: tp.srvKey.PublicKey().String(), Endpoint: "10.200.0.1:51820"}, tp.alice.priv.String())
	confPath := filepath.Join(t.TempDir(), tp.c1if+".conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := wgQuickEnv(t, wgGo)
	if out, err := n.In(ns["fc1"], env, "wg-quick", "up", confPath); err != nil {
		t.Fatalf("wg-quick up: %v\n%s\n%s", err, out, conf)
	}
	t.Cleanup(func() { n.In(ns["fc1"], env, "wg-quick", "down", confPath) })

	// c2: the embedded path, routing more than its profile into the tunnel
	// (another client, a disallowed CIDR) to test the server side.
	tp.c2 = tunneltest.StartAgent(t, n, ns["fc2"], "c2", tunneltest.AgentConfig{})
	tp.c2if = n.Name("fe")
	tp.c2.Must(t, tunneltest.Request{Op: "wgup", WG: &tunneltest.WGClient{Interface: tp.c2if, PrivateKey: tp.bob.priv.String(),
		Address: "100.64.0.12", ServerKey: tp.srvKey.PublicKey().String(), Endpoint: "10.200.0.1:51820",
		AllowedIPs: []string{"10.99.0.0/24", "10.98.0.0/16", "100.64.0.0/16"}}})

	// c3: the issued config in a config directory as ferry login leaves
	// it, brought up by the real ferry up --embedded.
	tp.c3 = tunneltest.StartAgent(t, n, ns["fc3"], "c3", tunneltest.AgentConfig{})
	dir := ferryConfigDir(t, tp.carol, profiles.RenderConfig(tp.carol.peer, prof,
		profiles.Server{PublicKey: tp.srvKey.PublicKey().String(), Endpoint: "10.200.0.1:51820"}, tp.carol.priv.String()))
	tp.ferry = tunneltest.StartFerry(t, n, ns["fc3"], tunneltest.BuildFerry(t), dir)
	if out, err := tp.ferry.Run("up", "--embedded"); err != nil {
		t.Fatalf("ferry up --embedded: %v\n%s\n%s", err, out, tp.ferry.Log())
	}
	return tp
}

// ferryConfigDir writes what ferry login leaves for a peer: its state
// and its config with the private key, each 0600 in a 0700 directory.
func ferryConfigDir(t *testing.T, p peerKeys, conf string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ferry")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// ferry's state.json (cmd/ferry/state.go), the peer as the API sends
	// it (cmd/internal/wire).
	st, err := json.Marshal(map[string]any{
		"server": "https://vpn.example.com",
		"device": p.peer.Device,
		"peer": map[string]any{"id": p.peer.ID, "user_id": p.peer.UserID, "device": p.peer.Device, "public_key": p.peer.PublicKey,
			"address": p.peer.Address.String(), "profile": p.peer.Profile, "profile_version": p.peer.ProfileVersion,
			"issued": p.peer.Issued, "expires": p.peer.Expires, "state": "active"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"state.json": st, "ferry0.conf": []byte(conf)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// moveTo sends c2's tunnel to another gateway, as a load balancer
// re-hash does: c2 talks to the new node, and nothing of the old one
// reaches it any more (WireGuard would roam back to a node it hears from).
func (tp *topology) moveTo(from, to string) {
	n := tp.net
	n.Must("ip", "netns", "exec", tp.c2ns, "nft", "add table ip lb; add chain ip lb in { type filter hook input priority 0; }; flush chain ip lb in; add rule ip lb in ip saddr "+from+" udp sport 51820 drop")
	n.Must("wg", "set", tp.c2if, "peer", tp.srvKey.PublicKey().String(), "endpoint", to+":51820")
}

func probe(a *tunneltest.Agent, proto, addr string) func() error {
	return func() error {
		_, err := a.Do(tunneltest.Request{Op: "probe", Proto: proto, Addr: addr, Timeout: 500 * time.Millisecond})
		return err
	}
}

func pingFn(a *tunneltest.Agent, addr string) func() error {
	return func() error {
		_, err := a.Do(tunneltest.Request{Op: "ping", Addr: addr, Timeout: 500 * time.Millisecond})
		return err
	}
}
