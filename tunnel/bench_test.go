package tunnel_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// benchCase is one path from the client namespace to the VPC.
type benchCase struct {
	name   string
	k      int // index: 10.210.k.0/24 client side, 10.211.k.0/24 VPC side, target 10.99.k.1
	server *tunneltest.Agent
	gbps   []float64
}

func (c *benchCase) target() string { return fmt.Sprintf("10.99.%d.1", c.k) }

// benchEnv is the topology of a data-plane benchmark: a client namespace
// and a VPC namespace, joined by one path (a router namespace with its
// gateway) per case.
type benchEnv struct {
	b     testing.TB
	n     *tunneltest.Net
	cli   string
	vpc   string
	env   []string // wg-quick's environment, with the stock wireguard-go
	wgGo  string   // the stock wireguard-go binary
	ca    []byte
	caKey []byte
	// srvKey is every gateway's key and cliKey the client's, on every path.
	srvKey, cliKey wgtypes.Key
}

// newBenchEnv makes the set-up the throughput benchmarks share: that of
// newBenchNet and an iperf3 server in the VPC on its default port.
func newBenchEnv(b testing.TB, base string) *benchEnv {
	b.Helper()
	e := newBenchNet(b, base)
	iperfd := exec.Command("ip", "netns", "exec", e.vpc, "iperf3", "-s")
	if err := iperfd.Start(); err != nil {
		b.Fatal(err)
	}
	e.n.Track(iperfd.Process)
	return e
}

// newBenchNet makes the client and VPC namespaces (named from base+"c" and
// base+"v"), wg-quick's environment, a cluster CA for the ferry gateways,
// and the gateway and client keys. It skips b where the tools are missing.
// The CPU benchmarks, which start an iperf3 server per path, use it alone.
func newBenchNet(b testing.TB, base string) *benchEnv {
	b.Helper()
	tunneltest.Require(b, "iperf3", "wg", "wg-quick", "sysctl")
	wgGo := findWireGuardGo(b)
	n := tunneltest.NewNet(b)
	e := &benchEnv{b: b, n: n, cli: n.NS(base + "c"), vpc: n.NS(base + "v"), env: wgQuickEnv(b, wgGo), wgGo: wgGo}
	e.ca, e.caKey = benchCA(b)
	var err error
	if e.srvKey, err = wgtypes.GeneratePrivateKey(); err != nil {
		b.Fatal(err)
	}
	if e.cliKey, err = wgtypes.GeneratePrivateKey(); err != nil {
		b.Fatal(err)
	}
	return e
}

// benchCA returns a new cluster CA's certificate and key (PEM) for the
// gateways of a benchmark.
func benchCA(b testing.TB) (cert, key []byte) {
	b.Helper()
	ca := clustertest.NewCA(b)
	key, err := ca.KeyPEM()
	if err != nil {
		b.Fatal(err)
	}
	return ca.CertPEM(), key
}

// ferryPath starts a ferry gateway with the records kvs as path k (router
// namespace and gateway named from prefix and k), waits up to wait until
// it has programmed peers peers, brings up the client's wg-quick
// interface to it as 100.64.0.2 (peer 0 of ferryStore) and returns the
// gateway.
func (e *benchEnv) ferryPath(prefix string, k int, kvs []tunneltest.KV, peers int, wait time.Duration) *tunneltest.Agent {
	e.b.Helper()
	name := fmt.Sprintf("%sf%d", prefix, k)
	ns := e.link(name, k)
	a := e.ferryServer(ns, name, e.n.Name(fmt.Sprintf("%sw%d-", prefix, k)), e.srvKey, kvs)
	waitPeers(e.b, a, peers, wait)
	e.wgQuick(e.n.Name(fmt.Sprintf("%sq%d", prefix, k)), clientConf(e.cliKey, "100.64.0.2", e.srvKey, k))
	return a
}

// waitPeers waits up to d until gateway a has programmed want peers.
func waitPeers(t testing.TB, a *tunneltest.Agent, want int, d time.Duration) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d peers programmed", want), d, func() error {
		if v := metricValue(t, a, "ferry_tunnel_peers"); int(v) != want {
			return fmt.Errorf("%v peers", v)
		}
		return nil
	})
}

