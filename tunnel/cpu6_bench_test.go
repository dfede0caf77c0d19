package tunnel_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// cpu6Rounds is how many rounds BenchmarkIPv6CPU runs: even, so that
// each gateway of a pair carries each family in half of them.
const cpu6Rounds = 16

// BenchmarkIPv6CPU measures IPv6 against IPv4 on ferry's dual-stack
// gateway as BenchmarkCPUPerGB measures ferry against stock: the gateway
// process's CPU time per GB of payload received by the VPC's iperf3, with
// every path offered cpuRate at the same time in each round, each with
// its own gateway and iperf3 server; each figure is the median of the
// per-round ratios with its range. The six gateways:
//
//   - two alike with one IPv4 and one IPv6 allow rule and one peer;
//   - two alike with 10,000 rules (half IPv6) over 1,000 peers;
//   - 10 rules (half IPv6) and one peer, carrying IPv6;
//   - 100,000 rules (half IPv6) over 1,000 peers, carrying IPv6.
//
// In each pair one gateway carries IPv4 and the other IPv6, and they swap
// every round, so that whatever differs between two processes alike
// (where the scheduler put them, when they collect garbage) falls on both
// families. Figures: IPv6 / IPv4 with one rule and with 10,000 rules, the
// IPv6 policy cost (10,000 rules over 1,000 peers vs one rule, next to the
// IPv4 one of the same run) and IPv6 100,000 vs 10 rules.
//
// An IPv6 packet carries 20 more header bytes than an IPv4 one (MSS 1360
// vs 1380 at the tunnel MTU of 1420), so a GB of payload takes about
// 1.5 % more packets: that share is inherent to IPv6 and included.
//
//	go test -run '^$' -bench IPv6CPU -benchtime 1x ./tunnel/
func BenchmarkIPv6CPU(b *testing.B) {
	tunneltest.Require(b, "nft")
	e := newBenchNet(b, "c6")
	srvKey, cliKey := e.srvKey, e.cliKey

	var gws []*cpuCase
	var agents []*tunneltest.Agent
	for i, g := range []struct {
		name                   string
		nprof, rulesPer, peers int
	}{
		{"1 IPv4 + 1 IPv6 rule, 1 peer (a)", 1, 2, 1},
		{"1 IPv4 + 1 IPv6 rule, 1 peer (b)", 1, 2, 1},
		{"10,000 rules over 1,000 peers (a)", 10, 1000, 1000},
		{"10,000 rules over 1,000 peers (b)", 10, 1000, 1000},
		{"10 rules, 1 peer", 1, 10, 1},
		{"100,000 rules over 1,000 peers", 10, 10000, 1000},
	} {
		k := 1 + i
		kvs := dualStore(b, k, g.nprof, g.rulesPer, g.peers, cliKey.PublicKey())
		a := e.dualGateway("c6", k, srvKey, cliKey, kvs, g.peers)
		gws = append(gws, &cpuCase{name: g.name, k: k, pid: a.Pid()})
		agents = append(agents, a)
	}
	one4, one6 := &cpuCase{name: "1 IPv4 + 1 IPv6 rule, 1 peer, IPv4"}, &cpuCase{name: "1 IPv4 + 1 IPv6 rule, 1 peer, IPv6"}
	tenk4, tenk6 := &cpuCase{name: "10,000 rules over 1,000 peers, IPv4"}, &cpuCase{name: "10,000 rules over 1,000 peers, IPv6"}
	ten6, hundredk6 := &cpuCase{name: "10 rules, 1 peer, IPv6"}, &cpuCase{name: "100,000 rules over 1,000 peers, IPv6"}
	paths := []*cpuCase{one4, one6, tenk4, tenk6, ten6, hundredk6}
	// carriers returns, for a round, which gateway carries each path and
	// points its iperf3 client at that path's family.
	carriers := func(round int) []int {
		s := round % 2
		idx := []int{0 + s, 1 - s, 2 + s, 3 - s, 4, 5}
		for p, g := range idx {
			if p%2 == 0 && p < 4 {
				gws[g].target = fmt.Sprintf("10.99.%d.1", gws[g].k)
			} else {
				gws[g].target = fmt.Sprintf("fd99:%d::1", gws[g].k)
			}
		}
		return idx
	}
	cpuServe(e, gws)
	// The servers listen a moment after they start; the first rounds also
	// make every client handshake, once each way round.
	for round := range 2 {
		carriers(round)
		waitFor(b, "a first round through every path", 60*time.Second, func() error {
			_, _, err := cpuRound(e, gws)
			return err
		})
	}
	cpuIdle(b, gws)
	gc0 := gcStats(b, agents, "before")
	b.ResetTimer()
	var softirq, load []float64
	gwGB, gwCPU := make([]float64, len(gws)), make([]float64, len(gws))
	for round := range cpu6Rounds {
		load = append(load, load1(b))
		idx := carriers(round)
		ms, sirq, err := cpuRound(e, gws)
		if err != nil {
			b.Fatal(err)
		}
		softirq = append(softirq, sirq)
		for p, g := range idx {
			paths[p].record(ms[g], gws[g].idle)
		}
		for g, m := range ms {
			gwGB[g] += m.gb
			gwCPU[g] += m.proc * m.gb // m.proc is per GB
		}
	}
	b.StopTimer()
	gc1 := gcStats(b, agents, "after")

	var report strings.Builder
	fmt.Fprintf(&report, "\nIPv6 against IPv4, gateway CPU time per GB of payload received by the VPC's iperf3: %d dual-stack ferry gateways at once, each an iperf3 TCP stream at %sbit/s for %d s, %d rounds, the gateways of a pair swapping families every round (median [min-max])\n",
		len(gws), cpuRate, cpuSeconds, cpu6Rounds)
	for _, c := range paths {
		fmt.Fprintf(&report, "  %-40s gateway %s s/GB (%2.0f%% system; net of idle %s; carried %.3f Gbit/s)\n",
			c.name, spread(c.proc), 100*c.sys/c.cpu, spread(c.net), median(c.gbps))
	}
	var idle []string
	for _, g := range gws {
		idle = append(idle, fmt.Sprintf("%s %.3f", g.name, g.idle))
	}
	fmt.Fprintf(&report, "  idle CPU-s/s: %s\n", strings.Join(idle, "; "))
	fmt.Fprintf(&report, "  machine softirq per GB of all paths: %s s/GB (neighbours included)\n", spread(softirq))
	fmt.Fprintf(&report, "  one-minute load average at the rounds' starts: %s (these paths included)\n", spread(load))
	fmt.Fprintf(&report, "  Go heap over the rounds, per gateway: GC cycles, bytes allocated per GB, GC CPU (the runtime's estimate) per GB and its share of the gateway's CPU, live heap after:\n")
	for g, c := range gws {
		d := gc1[g].Sub(gc0[g])
		fmt.Fprintf(&report, "    %-36s %d cycles, %.1f MB/GB, GC %.3f s/GB (%.1f %%), live %.0f MB\n", c.name, d.Cycles,
			float64(d.AllocBytes)/1e6/gwGB[g], d.GCCPU/gwGB[g], 100*d.GCCPU/gwCPU[g], float64(d.LiveHeap)/1e6)
	}
	v6v4 := ratios(one6.proc, one4.proc)
	v6v4k := ratios(tenk6.proc, tenk4.proc)
	policy6 := ratios(tenk6.proc, one6.proc)
	policy4 := ratios(tenk4.proc, one4.proc)
	scale6 := ratios(hundredk6.proc, ten6.proc)
	netPolicy6 := ratios(tenk6.net, one6.net)
	netScale6 := ratios(hundredk6.net, ten6.net)
	fmt.Fprintf(&report, "  IPv6 / IPv4, one IPv4 and one IPv6 rule, 1 peer: %s (goal 0.95-1.05; ~1.015 is IPv6's 20 header bytes more per packet)\n", spread(v6v4))
	fmt.Fprintf(&report, "  IPv6 / IPv4, 10,000 rules (half IPv6) over 1,000 peers: %s (goal 0.95-1.05)\n", spread(v6v4k))
	fmt.Fprintf(&report, "  IPv6 policy cost, 10,000 rules over 1,000 peers / one rule: %s (goal <= 1.05); IPv4 in the same run: %s\n", spread(policy6), spread(policy4))
	fmt.Fprintf(&report, "  IPv6, 100,000 rules over 1,000 peers / 10 rules: %s (goal 0.95-1.05)\n", spread(scale6))
	fmt.Fprintf(&report, "  net of idle: IPv6 policy cost %s; IPv6 100,000 / 10 rules %s\n", spread(netPolicy6), spread(netScale6))
	fmt.Println(report.String())
	b.Log(report.String())
	b.ReportMetric(median(load), "load1")
	b.ReportMetric(median(v6v4), "cpu-ipv6/ipv4")
	b.ReportMetric(median(v6v4k), "cpu-ipv6/ipv4-10k-rules")
	b.ReportMetric(100*(median(policy6)-1), "cpu-policy-cost-ipv6-%")
	b.ReportMetric(100*(median(policy4)-1), "cpu-policy-cost-ipv4-same-run-%")
	b.ReportMetric(100*(median(scale6)-1), "cpu-100k-vs-10-rules-ipv6-%")
	b.ReportMetric(100*(median(netPolicy6)-1), "cpu-net-policy-cost-ipv6-%")
	b.ReportMetric(100*(median(netScale6)-1), "cpu-net-100k-vs-10-rules-ipv6-%")
}

