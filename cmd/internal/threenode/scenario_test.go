package threenode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
	"github.com/ferryvpn/ferry/tunnel/vmtest"
)

// The hub's bridge joins the nodes, the VPC service and the OP; the
// client has its own link to the hub, which routes (the "internet").
const (
	hubAddr   = "10.77.0.1"
	vpcAddr   = "10.77.0.100"
	clientIP  = "10.78.0.2"
	clientGW  = "10.78.0.1"
	opPort    = 5556
	allowed   = vpcAddr + ":80"
	denied    = vpcAddr + ":8080"
	probeWait = 3 * time.Second
)

// scenario is the running setup.
type scenario struct {
	t          *testing.T
	net        *tunneltest.Net
	dir        string
	hub        string
	nodes      []*node
	op         *opServer
	masterKey  string
	ferryCAs   *x509.CertPool
	browserCAs *x509.CertPool
	cli        string // the client's namespace
	cliAgent   *tunneltest.Agent
	cliIface   string
	kernelCli  bool
	cliN       int
}

func (s *scenario) nodeAddrs() []string {
	var a []string
	for _, n := range s.nodes {
		a = append(a, n.addr)
	}
	return a
}

// runScenario is TestThreeNodes inside the hub namespace.
func runScenario(t *testing.T) {
	start := time.Now()
	phase := func(name string) {
		t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), name)
	}
	s := &scenario{t: t, net: tunneltest.NewNet(t), dir: t.TempDir(), hub: *hubNS}
	n := s.net
	// The hub: a bridge for the nodes, the VPC and the OP; a routed link
	// to the client.
	n.Must("ip", "link", "add", "br0", "type", "bridge")
	n.Must("ip", "addr", "add", hubAddr+"/24", "dev", "br0")
	n.Must("ip", "link", "set", "br0", "up")
	n.Must("sysctl", "-qw", "net.ipv4.ip_forward=1")
	attach := func(ns, name, addr string) {
		n.Veth(ns, "eth0", addr+"/24", s.hub, name, "")
		n.Must("ip", "link", "set", name, "master", "br0")
		n.Must("ip", "-n", ns, "route", "add", "default", "via", hubAddr)
	}
	bin := ferrydBinary(t)
	for i := 1; i <= 3; i++ {
		nd := &node{id: fmt.Sprintf("n%d", i), ns: n.NS(fmt.Sprintf("tn%d-", i)), addr: fmt.Sprintf("10.77.0.1%d", i),
			iface: n.Name(fmt.Sprintf("tnw%d-", i)), dir: filepath.Join(s.dir, fmt.Sprintf("n%d", i)), bin: bin}
		nd.logf = filepath.Join(s.dir, nd.id+".log")
		attach(nd.ns, fmt.Sprintf("tb%d", i), nd.addr)
		s.nodes = append(s.nodes, nd)
	}
	vpc := n.NS("tnvpc")
	attach(vpc, "tbv", vpcAddr)
	s.cli = n.NS("tncli")
	n.Veth(s.cli, "eth0", clientIP+"/30", s.hub, "tbc", clientGW+"/30")
	n.Must("ip", "-n", s.cli, "route", "add", "default", "via", clientGW)

	var redirects []string
	for _, nd := range s.nodes {
		redirects = append(redirects, nd.apiURL()+"/callback")
	}
	s.op = startOP(t, s.dir, fmt.Sprintf("%s:%d", hubAddr, opPort), redirects)
	trust := s.op.trustFile(t, s.dir)
	for _, nd := range s.nodes {
		nd.env = []string{"SSL_CERT_FILE=" + trust}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, nd := range s.nodes {
				t.Logf("log of %s:\n%s", nd.id, tail(nd.log(), 80))
			}
		}
		for _, nd := range s.nodes {
			nd.stop(t, syscall.SIGTERM)
		}
	})
	tunneltest.StartAgent(t, n, vpc, "vpc", tunneltest.AgentConfig{Echo: []string{"tcp:" + allowed, "tcp:" + denied}})
	s.cliAgent = tunneltest.StartAgent(t, n, s.cli, "client", tunneltest.AgentConfig{})
	phase("namespaces, OP and VPC services up")

	s.formCluster(t)
	for _, nd := range s.nodes {
		s.requireKernelLink(t, nd.ns, nd.iface)
	}
	phase("three nodes formed a cluster (init, token, join) and serve the data plane")

	s.browserCAs = s.ferryCAs.Clone()
	s.browserCAs.AddCert(mustCert(t, s.op.caFile))

	// The administrator signs in through n1 and writes the profile.
	adminTok := signIn(t, s, s.nodes[0].apiURL(), "demo", true)
	admin := s.client(t, s.nodes[0], adminTok.Token)
	retry(t, "creating the profile", func() error {
		_, err := admin.CreateProfile(context.Background(), wire.Profile{Name: "eng", Groups: []string{"engineering"},
			Rules: []wire.Rule{{CIDR: vpcAddr + "/32", Protocol: "tcp", Ports: []string{"80"}}}, MaxSession: "12h"})
		return err
	})
	phase("administrator signed in (Go browser, TOTP enrolled) and created the profile through n1")

	// The user signs in through n2 and gets a peer.
	userTok := signIn(t, s, s.nodes[1].apiURL(), "alice", false)
	user := s.client(t, s.nodes[1], userTok.Token)
	keyA, issA := s.issue(t, user, "laptop")
	phase("alice signed in through n2 and was issued a peer")

	s.clientUp(t, keyA, issA)
	s.waitAllowed(t, "through n1")
	s.requireDenied(t)
	phase("client on n1: allowed traffic passes, denied does not")

	// The client moves to n2 (as a load balancer would send it).
	s.setEndpoint(t, issA, s.nodes[1])
	s.waitAllowed(t, "after moving to n2")
	s.requireDenied(t)
	phase("client moved to n2 and keeps working")

	// n1 dies hard: its kernel device stays, with peer A configured.
	s.nodes[0].stop(t, syscall.SIGKILL)
	phase("n1 killed (SIGKILL)")

	// Revocation cuts an open TCP connection (through n2).
	held := s.cliAgent.Must(t, tunneltest.Request{Op: "hold", Addr: allowed, Timeout: 10 * time.Second})
	adminN2 := s.client(t, s.nodes[1], adminTok.Token)
	retry(t, "revoking peer A", func() error {
		return adminN2.RevokePeer(context.Background(), issA.Peer.ID, "threenode test")
	})
	if resp, err := s.cliAgent.Do(tunneltest.Request{Op: "watchcut", Conn: held.Conn, Timeout: 2 * time.Minute}); err != nil {
		t.Fatalf("revoking the peer did not cut the open connection: %v", err)
	} else if resp.Err != "" {
		t.Fatalf("revoking the peer did not cut the open connection: %s", resp.Err)
	}
	phase("revocation through n2 cut the open TCP connection")

	// While n1 is down the cluster moves on: a new peer B for the same
	// user. n1 restarts over its old device and must converge: A gone,
	// B served.
	keyB, issB := s.issue(t, user, "laptop-2")
	for _, nd := range s.nodes[1:] {
		s.waitPeers(t, nd, issB.Peer.PublicKey, issA.Peer.PublicKey)
	}
	s.requireLink(t, s.nodes[0])
	s.nodes[0].run(t, s.net)
	s.nodes[0].waitReady(t, s, 3*time.Minute)
	s.requireKernelLink(t, s.nodes[0].ns, s.nodes[0].iface)
	s.waitPeers(t, s.nodes[0], issB.Peer.PublicKey, issA.Peer.PublicKey)
	s.clientDown(t)
	s.clientUp(t, keyB, issB)
	s.setEndpoint(t, issB, s.nodes[0])
	s.waitAllowed(t, "with peer B through the restarted n1")
	s.requireDenied(t)
	phase("n1 restarted over its existing device and converged (A removed, B served)")
}

func mustCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := parsePEMCerts(b)
	if err != nil || len(certs) == 0 {
		t.Fatalf("%s: %v", file, err)
	}
	return certs[0]
}

// client returns an API client for nd with token.
func (s *scenario) client(t *testing.T, nd *node, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{BaseURL: nd.apiURL(), TLS: &tls.Config{RootCAs: s.ferryCAs}, Token: token, Timeout: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// retry repeats a write while the cluster has no leader (an election
// under TCG can outlast one request).
func retry(t *testing.T, what string, f func() error) {
	t.Helper()
	if err := waitFor(3*time.Minute, func() error {
		err := f()
		var ae *client.Error
		if err != nil && asAPIError(err, &ae) && ae.Status < 500 {
			return fmt.Errorf("%w: %v", errStop, err)
		}
		return err
	}); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// issue makes a key pair and has the user's session issue a peer for it.
func (s *scenario) issue(t *testing.T, c *client.Client, device string) (wgtypes.Key, wire.IssueResponse) {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	var res wire.IssueResponse
	retry(t, "issuing a peer", func() error {
		res, err = c.Issue(context.Background(), wire.IssueRequest{PublicKey: k.PublicKey().String(), Device: device, Profile: "eng"})
		return err
	})
	return k, res
}

// wgConf is what the client needs of an issued wg-quick configuration.
type wgConf struct {
	address, serverKey, endpoint string
	allowedIPs                   []string
}

func parseConf(t *testing.T, text string) wgConf {
	t.Helper()
	var c wgConf
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "Address":
			c.address, _, _ = strings.Cut(strings.Split(v, ",")[0], "/")
		case "PublicKey":
			c.serverKey = v
		case "Endpoint":
			c.endpoint = v
		case "AllowedIPs":
			for _, a := range strings.Split(v, ",") {
				c.allowedIPs = append(c.allowedIPs, strings.TrimSpace(a))
			}
		}
	}
	if c.address == "" || c.serverKey == "" || c.endpoint == "" || len(c.allowedIPs) == 0 {
		t.Fatalf("incomplete issued configuration:\n%s", text)
	}
	return c
}

// clientUp brings up the client's WireGuard interface for an issued
// peer: a kernel device where the kernel has WireGuard (required with
// -threenode.kernel), else the embedded device in the client agent.
func (s *scenario) clientUp(t *testing.T, key wgtypes.Key, iss wire.IssueResponse) {
	t.Helper()
	c := parseConf(t, iss.Config)
	s.cliIface = s.net.Name(fmt.Sprintf("tnc%d-", s.cliN))
	s.cliN++
	_, err := s.net.In(s.cli, nil, "ip", "link", "add", s.cliIface, "type", "wireguard")
	s.kernelCli = err == nil
	if !s.kernelCli {
		if *kernelOnly {
			t.Fatalf("no kernel WireGuard for the client: %v", err)
		}
		s.cliAgent.Must(t, tunneltest.Request{Op: "wgup", WG: &tunneltest.WGClient{Interface: s.cliIface,
			PrivateKey: key.String(), Address: c.address, ServerKey: c.serverKey, Endpoint: c.endpoint, AllowedIPs: c.allowedIPs}})
		return
	}
	kf := filepath.Join(s.dir, "client.key")
	if err := os.WriteFile(kf, []byte(key.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.in(t, s.cli, "wg", "set", s.cliIface, "private-key", kf, "peer", c.serverKey, "endpoint", c.endpoint,
		"allowed-ips", strings.Join(c.allowedIPs, ","), "persistent-keepalive", "5")
	s.in(t, s.cli, "ip", "addr", "add", c.address+"/32", "dev", s.cliIface)
	s.in(t, s.cli, "ip", "link", "set", s.cliIface, "up")
	for _, a := range c.allowedIPs {
		s.in(t, s.cli, "ip", "route", "add", a, "dev", s.cliIface)
	}
	s.requireKernelLink(t, s.cli, s.cliIface)
}

// clientDown removes the client's interface (the agent's embedded one
// goes with a new agent).
func (s *scenario) clientDown(t *testing.T) {
	t.Helper()
	if s.kernelCli {
		s.in(t, s.cli, "ip", "link", "del", s.cliIface)
		return
	}
	s.net.Must("ip", "-n", s.cli, "link", "del", s.cliIface)
}

// setEndpoint points the client at nd's WireGuard port.
func (s *scenario) setEndpoint(t *testing.T, iss wire.IssueResponse, nd *node) {
	t.Helper()
	c := parseConf(t, iss.Config)
	s.in(t, s.cli, "wg", "set", s.cliIface, "peer", c.serverKey, "endpoint", fmt.Sprintf("%s:%d", nd.addr, wgPort))
}

func (s *scenario) in(t *testing.T, ns string, name string, args ...string) string {
	t.Helper()
	out, err := s.net.In(ns, nil, name, args...)
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), ns, err, out)
	}
	return out
}

