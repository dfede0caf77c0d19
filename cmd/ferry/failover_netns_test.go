package main

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

	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// The failover topology: the client reaches the cluster's one address
// (vip) through a "net" namespace that plays the load balancer (its route
// to vip picks node a or b) and the VPC (it holds dst). Nodes a and b run
// plain wireguard-go with the same key and the client as peer, hold vip,
// and masquerade the client's traffic to dst.
//
//	client 10.210.0.2 -- net -- a 10.210.1.2 (vip)
//	                         \-- b 10.210.2.2 (vip)
const (
	foVIP = "10.200.0.100"
	foDst = "10.99.0.1:7002"
)

// foGapBound is the generous bound on the traffic gap with fast failover;
// the goal is under 3 s (about 2 s is typical).
const foGapBound = 5 * time.Second

// TestFailoverNetns: with ferry up --embedded, when the client's node dies
// and the balancer sends it to the other node, traffic resumes within
// seconds; with --no-fast-failover, only after WireGuard's own 15 s.
func TestFailoverNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("takes half a minute: it measures WireGuard's own 15 s too")
	}
	tunneltest.Require(t, "wg", "nft", "sysctl", "nsenter")
	wgGo := lookWireGuardGo(t)
	bin := tunneltest.BuildFerry(t)
	var gaps [2]time.Duration
	t.Run("fast failover", func(t *testing.T) {
		gaps[0] = failoverGap(t, bin, wgGo, "w", true)
		if gaps[0] > foGapBound {
			t.Errorf("traffic gap %s with fast failover, want under %s", gaps[0], foGapBound)
		}
	})
	t.Run("WireGuard's own timers (--no-fast-failover)", func(t *testing.T) {
		gaps[1] = failoverGap(t, bin, wgGo, "s", false)
		// WireGuard's own timers usually take about 15 s, but a handshake
		// that happens to be due can bring the client back sooner (4 s was
		// seen in CI); the watchdog must still beat them.
		if gaps[1] <= gaps[0] {
			t.Errorf("traffic gap %s without fast failover, %s with: the test does not show what the watchdog is for", gaps[1], gaps[0])
		}
	})
	t.Logf("traffic gap when the client's node dies: %s with fast failover, %s without", gaps[0].Round(10*time.Millisecond), gaps[1].Round(10*time.Millisecond))
}