// clientConf is the wg-quick configuration of the benchmark client with
// address addr on path k: its tunnel to the gateway (key srv) at
// 10.210.k.1 carries 10.99.k.0/24.
func clientConf(key wgtypes.Key, addr string, srv wgtypes.Key, k int) string {
	return fmt.Sprintf("[Interface]\nPrivateKey = %s\nAddress = %s/32\nMTU = 1420\n\n[Peer]\nPublicKey = %s\nEndpoint = 10.210.%d.1:51820\nAllowedIPs = 10.99.%d.0/24\n",
		key, addr, srv.PublicKey(), k, k)
}

// link joins the client and the VPC through a new router namespace for
// case k and returns it.
func (e *benchEnv) link(base string, k int) string {
	n := e.n
	ns := n.NS(base)
	n.Veth(e.cli, fmt.Sprintf("b%d", k), fmt.Sprintf("10.210.%d.2/24", k), ns, "c0", fmt.Sprintf("10.210.%d.1/24", k))
	n.Veth(ns, "v0", fmt.Sprintf("10.211.%d.1/24", k), e.vpc, fmt.Sprintf("b%d", k), fmt.Sprintf("10.211.%d.2/24", k))
	n.Must("ip", "-n", e.vpc, "addr", "add", fmt.Sprintf("10.99.%d.1/32", k), "dev", "lo")
	n.Sysctl(ns, "net.ipv4.ip_forward", "1")
	n.Must("ip", "-n", ns, "route", "add", fmt.Sprintf("10.99.%d.0/24", k), "via", fmt.Sprintf("10.211.%d.2", k))
	return ns
}

// wgQuick brings up a client interface with the stock tools.
func (e *benchEnv) wgQuick(iface, conf string) {
	path := filepath.Join(e.b.TempDir(), iface+".conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		e.b.Fatal(err)
	}
	if out, err := e.n.In(e.cli, e.env, "wg-quick", "up", path); err != nil {
		e.b.Fatalf("wg-quick up: %v\n%s", err, out)
	}
}

