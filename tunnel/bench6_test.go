package tunnel_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// bench6Pool is the IPv6 client pool of BenchmarkDataPlaneIPv6.
var bench6Pool = netip.MustParsePrefix("fd66:6572:7279::/96")

// BenchmarkDataPlaneIPv6 compares IPv6 with IPv4 traffic through the same
// dual-stack gateways in the same run (iperf3, one TCP stream, -t 3,
// interleaved rounds, medians of the per-round ratios):
//
//   - ipv6/ipv4: one gateway with one IPv4 and one IPv6 allow rule;
//   - ipv6/ipv4-10k-rules: one gateway with 10,000 rules (half IPv4, half
//     IPv6) over 1,000 peers;
//   - policy-cost-ipv6-%: IPv6 throughput with 10,000 rules vs one rule,
//     the IPv6 counterpart of BenchmarkDataPlane's policy cost;
//   - 100k-vs-10-rules-ipv6-%: IPv6 throughput with 100,000 rules (half
//     IPv4, half IPv6) over 1,000 peers vs 10 rules and one peer, the IPv6
//     counterpart of BenchmarkDataPlane's 100k-vs-10-rules-% (these two
//     gateways carry IPv6 only).
func BenchmarkDataPlaneIPv6(b *testing.B) {
	e := newBenchEnv(b, "b6")
	srvKey, cliKey := e.srvKey, e.cliKey

	type gw struct {
		name     string
		k        int
		v4, v6   []float64
		server   *tunneltest.Agent
		nprof    int
		rulesPer int
		peers    int
		only6    bool // measured with IPv6 traffic only
	}
	gws := []*gw{{name: "1 IPv4 + 1 IPv6 rule, 1 peer", k: 1, nprof: 1, rulesPer: 2, peers: 1},
		{name: "10,000 rules over 1,000 peers", k: 2, nprof: 10, rulesPer: 1000, peers: 1000},
		{name: "10 rules, 1 peer", k: 3, nprof: 1, rulesPer: 10, peers: 1, only6: true},
		{name: "100,000 rules over 1,000 peers", k: 4, nprof: 10, rulesPer: 10000, peers: 1000, only6: true}}
	for _, g := range gws {
		kvs := dualStore(b, g.k, g.nprof, g.rulesPer, g.peers, cliKey.PublicKey())
		g.server = e.dualGateway("b6", g.k, srvKey, cliKey, kvs, g.peers)
	}
	target6 := func(k int) string { return fmt.Sprintf("fd99:%d::1", k) }
	for _, g := range gws {
		targets := []string{fmt.Sprintf("10.99.%d.1", g.k), target6(g.k)}
		if g.only6 {
			targets = targets[1:]
		}
		for _, t := range targets {
			if _, err := iperf(e, t); err != nil { // warm up, handshake
				b.Fatalf("%s to %s: %v", g.name, t, err)
			}
		}
	}
	b.ResetTimer()
	for round := 0; round < benchRounds; round++ {
		for _, g := range gws {
			if !g.only6 {
				v4, err := iperf(e, fmt.Sprintf("10.99.%d.1", g.k))
				if err != nil {
					b.Fatal(err)
				}
				g.v4 = append(g.v4, v4)
			}
			v6, err := iperf(e, target6(g.k))
			if err != nil {
				b.Fatal(err)
			}
			g.v6 = append(g.v6, v6)
		}
	}
	var report strings.Builder
	fmt.Fprintf(&report, "\nIPv6 vs IPv4 through the same dual-stack gateway, iperf3 one TCP stream, -t 3, %d interleaved rounds\n", benchRounds)
	for _, g := range gws {
		if g.only6 {
			fmt.Fprintf(&report, "  %-32s IPv6 %5.2f Gbit/s  runs v6 %v\n", g.name, median(g.v6), roundAll(g.v6))
			continue
		}
		fmt.Fprintf(&report, "  %-32s IPv4 %5.2f Gbit/s  IPv6 %5.2f Gbit/s  ipv6/ipv4 %.3f  runs v4 %v v6 %v\n", g.name,
			median(g.v4), median(g.v6), pairedRatio(g.v6, g.v4), roundAll(g.v4), roundAll(g.v6))
	}
	policy6 := 1 - pairedRatio(gws[1].v6, gws[0].v6)
	scale6 := 1 - pairedRatio(gws[3].v6, gws[2].v6)
	fmt.Fprintf(&report, "  IPv6 policy cost, 10,000 rules/1,000 peers vs one rule: %+.1f%% (goal <= 5%%)\n", 100*policy6)
	fmt.Fprintf(&report, "  IPv6, 100,000 rules/1,000 peers vs 10 rules: %+.1f%% (goal within 5%%)\n", 100*scale6)
	b.ReportMetric(pairedRatio(gws[0].v6, gws[0].v4), "ipv6/ipv4")
	b.ReportMetric(pairedRatio(gws[1].v6, gws[1].v4), "ipv6/ipv4-10k-rules")
	b.ReportMetric(100*policy6, "policy-cost-ipv6-%")
	b.ReportMetric(100*scale6, "100k-vs-10-rules-ipv6-%")
	fmt.Println(report.String())
	b.Log(report.String())
}

