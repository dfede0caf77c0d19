package tunnel_test

import (
	"fmt"
	"net/netip"
	"os"
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

// pool6 is the dual-stack tests' IPv6 client pool.
var pool6 = netip.MustParsePrefix("fd66:6572:7279::/96")

// dualPeer is a peer of the dual-stack pool.
func dualPeer(t testing.TB, id, user, addr string) peerKeys {
	p := newPeer(t, id, user, addr)
	p.peer.Address6 = profiles.Address6(pool6, p.peer.Address)
	return p
}

// TestDataPlaneIPv6 runs a dual-stack gateway with a wg-quick client
// (whose endpoint is the node's IPv6 address) and a ferry up client, a VPC
// router and a service behind a narrower link, and shows IPv6 end to end:
// allowed and refused destinations, forged sources, flow records, PMTU
// discovery through the tunnel and revocation.
func TestDataPlaneIPv6(t *testing.T) {
	tunneltest.Require(t, "wg", "wg-quick", "sysctl", "nft", "nsenter")
	wgGo := findWireGuardGo(t)
	n := tunneltest.NewNet(t)
	sw := n.NS("f6sw")
	n.Must("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
	n.Must("ip", "-n", sw, "link", "set", "br0", "up")
	ns := map[string]string{}
	under := map[string][2]string{"f6s1": {"10.210.0.1/24", "fd00:210::1/64"}, "f6c1": {"10.210.0.11/24", "fd00:210::11/64"},
		"f6c3": {"10.210.0.13/24", "fd00:210::13/64"}}
	for _, base := range []string{"f6s1", "f6c1", "f6c3"} {
		ns[base] = n.NS(base)
		n.Veth(ns[base], "u0", under[base][0], sw, base, "")
		n.Must("ip", "-n", ns[base], "addr", "add", under[base][1], "dev", "u0", "nodad")
		n.Must("ip", "-n", sw, "link", "set", base, "master", "br0")
	}
	// The VPC: a router with services on its loopback, and a far network
	// behind a 1300-byte link, so that full-size tunnel packets need
	// Packet Too Big to come back through the tunnel.
	vpc, far := n.NS("f6v"), n.NS("f6f")
	for _, lo := range []string{"10.99.0.1/32", "fd99::1/128", "fd98::1/128"} {
		n.Must("ip", "-n", vpc, "addr", "add", lo, "dev", "lo")
	}
	n.Veth(ns["f6s1"], "v0", "10.211.1.2/24", vpc, "s1", "10.211.1.1/24")
	n.Must("ip", "-n", ns["f6s1"], "addr", "add", "fd00:211::2/64", "dev", "v0", "nodad")
	n.Must("ip", "-n", vpc, "addr", "add", "fd00:211::1/64", "dev", "s1", "nodad")
	n.Must("ip", "-n", ns["f6s1"], "route", "add", "10.99.0.0/24", "via", "10.211.1.1")
	n.Must("ip", "-n", ns["f6s1"], "-6", "route", "add", "fd90::/12", "via", "fd00:211::1")
	n.Veth(vpc, "f0", "", far, "v0", "")
	n.Must("ip", "-n", vpc, "link", "set", "f0", "mtu", "1300")
	n.Must("ip", "-n", vpc, "addr", "add", "fd00:212::1/64", "dev", "f0", "nodad")
	n.Must("ip", "-n", far, "addr", "add", "fd00:212::2/64", "dev", "v0", "nodad")
	n.Must("ip", "-n", far, "addr", "add", "fd97::1/128", "dev", "lo")
	n.Must("ip", "-n", vpc, "-6", "route", "add", "fd97::/64", "via", "fd00:212::2")
	n.Must("ip", "-n", far, "-6", "route", "add", "default", "via", "fd00:212::1")
	n.Sysctl(vpc, "net.ipv6.conf.all.forwarding", "1")
	for _, k := range []string{"time_wait", "close_wait", "fin_wait"} {
		n.Sysctl(ns["f6s1"], "net.netfilter.nf_conntrack_tcp_timeout_"+k, "1")
	}

	ca := clustertest.NewCA(t)
	caKey, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	tunneltest.StartAgent(t, n, vpc, "vpc6", tunneltest.AgentConfig{Echo: []string{"tcp:[::]:7001", "tcp:[::]:7003", "sink:[::]:7004"}})
	tunneltest.StartAgent(t, n, far, "far6", tunneltest.AgentConfig{Echo: []string{"sink:[::]:7005"}})
	s1 := tunneltest.StartAgent(t, n, ns["f6s1"], "s1", tunneltest.AgentConfig{Server: &tunneltest.ServerConfig{NodeID: "n1",
		DataDir: filepath.Join(t.TempDir(), "n1"), Bind: "10.210.0.1:7946", Bootstrap: true, CACert: ca.CertPEM(), CAKey: caKey,
		Interface: n.Name("f6w-"), PrivateKey: srvKey.String(), Address: "100.64.0.1/16", Pool6: pool6.String(),
		PollInterval: 200 * time.Millisecond, DenyInterval: 200 * time.Millisecond, FlowWindow: time.Second, Kernel: *kernelDevice}})
	s1.Must(t, tunneltest.Request{Op: "leader"})

	prof := profiles.Profile{Name: "eng", MaxSession: time.Hour, MaxDevices: 5, Rules: []profiles.Rule{
		{CIDR: netip.MustParsePrefix("fd99::1/128"), Protocol: "tcp", Ports: []profiles.PortRange{{From: 7001, To: 7001}, {From: 7004, To: 7004}}},
		{CIDR: netip.MustParsePrefix("fd99::1/128"), Protocol: "icmp"},
		{CIDR: netip.MustParsePrefix("fd97::/64"), Protocol: "tcp", Ports: []profiles.PortRange{{From: 7005, To: 7005}}},
		{CIDR: netip.MustParsePrefix("10.99.0.1/32"), Protocol: "tcp", Ports: []profiles.PortRange{{From: 7001, To: 7001}}},
	}}
	prof.Version = put(t, s1, profiles.ProfilePrefix+"eng", prof)
	alice, carol := dualPeer(t, "pa6", "alice", "100.64.0.11"), dualPeer(t, "pc6", "carol", "100.64.0.13")
	for _, p := range []*peerKeys{&alice, &carol} {
		p.peer.ProfileVersion = prof.Version
		put(t, s1, profiles.PeerPrefix+p.peer.ID, p.peer)
	}

	// c1: the rendered dual-stack profile with wg-quick, reaching the node
	// over IPv6.
	c1 := tunneltest.StartAgent(t, n, ns["f6c1"], "c1", tunneltest.AgentConfig{})
	c1if := n.Name("f6q")
	srvAddrs := []netip.Addr{netip.MustParseAddr("100.64.0.1"), profiles.Address6(pool6, netip.MustParseAddr("100.64.0.1"))}
	conf := profiles.RenderConfig(alice.peer, prof, profiles.Server{PublicKey: srvKey.PublicKey().String(), Endpoint: "[fd00:210::1]:51820",
		Addresses: srvAddrs}, alice.priv.String())
	if !strings.Contains(conf, "Address = 100.64.0.11/32, fd66:6572:7279::6440:b/128\n") || !strings.Contains(conf, "fd99::1/128") {
		t.Fatalf("rendered profile is not dual-stack:\n%s", conf)
	}
	confPath := filepath.Join(t.TempDir(), c1if+".conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := wgQuickEnv(t, wgGo)
	if out, err := n.In(ns["f6c1"], env, "wg-quick", "up", confPath); err != nil {
		t.Fatalf("wg-quick up: %v\n%s\n%s", err, out, conf)
	}
	t.Cleanup(func() { n.In(ns["f6c1"], env, "wg-quick", "down", confPath) })

	// c3: the same kind of profile brought up by ferry up --embedded.
	c3 := tunneltest.StartAgent(t, n, ns["f6c3"], "c3", tunneltest.AgentConfig{})
	dir := ferryConfigDir(t, carol, profiles.RenderConfig(carol.peer, prof,
		profiles.Server{PublicKey: srvKey.PublicKey().String(), Endpoint: "10.210.0.1:51820", Addresses: srvAddrs}, carol.priv.String()))
	fy := tunneltest.StartFerry(t, n, ns["f6c3"], tunneltest.BuildFerry(t), dir)
	if out, err := fy.Run("up", "--embedded"); err != nil {
		t.Fatalf("ferry up --embedded: %v\n%s\n%s", err, out, fy.Log())
	}

	t.Run("allowed IPv6 service reachable with wg-quick and ferry up", func(t *testing.T) {
		waitFor(t, "c1 (wg-quick, IPv6 endpoint) tcp [fd99::1]:7001", 15*time.Second, probe(c1, "tcp", "[fd99::1]:7001"))
		waitFor(t, "c1 tcp 10.99.0.1:7001 (the IPv4 side of the same profile)", 5*time.Second, probe(c1, "tcp", "10.99.0.1:7001"))
		waitFor(t, "c3 (ferry up) tcp [fd99::1]:7001", 15*time.Second, probe(c3, "tcp", "[fd99::1]:7001"))
		waitFor(t, "c1 ICMPv6 echo to fd99::1", 5*time.Second, pingFn(c1, "fd99::1"))
		never(t, "c3 ICMPv6 echo to fd98::1 (not routed, not allowed)", pingFn(c3, "fd98::1"))
	})

	t.Run("forbidden IPv6 port and address refused", func(t *testing.T) {
		// Route more than the profile into the tunnel, to test the server.
		n.Must("wg", "set", c1if, "peer", srvKey.PublicKey().String(), "allowed-ips", strings.Join([]string{
			"10.99.0.1/32", "100.64.0.1/32", "fd99::1/128", "fd97::/64", "fd98::/64", srvAddrs[1].String() + "/128"}, ","))
		n.Must("ip", "-n", ns["f6c1"], "-6", "route", "add", "fd98::/64", "dev", c1if)
		never(t, "c1 tcp [fd99::1]:7003 (port not allowed)", probe(c1, "tcp", "[fd99::1]:7003"))
		never(t, "c1 tcp [fd98::1]:7001 (address not allowed)", probe(c1, "tcp", "[fd98::1]:7001"))
		waitFor(t, "policy drops counted", 5*time.Second, func() error {
			if v := metricValue(t, s1, `ferry_tunnel_drops_total{reason="policy"}`); v == 0 {
				return fmt.Errorf("no policy drops counted")
			}
			return nil
		})
	})

	t.Run("forged IPv6 source gets nothing through", func(t *testing.T) {
		// c1 sends with carol's IPv6 address: the node's cryptokey routing
		// drops it (alice's key owns only her /32 and /128).
		forgedSrc := carol.peer.Address6.String()
		n.Must("ip", "-n", ns["f6c1"], "addr", "add", forgedSrc+"/128", "dev", c1if, "nodad")
		never(t, "c1 forging carol's IPv6 source", func() error {
			_, err := c1.Do(tunneltest.Request{Op: "probe", Proto: "tcp", Src: forgedSrc, Addr: "[fd99::1]:7001", Timeout: 500 * time.Millisecond})
			return err
		})
		n.Must("ip", "-n", ns["f6c1"], "addr", "del", forgedSrc+"/128", "dev", c1if)
		waitFor(t, "c1 with its own source still works", 5*time.Second, probe(c1, "tcp", "[fd99::1]:7001"))
	})

	t.Run("path MTU discovery through the tunnel", func(t *testing.T) {
		// 1 MiB to a service behind a 1300-byte link: full-size packets
		// from the tunnel (MTU 1420) pass only once the router's Packet Too
		// Big has come back through the node to the client.
		defer func() {
			if t.Failed() {
				for _, x := range [][]string{{vpc, "nstat", "-az", "Icmp6OutPktTooBigs", "Ip6OutNoRoutes", "Ip6FragFails"},
					{ns["f6c1"], "nstat", "-az", "Icmp6InPktTooBigs", "Icmp6InErrors", "Icmp6InCsumErrors"},
					{ns["f6s1"], "nstat", "-az", "Icmp6InPktTooBigs", "Ip6InNoRoutes"}, {ns["f6s1"], "nft", "list", "table", "inet", "ferry"},
					{ns["f6s1"], "conntrack", "-L", "-f", "ipv6"}} {
					out, _ := n.In(x[0], nil, x[1], x[2:]...)
					t.Logf("%s %v:\n%s", x[0], x[1:], out)
				}
			}
		}()
		waitFor(t, "c1 transfer to [fd97::1]:7005", 20*time.Second, func() error {
			_, err := c1.Do(tunneltest.Request{Op: "transfer", Addr: "[fd97::1]:7005", Bytes: 1 << 20, Timeout: 15 * time.Second})
			return err
		})
		out := n.Must("ip", "-n", ns["f6c1"], "-6", "route", "get", "fd97::1")
		t.Logf("client route after the transfer: %s", strings.TrimSpace(out))
		if !strings.Contains(out, "mtu 1300") {
			t.Errorf("the client learnt no path MTU of 1300 from Packet Too Big: %s", out)
		}
	})

	t.Run("flow records show IPv6", func(t *testing.T) {
		acc := waitEvent(t, s1, "flow.accept for alice to [fd99::1]:7001", 60*time.Second, func(e *audit.Event) bool {
			return e.Type == audit.TypeFlowAccept && e.Actor.UserID == "alice" && e.Target.DstAddr == "fd99::1" && e.Target.DstPort == 7001
		})
		if acc.Target.Profile != "eng" || acc.BytesOut == 0 || acc.Target.Protocol != "tcp" {
			t.Errorf("flow.accept incomplete: %+v", acc)
		}
		den := waitEvent(t, s1, "flow.deny for alice to [fd98::1]:7001", 10*time.Second, func(e *audit.Event) bool {
			return e.Type == audit.TypeFlowDeny && e.Actor.UserID == "alice" && e.Target.DstAddr == "fd98::1"
		})
		if den.Outcome != audit.Failure {
			t.Errorf("flow.deny incomplete: %+v", den)
		}
	})

	t.Run("revocation cuts an open IPv6 connection", func(t *testing.T) {
		held := c1.Must(t, tunneltest.Request{Op: "hold", Addr: "[fd99::1]:7001"}).Conn
		p := alice.peer
		now := time.Now()
		p.Revoked, p.RevokedReason = &now, "test"
		commit := time.Now()
		put(t, s1, profiles.PeerPrefix+p.ID, p)
		r := c1.Must(t, tunneltest.Request{Op: "watchcut", Conn: held, Timeout: 10 * time.Second})
		lat := r.FirstFail.Sub(commit)
		t.Logf("revocation to enforcement over IPv6: <= %s", lat)
		if lat > enforceBound {
			t.Errorf("revocation took %s", lat)
		}
		never(t, "revoked client over IPv6", probe(c1, "tcp", "[fd99::1]:7001"))
		waitFor(t, "carol unaffected", 5*time.Second, probe(c3, "tcp", "[fd99::1]:7001"))
	})
}