func lookWireGuardGo(t *testing.T) string {
	if p, err := exec.LookPath("wireguard-go"); err == nil {
		return p
	}
	home, _ := os.UserHomeDir()
	if p := filepath.Join(home, "go", "bin", "wireguard-go"); fileExists(p) {
		return p
	}
	t.Skip("needs the wireguard-go binary on PATH (go install golang.zx2c4.com/wireguard)")
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// failoverGap builds the topology with names tagged by tag, runs ferry up
// --embedded in the client, and returns the gap in a UDP echo every
// 100 ms when node a dies and the balancer moves to node b.
func failoverGap(t *testing.T, bin, wgGo, tag string, fast bool) time.Duration {
	n := tunneltest.NewNet(t)
	cns, lb, ans, bns := n.NS("fo"+tag+"c"), n.NS("fo"+tag+"n"), n.NS("fo"+tag+"a"), n.NS("fo"+tag+"b")
	n.Veth(cns, "n0", "10.210.0.2/24", lb, "c0", "10.210.0.1/24")
	n.Must("ip", "-n", cns, "route", "add", foVIP+"/32", "via", "10.210.0.1")
	n.Sysctl(lb, "net.ipv4.ip_forward", "1")
	n.Must("ip", "-n", lb, "addr", "add", "10.99.0.1/32", "dev", "lo")

	srvKey, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	cliKey, err := newPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "server.key")
	if err := os.WriteFile(keyFile, []byte(srvKey.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*os.Process{}
	for i, ns := range []string{ans, bns} {
		addr, gw := fmt.Sprintf("10.210.%d.2", i+1), fmt.Sprintf("10.210.%d.1", i+1)
		n.Veth(ns, "n0", addr+"/24", lb, fmt.Sprintf("s%d", i+1), gw+"/24")
		n.Must("ip", "-n", ns, "addr", "add", foVIP+"/32", "dev", "lo")
		// Replies leave from vip, as through the balancer.
		n.Must("ip", "-n", ns, "route", "add", "default", "via", gw, "src", foVIP)
		n.Sysctl(ns, "net.ipv4.ip_forward", "1")
		n.Must("ip", "netns", "exec", ns, "nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority 100; }; add rule ip nat post oifname n0 ip saddr 100.64.0.0/24 masquerade")
		// A plain wireguard-go node: the cluster's key, the client as peer.
		iface := n.Name(fmt.Sprintf("fo%s%c", tag, 'a'+i))
		cmd := exec.Command("ip", "netns", "exec", ns, wgGo, "-f", iface)
		cmd.Env = append(os.Environ(), "LOG_LEVEL=error")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		n.Track(cmd.Process)
		nodes[ns] = cmd.Process
		sock := "/var/run/wireguard/" + iface + ".sock"
		waitForCond(t, "wireguard-go socket "+sock, 10*time.Second, func() bool { return fileExists(sock) })
		n.Must("ip", "netns", "exec", ns, "wg", "set", iface, "private-key", keyFile, "listen-port", "51820",
			"peer", cliKey.Public(), "allowed-ips", "100.64.0.2/32")
		n.Must("ip", "-n", ns, "addr", "add", "100.64.0.1/24", "dev", iface)
		n.Must("ip", "-n", ns, "link", "set", iface, "up")
	}
	n.Must("ip", "-n", lb, "route", "add", foVIP+"/32", "via", "10.210.1.2")

	tunneltest.StartAgent(t, n, lb, "dst", tunneltest.AgentConfig{Echo: []string{"udp:" + foDst}})
	client := tunneltest.StartAgent(t, n, cns, "client", tunneltest.AgentConfig{})

	// The client's config directory as ferry login leaves it, with the
	// config the server issues.
	dir := filepath.Join(t.TempDir(), "ferry")
	peer := profiles.Peer{ID: "p1", UserID: "alice", Device: "laptop", Address: netip.MustParseAddr("100.64.0.2"), Profile: "eng",
		ProfileVersion: 1, Expires: time.Now().Add(time.Hour), PublicKey: cliKey.Public()}
	prof := profiles.Profile{Name: "eng", Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.99.0.0/24"), Protocol: "udp"}}}
	conf := profiles.RenderConfig(peer, prof, profiles.Server{PublicKey: srvKey.PublicKey().String(), Endpoint: foVIP + ":51820"}, cliKey.reveal())
	if err := loginflow.WritePrivateFile(filepath.Join(dir, fileConfig), []byte(conf)); err != nil {
		t.Fatal(err)
	}
	if err := saveState(dir, state{Server: "https://vpn.example.com", Device: "laptop", Peer: wire.Peer{ID: peer.ID, UserID: peer.UserID,
		Device: peer.Device, PublicKey: peer.PublicKey, Address: peer.Address.String(), Profile: peer.Profile, Expires: peer.Expires, State: "active"}}); err != nil {
		t.Fatal(err)
	}
	fc := tunneltest.StartFerry(t, n, cns, bin, dir)
	args := []string{"up", "--embedded"}
	if !fast {
		args = append(args, "--no-fast-failover")
	}
	if out, err := fc.Run(args...); err != nil {
		t.Fatalf("ferry %s: %v\n%s\n%s", strings.Join(args, " "), err, out, fc.Log())
	}
	defer func() {
		if t.Failed() {
			t.Logf("tunnel log:\n%s", fc.Log())
			out, _ := fc.WG("show", "all")
			t.Logf("client wg show:\n%s", out)
		}
	}()

	ping := func() bool {
		_, err := client.Do(tunneltest.Request{Op: "probe", Proto: "udp", Addr: foDst, Timeout: 200 * time.Millisecond})
		return err == nil
	}
	waitForCond(t, "echo through node a", 15*time.Second, ping)
	// A second of steady traffic, then node a dies and the balancer moves
	// the client's flow to node b.
	var lastOK time.Time
	tick := time.NewTicker(100 * time.Millisecond) // the probes' pace
	defer tick.Stop()
	for end := time.Now().Add(time.Second); time.Now().Before(end); <-tick.C {
		if ping() {
			lastOK = time.Now()
		}
	}
	before := ferryStatus(t, fc)
	if err := nodes[ans].Kill(); err != nil {
		t.Fatal(err)
	}
	n.Must("ip", "-n", lb, "route", "replace", foVIP+"/32", "via", "10.210.2.2")
	killed := time.Now()
	var back time.Time
	for ; time.Since(killed) < 40*time.Second; <-tick.C {
		if ping() {
			back = time.Now()
			break
		}
	}
	if back.IsZero() {
		t.Fatalf("no echo within 40s of node a dying")
	}
	gap := back.Sub(lastOK)
	t.Logf("traffic gap %s (back %s after node a died)", gap.Round(10*time.Millisecond), back.Sub(killed).Round(10*time.Millisecond))

	// The tunnel's log tells of the forced handshake; ferry status still
	// counts the traffic before it.
	log := fc.Log()
	var forced []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "forcing a new handshake") {
			forced = append(forced, line)
		}
	}
	if (len(forced) > 0) != fast {
		t.Errorf("forced handshakes logged: %q, want some: %v", forced, fast)
	}
	for _, line := range forced {
		t.Logf("tunnel log: %s", line)
	}
	after := ferryStatus(t, fc)
	if !after.Up || after.LastHandshake == nil || after.RxBytes <= before.RxBytes || after.TxBytes <= before.TxBytes || after.Endpoint != foVIP+":51820" {
		t.Errorf("ferry status after failover %+v, before %+v", after, before)
	}
	return gap
}

func ferryStatus(t *testing.T, fc *tunneltest.Ferry) status {
	t.Helper()
	out, err := fc.Run("status", "-o", "json")
	if err != nil {
		t.Fatalf("ferry status: %v\n%s", err, out)
	}
	var s status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("ferry status: %v\n%s", err, out)
	}
	return s
}

// waitForCond polls cond until it holds or d passes.
func waitForCond(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(d); !cond(); <-tick.C {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}
