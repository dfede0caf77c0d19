package tunnel_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// Cases that differ most between the kernel and the embedded device. They
// run on the host against the embedded device and, through
// TestKernelSuiteVM, against wireguard.ko.

// smallNet is one gateway namespace between a client and a VPC.
type smallNet struct {
	n             *tunneltest.Net
	srv, cli, vpc string
	ca, caKey     []byte
	srvKey        wgtypes.Key
}

func newSmallNet(t *testing.T) *smallNet {
	tunneltest.Require(t, "wg", "sysctl", "nft")
	n := tunneltest.NewNet(t)
	s := &smallNet{n: n, srv: n.NS("krs"), cli: n.NS("krc"), vpc: n.NS("krv")}
	n.Veth(s.cli, "u0", "10.210.0.2/24", s.srv, "u0", "10.210.0.1/24")
	n.Veth(s.srv, "v0", "10.211.0.2/24", s.vpc, "v0", "10.211.0.1/24")
	n.Must("ip", "-n", s.vpc, "addr", "add", "10.99.0.1/32", "dev", "lo")
	n.Must("ip", "-n", s.srv, "route", "add", "10.99.0.0/24", "via", "10.211.0.1")
	ca := clustertest.NewCA(t)
	var err error
	s.ca = ca.CertPEM()
	if s.caKey, err = ca.KeyPEM(); err != nil {
		t.Fatal(err)
	}
	if s.srvKey, err = wgtypes.GeneratePrivateKey(); err != nil {
		t.Fatal(err)
	}
	return s
}

// gateway starts a single-node gateway on iface in the server namespace,
// with a fresh store holding kvs.
func (s *smallNet) gateway(t *testing.T, name, iface string, kvs []tunneltest.KV) *tunneltest.Agent {
	return tunneltest.StartAgent(t, s.n, s.srv, name, tunneltest.AgentConfig{Server: &tunneltest.ServerConfig{
		NodeID: "n1", DataDir: filepath.Join(t.TempDir(), name), Bind: "127.0.0.1:7946", Bootstrap: true,
		CACert: s.ca, CAKey: s.caKey, Interface: iface, PrivateKey: s.srvKey.String(), Address: "100.64.0.1/16",
		Egress: "v0", Preload: [][]tunneltest.KV{kvs}, NoFlows: true, Kernel: *kernelDevice}})
}

func kv(t testing.TB, key string, v any) tunneltest.KV {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return tunneltest.KV{Key: key, Value: data}
}

// linkKind returns the kind of iface in ns ("wireguard", "tun"), or ""
// when there is no such interface.
func linkKind(ns, iface string) string {
	out, err := exec.Command("ip", "-n", ns, "-d", "link", "show", "dev", iface).CombinedOutput()
	if err != nil {
		return ""
	}
	for _, k := range []string{"wireguard", "tun"} {
		if strings.Contains(string(out), "\n    "+k+" ") {
			return k
		}
	}
	return "other"
}