// fillerRules returns n rules that never match the benchmark's traffic.
func fillerRules(rng *rand.Rand, n int) []profiles.Rule {
	out := make([]profiles.Rule, 0, n)
	for i := 0; i < n; i++ {
		a := netip.AddrFrom4([4]byte{172, byte(16 + rng.IntN(16)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		from := uint16(1 + rng.IntN(60000))
		out = append(out, profiles.Rule{CIDR: netip.PrefixFrom(a, 32), Protocol: "tcp", Ports: []profiles.PortRange{{From: from, To: from + uint16(rng.IntN(100))}}})
	}
	return out
}

// ferryStore returns the records of profiles with rulesPer rules each and
// peers spread over them; peer 0 is the benchmark client, in profile p0,
// allowed to reach 10.99.k.0/24.
func ferryStore(b testing.TB, k, nprof, rulesPer, npeers int, client wgtypes.Key) ([]tunneltest.KV, []profiles.Peer) {
	rng := rand.New(rand.NewPCG(uint64(k), 7))
	var kvs []tunneltest.KV
	for i := 0; i < nprof; i++ {
		rules := fillerRules(rng, rulesPer-1)
		rules = append(rules, profiles.Rule{CIDR: netip.MustParsePrefix(fmt.Sprintf("10.99.%d.0/24", k)), Protocol: "tcp"})
		p := profiles.Profile{Name: fmt.Sprintf("p%d", i), Rules: rules, MaxSession: time.Hour, MaxDevices: 5}
		data, err := json.Marshal(p)
		if err != nil {
			b.Fatal(err)
		}
		kvs = append(kvs, tunneltest.KV{Key: profiles.ProfilePrefix + p.Name, Value: data})
	}
	var peers []profiles.Peer
	now := time.Now()
	for i := 0; i < npeers; i++ {
		key := client
		if i > 0 {
			pk, err := wgtypes.GeneratePrivateKey()
			if err != nil {
				b.Fatal(err)
			}
			key = pk.PublicKey()
		}
		a := 2 + i
		p := profiles.Peer{ID: fmt.Sprintf("peer%d", i), UserID: fmt.Sprintf("u%d", i), Device: "d", PublicKey: key.String(),
			Address: netip.AddrFrom4([4]byte{100, 64, byte(a >> 8), byte(a)}), Profile: fmt.Sprintf("p%d", i%nprof),
			Issued: now, Expires: now.Add(24 * time.Hour)}
		data, err := json.Marshal(p)
		if err != nil {
			b.Fatal(err)
		}
		kvs = append(kvs, tunneltest.KV{Key: profiles.PeerPrefix + p.ID, Value: data})
		peers = append(peers, p)
	}
	return kvs, peers
}

func (e *benchEnv) ferryServer(ns, name, iface string, srvKey wgtypes.Key, kvs []tunneltest.KV) *tunneltest.Agent {
	return tunneltest.StartAgent(e.b, e.n, ns, name, tunneltest.AgentConfig{Server: &tunneltest.ServerConfig{
		NodeID: "n1", DataDir: filepath.Join(e.b.TempDir(), name), Bind: "127.0.0.1:7946", Bootstrap: true,
		CACert: e.ca, CAKey: e.caKey, Interface: iface, PrivateKey: srvKey.String(), Address: "100.64.0.1/16",
		Egress: "v0", Preload: [][]tunneltest.KV{kvs}, NoFlows: true}})
}

func iperf(e *benchEnv, target string) (float64, error) {
	out, err := e.n.In(e.cli, nil, "iperf3", "-c", target, "-t", "3", "-J")
	if err != nil {
		return 0, fmt.Errorf("iperf3 to %s: %v\n%s", target, err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return 0, err
	}
	return r.End.SumReceived.BitsPerSecond / 1e9, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// BenchmarkDataPlane measures throughput (iperf3, client namespace to VPC
// namespace, medians of 5 interleaved 3-second runs), convergence of
// 10,000 peers, memory with 20,000 peers, and revocation-to-enforcement
// latency, and prints a report. Run it once:
//
//	go test -run '^$' -bench DataPlane -benchtime 1x ./tunnel/
func BenchmarkDataPlane(b *testing.B) {
	e := newBenchEnv(b, "b")
	n := e.n

	var cases []*benchCase
	// 1. Plain veth routing: the upper bound.
	{
		c := &benchCase{name: "plain veth routing", k: 1}
		e.link("bp", 1)
		n.Must("ip", "-n", e.cli, "route", "add", c.target(), "via", "10.210.1.1")
		n.Must("ip", "-n", e.vpc, "route", "add", "10.210.1.0/24", "via", "10.211.1.1")
		cases = append(cases, c)
	}
	// 2. Stock wireguard-go configured with wg, no policy.
	{
		c := &benchCase{name: "stock wireguard-go, no policy", k: 2}
		startStock(e, e.wgGo, 2, e.srvKey, e.cliKey)
		cases = append(cases, c)
	}
	// 3-6. ferry with growing policies.
	ferryCases := []struct {
		name                  string
		nprof, rulesPer, peer int
	}{
		{"ferry, no rules (1 allow rule, 1 peer)", 1, 1, 1},
		{"ferry, 10 rules, 1 peer", 1, 10, 1},
		{"ferry, 10,000 rules over 1,000 peers", 10, 1000, 1000},
		{"ferry, 100,000 rules over 1,000 peers", 10, 10000, 1000},
	}
	var revokeOn *tunneltest.Agent
	var revokePeers []profiles.Peer
	for i, fc := range ferryCases {
		k := 3 + i
		kvs, peers := ferryStore(b, k, fc.nprof, fc.rulesPer, fc.peer, e.cliKey.PublicKey())
		c := &benchCase{name: fc.name, k: k}
		c.server = e.ferryPath("b", k, kvs, fc.peer, 60*time.Second)
		cases = append(cases, c)
		if fc.peer == 1000 && revokeOn == nil {
			revokeOn, revokePeers = c.server, peers
		}
	}
	for _, c := range cases {
		if _, err := iperf(e, c.target()); err != nil { // warm up, handshake
			b.Fatalf("%s: %v", c.name, err)
		}
	}
	b.ResetTimer()
	for round := 0; round < benchRounds; round++ {
		for _, c := range cases {
			g, err := iperf(e, c.target())
			if err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
			c.gbps = append(c.gbps, g)
		}
	}
	var report strings.Builder
	base := median(cases[1].gbps)
	fmt.Fprintf(&report, "\nthroughput, iperf3 one TCP stream, -t 3, %d interleaved rounds (median)\n", benchRounds)
	for _, c := range cases {
		fmt.Fprintf(&report, "  %-42s %6.2f Gbit/s  %5.2fx stock  runs %v\n", c.name, median(c.gbps), median(c.gbps)/base, roundAll(c.gbps))
	}
	// The comparisons pair the runs of one round (measured seconds apart)
	// and take the median of the ratios: a machine whose speed drifts over
	// the minutes of the benchmark moves both sides of a pair alike.
	stock, f1, f10, f10k, f100k := cases[1].gbps, cases[2].gbps, cases[3].gbps, cases[4].gbps, cases[5].gbps
	vsStock := pairedRatio(f1, stock)
	policy := 1 - pairedRatio(f10k, f1)
	scale := 1 - pairedRatio(f100k, f10)
	fmt.Fprintf(&report, "  ferry vs stock: %.2fx (goal >= 1.0); median of per-round ratios\n", vsStock)
	fmt.Fprintf(&report, "  policy cost, 10,000 rules/1,000 peers vs none: %+.1f%% (goal <= 5%%)\n", 100*policy)
	fmt.Fprintf(&report, "  100,000 rules vs 10 rules: %+.1f%% (goal within 5%%)\n", 100*scale)
	for _, c := range cases[2:] {
		st := c.server.Must(b, tunneltest.Request{Op: "started"})
		fmt.Fprintf(&report, "  %-42s gateway RSS now %d MiB, peak %s MiB\n", c.name, st.RSS>>20, mib(st.Text))
	}
	b.ReportMetric(vsStock, "ferry/stock")
	b.ReportMetric(base, "stock-Gbit/s")
	b.ReportMetric(100*policy, "policy-cost-%")
	b.ReportMetric(100*scale, "100k-vs-10-rules-%")

	// Revocation to enforcement: 100 peers revoked one by one on the
	// 1,000-peer gateway.
	var lat []time.Duration
	for _, p := range revokePeers[1:101] {
		now := time.Now()
		p.Revoked = &now
		data, _ := json.Marshal(p)
		r := revokeOn.Must(b, tunneltest.Request{Op: "revoke_latency", Key: profiles.PeerPrefix + p.ID, Value: data, Addr: p.Address.String()})
		lat = append(lat, r.Elapsed)
	}
	slices.Sort(lat)
	fmt.Fprintf(&report, "\nrevocation to enforcement (commit to client map entry gone), 100 revocations on 1,000 peers: p50 %s p99 %s max %s (goal p99 < 1s)\n",
		lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "revoke-p99-ms")

	fmt.Println(report.String())
	b.Log(report.String())
}

// BenchmarkConverge measures how long a starting gateway takes to put
// 10,000 peers into its device and table, and its memory with 20,000.
//
//	go test -run '^$' -bench Converge -benchtime 1x ./tunnel/
func BenchmarkConverge(b *testing.B) {
	tunneltest.Require(b, "sysctl")
	n := tunneltest.NewNet(b)
	e := &benchEnv{b: b, n: n}
	e.ca, e.caKey = benchCA(b)
	srvKey, _ := wgtypes.GeneratePrivateKey()
	cliKey, _ := wgtypes.GeneratePrivateKey()
	var report strings.Builder
	for i, np := range []int{10000, 20000} {
		ns := n.NS(fmt.Sprintf("bm%d", i))
		kvs, peers := ferryStore(b, 9, 10, 100, np, cliKey.PublicKey())
		if np == 10000 {
			stock := stockSetconf(b, n, srvKey, peers)
			fmt.Fprintf(&report, "baseline: stock wireguard-go taking the same 10000 peers with wg setconf: %s\n", stock.Round(time.Millisecond))
			b.ReportMetric(stock.Seconds(), "stock-setconf-10k-s")
		}
		a := e.ferryServer(ns, fmt.Sprintf("m%d", i), n.Name(fmt.Sprintf("bm%d-", i)), srvKey, kvs)
		var took time.Duration
		waitFor(b, "peers converged", 120*time.Second, func() error {
			if v := metricValue(b, a, "ferry_tunnel_peers"); int(v) != np {
				return fmt.Errorf("%v peers", v)
			}
			took = a.Must(b, tunneltest.Request{Op: "started"}).Elapsed
			return nil
		})
		st := a.Must(b, tunneltest.Request{Op: "started"})
		first := time.Duration(metricValue(b, a, "ferry_tunnel_reconcile_duration_seconds_sum") * float64(time.Second))
		fmt.Fprintf(&report, "converging %d peers (10 profiles x 100 rules) at start: first reconciliation %s, seen from outside %s (goal < 2s for 10,000); RSS %d MiB, peak %s MiB (goal < 1 GiB for 20,000)\n",
			np, first.Round(time.Millisecond), took.Round(time.Millisecond), st.RSS>>20, mib(st.Text))
		if np == 10000 {
			b.ReportMetric(took.Seconds(), "converge-10k-s")
		}
	}
	fmt.Println(report.String())
	b.Log(report.String())
}

func roundAll(v []float64) []string {
	var out []string
	for _, x := range v {
		out = append(out, fmt.Sprintf("%.2f", x))
	}
	return out
}

func mib(bytes string) string {
	var v int64
	fmt.Sscan(bytes, &v)
	return fmt.Sprint(v >> 20)
}

// benchRounds is how many interleaved rounds BenchmarkDataPlane runs: each
// runs every case once.
const benchRounds = 9

// pairedRatio is the median over rounds of a[i]/b[i].
func pairedRatio(a, b []float64) float64 {
	r := make([]float64, len(a))
	for i := range a {
		r[i] = a[i] / b[i]
	}
	return median(r)
}

// stockSetconf times the stock wireguard-go binary taking peers in one
// `wg setconf`: the userspace device's own cost of adding them (a
// Curve25519 computation and the queues of each peer), which bounds how
// fast any wireguard-go user can converge.
func stockSetconf(b *testing.B, n *tunneltest.Net, key wgtypes.Key, peers []profiles.Peer) time.Duration {
	wgGo := findWireGuardGo(b)
	ns := n.NS("bss")
	iface := n.Name("bss")
	wgd := exec.Command("ip", "netns", "exec", ns, wgGo, "-f", iface)
	if err := wgd.Start(); err != nil {
		b.Fatal(err)
	}
	n.Track(wgd.Process)
	var conf strings.Builder
	fmt.Fprintf(&conf, "[Interface]\nPrivateKey = %s\nListenPort = 51821\n", key)
	for _, p := range peers {
		fmt.Fprintf(&conf, "\n[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\n", p.PublicKey, p.Address)
	}
	file := filepath.Join(b.TempDir(), "wg.conf")
	if err := os.WriteFile(file, []byte(conf.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	// The daemon's UAPI socket appears a moment after it starts.
	clustertest.WaitFor(b, 10*time.Second, "stock wireguard-go's socket", func() error {
		return exec.Command("wg", "show", iface).Run()
	})
	start := time.Now()
	if out, err := exec.Command("wg", "setconf", iface, file).CombinedOutput(); err != nil {
		b.Fatalf("wg setconf: %v: %s", err, out)
	}
	return time.Since(start)
}

// startStock runs the stock wireguard-go binary as the gateway of path k,
// configured with wg (no policy), with a wg-quick client, and returns its
// process id.
func startStock(e *benchEnv, wgGo string, k int, srvKey, cliKey wgtypes.Key) int {
	b, n := e.b, e.n
	ns := e.link(fmt.Sprintf("bs%d", k), k)
	iface := n.Name(fmt.Sprintf("bsw%d", k))
	wgd := exec.Command("ip", "netns", "exec", ns, wgGo, "-f", iface)
	if err := wgd.Start(); err != nil {
		b.Fatal(err)
	}
	n.Track(wgd.Process)
	keyFile := filepath.Join(b.TempDir(), "key")
	os.WriteFile(keyFile, []byte(srvKey.String()), 0o600)
	cli := fmt.Sprintf("100.65.%d.2", k)
	// The stock daemon's UAPI socket appears a moment after it starts.
	clustertest.WaitFor(b, 10*time.Second, "configuring stock wireguard-go", func() error {
		out, err := exec.Command("ip", "netns", "exec", ns, "wg", "set", iface, "private-key", keyFile, "listen-port", "51820",
			"peer", cliKey.PublicKey().String(), "allowed-ips", cli+"/32").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	n.Must("ip", "-n", ns, "addr", "add", fmt.Sprintf("100.65.%d.1/24", k), "dev", iface)
	n.Must("ip", "-n", ns, "link", "set", iface, "mtu", "1420", "up")
	n.Must("ip", "-n", e.vpc, "route", "add", fmt.Sprintf("100.65.%d.0/24", k), "via", fmt.Sprintf("10.211.%d.1", k))
	e.wgQuick(n.Name(fmt.Sprintf("bq%d", k)), clientConf(cliKey, cli, srvKey, k))
	return wgd.Process.Pid
}