// gcStats reads every gateway's GCStats; with FERRY_BENCH_ALLOCS set to a
// directory it also writes each gateway's allocation profile there
// (gateway-K-WHEN.pprof; `go tool pprof -diff_base` of before and after
// shows who allocated during the rounds).
func gcStats(b *testing.B, agents []*tunneltest.Agent, when string) []tunneltest.GCStats {
	dir := os.Getenv("FERRY_BENCH_ALLOCS")
	var out []tunneltest.GCStats
	for k, a := range agents {
		// The profile collects garbage first (see tunneltest's
		// writeAllocs): before the rounds it does so before the reading,
		// after them after it, so the cycles and GC CPU counted are the
		// rounds' own.
		if dir != "" && when == "before" {
			a.Must(b, tunneltest.Request{Op: "allocs", Key: fmt.Sprintf("%s/gateway-%d-%s.pprof", dir, k+1, when)})
		}
		out = append(out, a.GCStats(b))
		if dir != "" && when != "before" {
			a.Must(b, tunneltest.Request{Op: "allocs", Key: fmt.Sprintf("%s/gateway-%d-%s.pprof", dir, k+1, when)})
		}
	}
	return out
}

// load1 returns the machine's one-minute load average.
func load1(b testing.TB) float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		b.Fatal(err)
	}
	var l float64
	if _, err := fmt.Sscan(string(data), &l); err != nil {
		b.Fatalf("reading /proc/loadavg: %v", err)
	}
	return l
}
