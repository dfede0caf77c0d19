package tunnel_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// dnsmasq is a real DNS server in a namespace answering from a hosts
// file with a fixed TTL; set changes its answers (SIGHUP re-reads the file
// and empties its cache).
type dnsmasq struct {
	t     *testing.T
	hosts string
	proc  *os.Process
	done  chan struct{}
}

func startDnsmasq(t *testing.T, n *tunneltest.Net, ns, listen string, ttl int, hosts map[string]string) *dnsmasq {
	t.Helper()
	tunneltest.Require(t, "dnsmasq")
	dir := t.TempDir()
	d := &dnsmasq{t: t, hosts: filepath.Join(dir, "hosts")}
	d.set(hosts)
	cmd := exec.Command("ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
		"--conf-file=/dev/null", "--addn-hosts="+d.hosts, fmt.Sprintf("--local-ttl=%d", ttl), "--listen-address="+listen,
		"--bind-interfaces", "--port=53", "--user=root", "--pid-file="+filepath.Join(dir, "pid"), "--log-facility=-")
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.Track(cmd.Process)
	d.done = make(chan struct{})
	go func() {
		cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Logf("dnsmasq log:\n%s", out)
		}
	})
	d.proc = cmd.Process
	return d
}

// stop ends dnsmasq and waits for it.
func (d *dnsmasq) stop() {
	d.proc.Kill()
	<-d.done
}

// set rewrites the hosts file and makes dnsmasq re-read it.
func (d *dnsmasq) set(hosts map[string]string) {
	var b strings.Builder
	for name, addr := range hosts {
		fmt.Fprintf(&b, "%s %s\n", addr, name)
	}
	if err := os.WriteFile(d.hosts, []byte(b.String()), 0o644); err != nil {
		d.t.Fatal(err)
	}
	if d.proc != nil {
		// "ip netns exec" execs dnsmasq in place: the process is dnsmasq.
		if err := d.proc.Signal(syscall.SIGHUP); err != nil {
			d.t.Fatal(err)
		}
	}
}