// TestGatewayRestartOverDevice: a gateway that dies without cleaning up
// leaves its interface behind on the kernel path (a kernel interface
// outlives its process; an embedded TUN device does not). A new gateway
// on the same interface name takes it over and serves clients again.
func TestGatewayRestartOverDevice(t *testing.T) {
	s := newSmallNet(t)
	iface := s.n.Name("kr")
	prof := engProfile(profiles.PortRange{From: 7001, To: 7001})
	alice := newPeer(t, "pa", "alice", "100.64.0.11")
	kvs := []tunneltest.KV{kv(t, profiles.ProfilePrefix+"eng", prof), kv(t, profiles.PeerPrefix+"pa", alice.peer)}

	tunneltest.StartAgent(t, s.n, s.vpc, "vpc", tunneltest.AgentConfig{Echo: []string{"tcp:0.0.0.0:7001", "tcp:0.0.0.0:7003"}})
	g1 := s.gateway(t, "g1", iface, kvs)
	requireKernelLink(t, s.srv, iface)
	cli := tunneltest.StartAgent(t, s.n, s.cli, "cli", tunneltest.AgentConfig{})
	cli.Must(t, tunneltest.Request{Op: "wgup", WG: &tunneltest.WGClient{Interface: s.n.Name("krc"), PrivateKey: alice.priv.String(),
		Address: "100.64.0.11", ServerKey: s.srvKey.PublicKey().String(), Endpoint: "10.210.0.1:51820",
		AllowedIPs: []string{"10.99.0.0/24"}}})
	waitFor(t, "client through the first gateway", 20*time.Second, probe(cli, "tcp", "10.99.0.1:7001"))

	if err := g1.Kill(); err != nil {
		t.Fatal(err)
	}
	want := "tun"
	if *kernelDevice {
		want = "wireguard"
		// A kernel interface and ferry's nftables table outlive the
		// process: the node keeps forwarding under the last policy it
		// enforced (default drop intact) until ferryd starts again, or
		// until the systemd unit's ExecStopPost deletes the interface.
		waitFor(t, "the kernel interface outliving its gateway", 5*time.Second, func() error {
			if k := linkKind(s.srv, iface); k != want {
				return fmt.Errorf("interface %s is %q", iface, k)
			}
			return nil
		})
		never(t, "port the profile does not allow, through a dead gateway's device", probe(cli, "tcp", "10.99.0.1:7003"))
	} else {
		never(t, "client through a dead embedded gateway", probe(cli, "tcp", "10.99.0.1:7001"))
	}

	s.gateway(t, "g2", iface, kvs)
	requireKernelLink(t, s.srv, iface)
	if k := linkKind(s.srv, iface); k != want {
		t.Fatalf("restarted gateway's %s is %q, want %q", iface, k, want)
	}
	waitFor(t, "client through the restarted gateway", 30*time.Second, probe(cli, "tcp", "10.99.0.1:7001"))
	never(t, "port the profile does not allow, after the restart", probe(cli, "tcp", "10.99.0.1:7003"))
}

// TestConvergeTenThousandPeers starts a gateway on a store of 10,000 peers
// and waits until its device holds all of them, with each peer's address
// as its only allowed IP.
func TestConvergeTenThousandPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 peers")
	}
	s := newSmallNet(t)
	cliKey, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	const np = 10000
	t0 := time.Now()
	kvs, peers := ferryStore(t, 9, 10, 100, np, cliKey.PublicKey())
	t.Logf("store of %d peers made in %s", np, time.Since(t0).Round(time.Millisecond))
	iface := s.n.Name("kc")
	start := time.Now()
	g := s.gateway(t, "conv", iface, kvs)
	requireKernelLink(t, s.srv, iface)
	waitPeers(t, g, np, 5*time.Minute)
	took := g.Must(t, tunneltest.Request{Op: "started"}).Elapsed
	t.Logf("converged %d peers on the %s device: %s from start (%s from the test's view)", np, linkKind(s.srv, iface), took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	out, err := exec.Command("ip", "netns", "exec", s.srv, "wg", "show", iface, "allowed-ips").Output()
	if err != nil {
		t.Fatalf("wg show: %v", err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	if len(got) != np {
		t.Fatalf("device holds %d peers, want %d", len(got), np)
	}
	for _, p := range peers {
		if want := p.Address.String() + "/32"; got[p.PublicKey] != want {
			t.Fatalf("peer %s allowed-ips %q, want %q", p.ID, got[p.PublicKey], want)
		}
	}
	if *kernelDevice {
		// Deleting a kernel interface that holds 10,000 peers took
		// minutes in the TCG machine (the kernel removes peers one by
		// one); the suite's budget cannot pay it, so the gateway dies
		// here and the namespace's deletion frees the device in the
		// background.
		if err := g.Kill(); err != nil {
			t.Fatal(err)
		}
	}
}