// dualGateway joins the client and the VPC through a new router namespace
// for path k (IPv4 as link does; IPv6 fd10:210:k::/64 on the client
// side, fd10:211:k::/64 on the VPC side, target fd99:k::1), starts a ferry
// gateway there with the dual-stack pool bench6Pool and the records kvs,
// waits until its peers are programmed, and brings up a wg-quick client
// with both addresses and routes to 10.99.k.0/24 and fd99:k::/64. Names
// start with prefix.
func (e *benchEnv) dualGateway(prefix string, k int, srvKey, cliKey wgtypes.Key, kvs []tunneltest.KV, peers int) *tunneltest.Agent {
	b, n := e.b, e.n
	ns := e.link(fmt.Sprintf("%sf%d", prefix, k), k)
	n.Must("ip", "-n", e.cli, "-6", "addr", "add", fmt.Sprintf("fd10:210:%d::2/64", k), "dev", fmt.Sprintf("b%d", k), "nodad")
	n.Must("ip", "-n", ns, "-6", "addr", "add", fmt.Sprintf("fd10:210:%d::1/64", k), "dev", "c0", "nodad")
	n.Must("ip", "-n", ns, "-6", "addr", "add", fmt.Sprintf("fd10:211:%d::1/64", k), "dev", "v0", "nodad")
	n.Must("ip", "-n", e.vpc, "-6", "addr", "add", fmt.Sprintf("fd10:211:%d::2/64", k), "dev", fmt.Sprintf("b%d", k), "nodad")
	n.Must("ip", "-n", e.vpc, "-6", "addr", "add", fmt.Sprintf("fd99:%d::1/128", k), "dev", "lo")
	n.Must("ip", "-n", ns, "-6", "route", "add", fmt.Sprintf("fd99:%d::/64", k), "via", fmt.Sprintf("fd10:211:%d::2", k))
	a := tunneltest.StartAgent(b, n, ns, fmt.Sprintf("%sa%d", prefix, k), tunneltest.AgentConfig{Server: &tunneltest.ServerConfig{
		NodeID: "n1", DataDir: b.TempDir(), Bind: "127.0.0.1:7946", Bootstrap: true,
		CACert: e.ca, CAKey: e.caKey, Interface: n.Name(fmt.Sprintf("%sw%d-", prefix, k)), PrivateKey: srvKey.String(), Address: "100.64.0.1/16",
		Pool6: bench6Pool.String(), Egress: "v0", Preload: [][]tunneltest.KV{kvs}, NoFlows: true}})
	waitFor(b, "ferry peers programmed", 60*time.Second, func() error {
		if v := metricValue(b, a, "ferry_tunnel_peers"); int(v) != peers {
			return fmt.Errorf("%v peers", v)
		}
		return nil
	})
	a6 := profiles.Address6(bench6Pool, netip.MustParseAddr("100.64.0.2"))
	e.wgQuick(n.Name(fmt.Sprintf("%sq%d", prefix, k)), fmt.Sprintf("[Interface]\nPrivateKey = %s\nAddress = 100.64.0.2/32, %s/128\nMTU = 1420\n\n[Peer]\nPublicKey = %s\nEndpoint = 10.210.%d.1:51820\nAllowedIPs = 10.99.%d.0/24, fd99:%d::/64\n",
		cliKey, a6, srvKey.PublicKey(), k, k, k))
	return a
}

// dualStore is ferryStore for a dual-stack pool: profiles of rulesPer
// rules (half IPv4, half IPv6 fillers that never match, and allow rules to
// 10.99.k.0/24 and fd99:k::/64), peers with both addresses; peer 0 is the
// benchmark client.
func dualStore(b testing.TB, k, nprof, rulesPer, npeers int, client wgtypes.Key) []tunneltest.KV {
	rng := rand.New(rand.NewPCG(uint64(k), 9))
	var kvs []tunneltest.KV
	for i := 0; i < nprof; i++ {
		fill := max(rulesPer-2, 0)
		rules := fillerRules(rng, fill/2)
		for range fill - fill/2 {
			var a [16]byte
			a[0], a[1] = 0xfd, 0x72
			for j := 2; j < 16; j++ {
				a[j] = byte(rng.IntN(256))
			}
			from := uint16(1 + rng.IntN(60000))
			rules = append(rules, profiles.Rule{CIDR: netip.PrefixFrom(netip.AddrFrom16(a), 128), Protocol: "tcp",
				Ports: []profiles.PortRange{{From: from, To: from + uint16(rng.IntN(100))}}})
		}
		rules = append(rules, profiles.Rule{CIDR: netip.MustParsePrefix(fmt.Sprintf("10.99.%d.0/24", k)), Protocol: "tcp"},
			profiles.Rule{CIDR: netip.MustParsePrefix(fmt.Sprintf("fd99:%d::/64", k)), Protocol: "tcp"})
		p := profiles.Profile{Name: fmt.Sprintf("p%d", i), Rules: rules, MaxSession: time.Hour, MaxDevices: 5}
		data, err := json.Marshal(p)
		if err != nil {
			b.Fatal(err)
		}
		kvs = append(kvs, tunneltest.KV{Key: profiles.ProfilePrefix + p.Name, Value: data})
	}
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
		v4 := netip.AddrFrom4([4]byte{100, 64, byte(a >> 8), byte(a)})
		p := profiles.Peer{ID: fmt.Sprintf("peer%d", i), UserID: fmt.Sprintf("u%d", i), Device: "d", PublicKey: key.String(),
			Address: v4, Address6: profiles.Address6(bench6Pool, v4), Profile: fmt.Sprintf("p%d", i%nprof),
			Issued: now, Expires: now.Add(24 * time.Hour)}
		data, err := json.Marshal(p)
		if err != nil {
			b.Fatal(err)
		}
		kvs = append(kvs, tunneltest.KV{Key: profiles.PeerPrefix + p.ID, Value: data})
	}
	return kvs
}