// waitAllowed waits until the client reaches the allowed service.
func (s *scenario) waitAllowed(t *testing.T, when string) {
	t.Helper()
	err := waitFor(3*time.Minute, func() error {
		_, err := s.cliAgent.Do(tunneltest.Request{Op: "probe", Addr: allowed, Timeout: probeWait})
		return err
	})
	if err != nil {
		wg, _ := s.net.In(s.cli, nil, "wg", "show")
		t.Fatalf("allowed traffic does not pass %s: %v\nclient: %s", when, err, wg)
	}
}

// requireDenied checks that the port the profile does not grant stays
// closed through the tunnel.
func (s *scenario) requireDenied(t *testing.T) {
	t.Helper()
	if _, err := s.cliAgent.Do(tunneltest.Request{Op: "probe", Addr: denied, Timeout: probeWait}); err == nil {
		t.Fatalf("denied traffic (%s) passed", denied)
	}
}

// waitPeers waits until nd's device has want and not gone.
func (s *scenario) waitPeers(t *testing.T, nd *node, want, gone string) {
	t.Helper()
	err := waitFor(3*time.Minute, func() error {
		out, err := s.net.In(nd.ns, nil, "wg", "show", nd.iface, "peers")
		if err != nil {
			return fmt.Errorf("wg show: %v: %s", err, out)
		}
		if !strings.Contains(out, want) || strings.Contains(out, gone) {
			return fmt.Errorf("peers of %s: %q, want %s and not %s", nd.id, out, want, gone)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// requireLink checks that nd's WireGuard interface outlived its process
// (kernel devices do; the embedded device goes with the process, so on
// the host this checks nothing).
func (s *scenario) requireLink(t *testing.T, nd *node) {
	t.Helper()
	out, err := s.net.In(nd.ns, nil, "ip", "link", "show", nd.iface)
	if !*kernelOnly {
		return
	}
	if err != nil {
		t.Fatalf("the kernel device %s did not outlive ferryd: %v: %s", nd.iface, err, out)
	}
	t.Logf("%s's kernel device %s outlived its ferryd", nd.id, nd.iface)
}

// requireKernelLink fails t under -threenode.kernel if iface in ns is not
// a kernel WireGuard interface.
func (s *scenario) requireKernelLink(t *testing.T, ns, iface string) {
	t.Helper()
	if *kernelOnly {
		vmtest.RequireKernelLink(t, ns, iface)
	}
}