// TestHostRulesDNS shows host rules end to end with a real DNS server in
// the VPC (dnsmasq, TTL 2 s) whose answer for db.prod.internal the test
// changes while the client is connected: the node's forwarder grants the
// answered address before replying, so the first connection to a new
// address works at once; after TTL + grace the old address is refused
// while a connection opened to it stays up; a name outside the profile
// resolves but is never reachable; the flow record names the host.
func TestHostRulesDNS(t *testing.T) {
	tunneltest.Require(t, "wg", "wg-quick", "sysctl", "nft", "dnsmasq")
	wgGo := findWireGuardGo(t)
	n := tunneltest.NewNet(t)
	sw, srv, srv2, cli, vpc := n.NS("fdsw"), n.NS("fds1"), n.NS("fds2"), n.NS("fdc1"), n.NS("fdv")
	n.Must("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
	n.Must("ip", "-n", sw, "link", "set", "br0", "up")
	for ns, addr := range map[string]string{srv: "10.230.0.1/24", srv2: "10.230.0.2/24", cli: "10.230.0.11/24"} {
		port := "p" + strings.TrimPrefix(addr[:strings.Index(addr, "/")], "10.230.0.")
		n.Veth(ns, "u0", addr, sw, port, "")
		n.Must("ip", "-n", sw, "link", "set", port, "master", "br0")
	}
	for i, ns := range []string{srv, srv2} {
		n.Veth(ns, "v0", fmt.Sprintf("10.231.%d.2/24", i+1), vpc, fmt.Sprintf("s%d", i+1), fmt.Sprintf("10.231.%d.1/24", i+1))
		n.Must("ip", "-n", ns, "route", "add", "10.98.0.0/24", "via", fmt.Sprintf("10.231.%d.1", i+1))
		n.Must("ip", "-n", ns, "addr", "add", fmt.Sprintf("fd00:231:%d::2/64", i+1), "dev", "v0", "nodad")
		n.Must("ip", "-n", vpc, "addr", "add", fmt.Sprintf("fd00:231:%d::1/64", i+1), "dev", fmt.Sprintf("s%d", i+1), "nodad")
		n.Must("ip", "-n", ns, "-6", "route", "add", "fd98::/64", "via", fmt.Sprintf("fd00:231:%d::1", i+1))
		for _, k := range []string{"time_wait", "close_wait", "fin_wait"} {
			n.Sysctl(ns, "net.netfilter.nf_conntrack_tcp_timeout_"+k, "1")
		}
	}
	for _, lo := range []string{"10.98.0.1/32", "10.98.0.2/32", "10.98.0.3/32", "fd98::2/128"} {
		n.Must("ip", "-n", vpc, "addr", "add", lo, "dev", "lo")
	}
	const ttl, grace = 4, time.Second
	dm := startDnsmasq(t, n, vpc, "10.231.1.1,10.231.2.1", ttl, map[string]string{
		"db.prod.internal": "10.98.0.1", "other.prod.internal": "10.98.0.3", "db6.prod.internal": "fd98::2"})
	tunneltest.StartAgent(t, n, vpc, "vpc", tunneltest.AgentConfig{Echo: []string{"tcp:[::]:7001"}})

	ca := clustertest.NewCA(t)
	caKey, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	server := func(id string, i int, boot bool) *tunneltest.ServerConfig {
		return &tunneltest.ServerConfig{NodeID: id, DataDir: filepath.Join(t.TempDir(), id), Bind: fmt.Sprintf("10.230.0.%d:7946", i),
			Bootstrap: boot, CACert: ca.CertPEM(), CAKey: caKey, Interface: n.Name(fmt.Sprintf("fdw%d-", i)), PrivateKey: srvKey.String(),
			Address: "100.64.0.1/16", Pool6: pool6.String(), PollInterval: 200 * time.Millisecond, DenyInterval: 200 * time.Millisecond, FlowWindow: time.Second,
			FlowActiveTimeout: 2 * time.Second, DNS: true, DNSUpstreams: []string{fmt.Sprintf("10.231.%d.1:53", i)}, DNSGrace: grace}
	}
	s1 := tunneltest.StartAgent(t, n, srv, "s1", tunneltest.AgentConfig{Server: server("n1", 1, true)})
	s1.Must(t, tunneltest.Request{Op: "leader"})
	s2 := tunneltest.StartAgent(t, n, srv2, "s2", tunneltest.AgentConfig{Server: server("n2", 2, false)})
	s1.Must(t, tunneltest.Request{Op: "addvoter", ID: "n2", Addr: "10.230.0.2:7946"})

	prof := profiles.Profile{Name: "eng", MaxSession: time.Hour, MaxDevices: 5,
		Routes: []netip.Prefix{netip.MustParsePrefix("10.98.0.0/24"), netip.MustParsePrefix("fd98::/64")},
		Rules: []profiles.Rule{{Host: "db.prod.internal", Protocol: "tcp", Ports: []profiles.PortRange{{From: 7001, To: 7001}}},
			{Host: "db6.prod.internal", Protocol: "tcp", Ports: []profiles.PortRange{{From: 7001, To: 7001}}}}}
	prof.Version = put(t, s1, profiles.ProfilePrefix+"eng", prof)
	alice := dualPeer(t, "pa", "alice", "100.64.0.11")
	alice.peer.ProfileVersion = prof.Version
	put(t, s1, profiles.PeerPrefix+alice.peer.ID, alice.peer)

	srvAddr := netip.MustParseAddr("100.64.0.1")
	conf := profiles.RenderConfig(alice.peer, prof, profiles.Server{PublicKey: srvKey.PublicKey().String(), Endpoint: "10.230.0.1:51820",
		Addresses: []netip.Addr{srvAddr, profiles.Address6(pool6, srvAddr)}, DNS: true}, alice.priv.String())
	if !strings.Contains(conf, "DNS = 100.64.0.1, fd66:6572:7279::6440:1\n") || !strings.Contains(conf, "10.98.0.0/24") {
		t.Fatalf("rendered profile does not use the node's forwarder:\n%s", conf)
	}
	c1 := tunneltest.StartAgent(t, n, cli, "c1", tunneltest.AgentConfig{})
	c1if := n.Name("fdq")
	confPath := filepath.Join(t.TempDir(), c1if+".conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := wgQuickEnv(t, wgGo)
	if out, err := n.In(cli, env, "wg-quick", "up", confPath); err != nil {
		t.Fatalf("wg-quick up: %v\n%s", err, out)
	}
	t.Cleanup(func() { n.In(cli, env, "wg-quick", "down", confPath) })

	fwd := netip.AddrPortFrom(srvAddr, tunnel.DNSPort).String()
	resolve := func(name string) (string, error) {
		r, err := c1.Do(tunneltest.Request{Op: "resolve", Addr: fwd, Key: name, Timeout: 2 * time.Second})
		return r.Text, err
	}
	// once is a single attempt: no retry hides a grant that came late.
	once := func(addr string) error {
		_, err := c1.Do(tunneltest.Request{Op: "probe", Proto: "tcp", Addr: addr, Timeout: 2 * time.Second})
		return err
	}

	var held int
	var lastOld time.Time // the last answer with the old address
	t.Run("answered address reachable on the first connection", func(t *testing.T) {
		never(t, "db's address before any answer", probe(c1, "tcp", "10.98.0.1:7001"))
		waitFor(t, "resolving db.prod.internal through the node", 15*time.Second, func() error {
			got, err := resolve("db.prod.internal")
			if err == nil && got != "10.98.0.1" {
				return fmt.Errorf("answer %q, want 10.98.0.1", got)
			}
			return err
		})
		lastOld = time.Now()
		if err := once("10.98.0.1:7001"); err != nil {
			t.Fatalf("first connection after the answer: %v", err)
		}
		held = c1.Must(t, tunneltest.Request{Op: "hold", Addr: "10.98.0.1:7001"}).Conn
		never(t, "db's address on another port", probe(c1, "tcp", "10.98.0.1:7002"))
	})

	t.Run("changed address: new one at once, old one ages out, open connection stays", func(t *testing.T) {
		never(t, "the new address before it is answered", probe(c1, "tcp", "10.98.0.2:7001"))
		dm.set(map[string]string{"db.prod.internal": "10.98.0.2", "other.prod.internal": "10.98.0.3", "db6.prod.internal": "fd98::2"})
		waitFor(t, "the changed answer", 10*time.Second, func() error {
			got, err := resolve("db.prod.internal")
			if err == nil && got != "10.98.0.2" {
				return fmt.Errorf("answer %q, want 10.98.0.2", got)
			}
			return err
		})
		answered := time.Now()
		if err := once("10.98.0.2:7001"); err != nil {
			t.Fatalf("first connection to the new address: %v", err)
		}
		waitFor(t, "the old address refused after TTL + grace", 30*time.Second, func() error {
			if once("10.98.0.1:7001") == nil {
				return fmt.Errorf("10.98.0.1 still reachable %s after the last answer for it", time.Since(answered))
			}
			return nil
		})
		if el := time.Since(lastOld); el < ttl*time.Second {
			t.Errorf("old address refused %s after its last answer, before its TTL of %ds ended", el, ttl)
		}
		c1.Must(t, tunneltest.Request{Op: "echo", Conn: held, Timeout: 2 * time.Second})
	})

	t.Run("name outside the profile resolves but is never reachable", func(t *testing.T) {
		got, err := resolve("other.prod.internal")
		if err != nil || got != "10.98.0.3" {
			t.Fatalf("other.prod.internal: %q, %v (want it resolved, per config)", got, err)
		}
		never(t, "a name outside the profile", probe(c1, "tcp", "10.98.0.3:7001"))
	})

	t.Run("IPv6: an AAAA answer is enforced before it is sent", func(t *testing.T) {
		never(t, "db6's IPv6 address before any answer", probe(c1, "tcp", "[fd98::2]:7001"))
		r, err := c1.Do(tunneltest.Request{Op: "resolve", Proto: "AAAA", Addr: fwd, Key: "db6.prod.internal", Timeout: 2 * time.Second})
		if err != nil || r.Text != "fd98::2" {
			t.Fatalf("AAAA db6.prod.internal: %q, %v", r.Text, err)
		}
		if err := once("[fd98::2]:7001"); err != nil {
			t.Fatalf("first IPv6 connection after the answer: %v", err)
		}
		never(t, "db6's IPv6 address on another port", probe(c1, "tcp", "[fd98::2]:7002"))
	})

	t.Run("flow record names the host", func(t *testing.T) {
		// Closed connections report at conntrack's DESTROY (after TIME_WAIT
		// and its garbage collection), the held one at its interim report.
		acc := waitEvent(t, s1, "flow.accept to db.prod.internal's addresses", 60*time.Second, func(e *audit.Event) bool {
			return e.Type == audit.TypeFlowAccept && strings.HasPrefix(e.Target.DstAddr, "10.98.0.") && e.Target.DstPort == 7001
		})
		if acc.Details[tunnel.FlowDetailHost] != "db.prod.internal" || !strings.Contains(acc.Details[tunnel.FlowDetailRule], "db.prod.internal") {
			t.Errorf("flow record does not name the host: %+v", acc.Details)
		}
	})

	t.Run("a client moving to another node keeps reaching the named service", func(t *testing.T) {
		// The answer comes from n1 with a TTL of a minute; then the load
		// balancer sends the client to n2 and nothing of n1 reaches it.
		// Stock WireGuard takes up to ~15 s to handshake with n2. The
		// client does not ask again (its resolver has the answer cached):
		// n2 has the grant because n1 shared it through the cluster.
		dm.stop()
		dm = startDnsmasq(t, n, vpc, "10.231.1.1,10.231.2.1", 60, map[string]string{
			"db.prod.internal": "10.98.0.2", "other.prod.internal": "10.98.0.3", "db6.prod.internal": "fd98::2"})
		// The forwarder caches the old answer (TTL 4 s) until it expires.
		var got string
		waitFor(t, "resolving db.prod.internal through n1 with the new TTL", 15*time.Second, func() error {
			r, err := c1.Do(tunneltest.Request{Op: "resolve", Addr: fwd, Key: "db.prod.internal", Timeout: 2 * time.Second})
			if err == nil && r.TTL < 30 {
				return fmt.Errorf("TTL %d: the cached answer", r.TTL)
			}
			got = r.Text
			return err
		})
		if got != "10.98.0.2" {
			t.Fatalf("resolving through n1: %q", got)
		}
		n.Must("ip", "netns", "exec", cli, "nft", "add table ip lb; add chain ip lb in { type filter hook input priority 0; }; add rule ip lb in ip saddr 10.230.0.1 udp sport 51820 drop")
		n.Must("ip", "netns", "exec", cli, "wg", "set", c1if, "peer", srvKey.PublicKey().String(), "endpoint", "10.230.0.2:51820")
		defer func() {
			if t.Failed() {
				for _, ns := range []string{srv, srv2} {
					out, _ := n.In(ns, nil, "nft", "list", "table", "inet", "ferry")
					t.Logf("%s:\n%s", ns, out)
				}
				out, _ := n.In(cli, nil, "wg", "show")
				t.Logf("client: %s", out)
			}
		}()
		waitFor(t, "10.98.0.2:7001 through n2 without asking again", 45*time.Second, probe(c1, "tcp", "10.98.0.2:7001"))
		acc := waitEvent(t, s2, "n2's flow.accept to 10.98.0.2:7001", 60*time.Second, func(e *audit.Event) bool {
			return e.Type == audit.TypeFlowAccept && e.Target.DstAddr == "10.98.0.2" && e.Target.DstPort == 7001
		})
		if acc.Details[tunnel.FlowDetailHost] != "db.prod.internal" {
			t.Errorf("n2's flow record does not name the host: %+v", acc.Details)
		}
		never(t, "a name outside the profile through n2", probe(c1, "tcp", "10.98.0.3:7001"))
	})
}
