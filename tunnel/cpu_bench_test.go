package tunnel_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// cpuRate is the offered rate of BenchmarkCPUPerGB: below what every
// path carries on a loaded 2-core machine, so each moves the same bytes
// and the cost, not the ceiling, is measured.
const cpuRate = "300M"

// cpuRounds is how many paired rounds BenchmarkCPUPerGB runs.
const cpuRounds = 9

// cpuCase is one gateway whose CPU time per gigabyte is measured.
type cpuCase struct {
	name string
	k    int
	pid  int
	// per round: gateway process user+system seconds per GB, and the
	// machine's softirq seconds per GB over the same interval
	proc, softirq []float64
}

// BenchmarkCPUPerGB measures what moving data through the tunnel costs:
// the gateway process's user+system CPU time, and the machine's softirq
// time, per gigabyte received by the VPC, with iperf3 offering a fixed
// rate (cpuRate) below saturation. Stock wireguard-go and ferry with
// growing policies run in the same rounds, interleaved, and each
// comparison is the median of per-round ratios with its spread.
//
// Why steadier than Gbit/s: at a fixed offered rate every path carries the
// same bytes, and a busy neighbour delays the gateway's work without
// changing how much CPU time that work takes; throughput at saturation
// instead measures how much of the machine the gateway got.
//
//	go test -run '^$' -bench CPUPerGB -benchtime 1x ./tunnel/
func BenchmarkCPUPerGB(b *testing.B) {
	tunneltest.Require(b, "iperf3", "wg", "wg-quick", "sysctl")
	wgGo := findWireGuardGo(b)
	n := tunneltest.NewNet(b)
	e := &benchEnv{b: b, n: n, cli: n.NS("cc"), vpc: n.NS("cv"), env: wgQuickEnv(b, wgGo)}
	ca := clustertest.NewCA(b)
	e.ca = ca.CertPEM()
	var err error
	if e.caKey, err = ca.KeyPEM(); err != nil {
		b.Fatal(err)
	}
	iperfd := exec.Command("ip", "netns", "exec", e.vpc, "iperf3", "-s")
	if err := iperfd.Start(); err != nil {
		b.Fatal(err)
	}
	n.Track(iperfd.Process)
	srvKey, _ := wgtypes.GeneratePrivateKey()
	cliKey, _ := wgtypes.GeneratePrivateKey()

	cases := []*cpuCase{{name: "stock wireguard-go, no policy", k: 2}}
	cases[0].pid = startStock(e, wgGo, 2, srvKey, cliKey)
	for i, fc := range []struct {
		name                  string
		nprof, rulesPer, peer int
	}{
		{"ferry, no rules (1 allow rule, 1 peer)", 1, 1, 1},
		{"ferry, 10 rules, 1 peer", 1, 10, 1},
		{"ferry, 10,000 rules over 1,000 peers", 10, 1000, 1000},
		{"ferry, 100,000 rules over 1,000 peers", 10, 10000, 1000},
	} {
		k := 3 + i
		ns := e.link(fmt.Sprintf("cf%d", k), k)
		kvs, _ := ferryStore(b, k, fc.nprof, fc.rulesPer, fc.peer, cliKey.PublicKey())
		a := e.ferryServer(ns, fmt.Sprintf("c%d", k), n.Name(fmt.Sprintf("cw%d-", k)), srvKey, kvs)
		waitFor(b, "ferry peers programmed", 60*time.Second, func() error {
			if v := metricValue(b, a, "ferry_tunnel_peers"); int(v) != fc.peer {
				return fmt.Errorf("%v peers", v)
			}
			return nil
		})
		e.wgQuick(n.Name(fmt.Sprintf("cq%d", k)), fmt.Sprintf("[Interface]\nPrivateKey = %s\nAddress = 100.64.0.2/32\nMTU = 1420\n\n[Peer]\nPublicKey = %s\nEndpoint = 10.210.%d.1:51820\nAllowedIPs = 10.99.%d.0/24\n",
			cliKey, srvKey.PublicKey(), k, k))
		cases = append(cases, &cpuCase{name: fc.name, k: k, pid: a.Pid()})
	}
	for _, c := range cases {
		if _, err := cpuRun(e, c); err != nil { // warm up, handshake
			b.Fatalf("%s: %v", c.name, err)
		}
	}
	b.ResetTimer()
	for round := 0; round < cpuRounds; round++ {
		// Alternate the order, so no case always follows the same one.
		order := slices.Clone(cases)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range order {
			m, err := cpuRun(e, c)
			if err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
			c.proc = append(c.proc, m.proc)
			c.softirq = append(c.softirq, m.softirq)
		}
	}
	b.StopTimer()

	var report strings.Builder
	fmt.Fprintf(&report, "\nCPU time per GB through the tunnel, iperf3 one TCP stream at %sbit/s for 3 s, %d paired rounds (median [min-max])\n", cpuRate, cpuRounds)
	for _, c := range cases {
		fmt.Fprintf(&report, "  %-40s gateway %s s/GB   softirq %s s/GB\n", c.name, spread(c.proc), spread(c.softirq))
	}
	stock, f1, f10, f10k, f100k := cases[0], cases[1], cases[2], cases[3], cases[4]
	vsStock := ratios(f1.proc, stock.proc)
	policy := ratios(f10k.proc, f1.proc)
	scale := ratios(f100k.proc, f10.proc)
	fmt.Fprintf(&report, "  ferry / stock, gateway CPU per GB: %s (goal <= 1.03)\n", spread(vsStock))
	fmt.Fprintf(&report, "  ferry / stock, gateway + softirq per GB: %s\n", spread(ratios(sum(f1.proc, f1.softirq), sum(stock.proc, stock.softirq))))
	fmt.Fprintf(&report, "  10,000 rules over 1,000 peers / no rules: %s (goal <= 1.05)\n", spread(policy))
	fmt.Fprintf(&report, "  100,000 rules / 10 rules: %s (goal within 0.95-1.05)\n", spread(scale))
	fmt.Fprintf(&report, "  (softirq is the whole machine's, neighbours included; the gateway's own time is the figure judged)\n")
	fmt.Println(report.String())
	b.Log(report.String())
	b.ReportMetric(median(vsStock), "cpu-ferry/stock")
	b.ReportMetric(100*(median(policy)-1), "cpu-policy-cost-%")
	b.ReportMetric(100*(median(scale)-1), "cpu-100k-vs-10-rules-%")
	b.ReportMetric(median(stock.proc), "stock-cpu-s/GB")
}

type cpuSample struct{ proc, softirq float64 }

// cpuRun offers cpuRate through case c for 3 s and returns the CPU
// seconds per GB received.
func cpuRun(e *benchEnv, c *cpuCase) (cpuSample, error) {
	p0, err := procCPU(c.pid)
	if err != nil {
		return cpuSample{}, err
	}
	s0, err := softirqCPU()
	if err != nil {
		return cpuSample{}, err
	}
	out, err := e.n.In(e.cli, nil, "iperf3", "-c", fmt.Sprintf("10.99.%d.1", c.k), "-t", "3", "-b", cpuRate, "-J")
	if err != nil {
		return cpuSample{}, fmt.Errorf("iperf3: %v\n%s", err, out)
	}
	p1, err := procCPU(c.pid)
	if err != nil {
		return cpuSample{}, err
	}
	s1, err := softirqCPU()
	if err != nil {
		return cpuSample{}, err
	}
	var r struct {
		End struct {
			SumReceived struct {
				Bytes float64 `json:"bytes"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return cpuSample{}, err
	}
	gb := r.End.SumReceived.Bytes / 1e9
	if gb <= 0 {
		return cpuSample{}, fmt.Errorf("iperf3 moved nothing")
	}
	return cpuSample{proc: (p1 - p0) / gb, softirq: (s1 - s0) / gb}, nil
}

// clockTick is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTick = 100.0

// procCPU returns a process's user+system CPU seconds, all threads.
func procCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	// utime and stime are fields 14 and 15 of stat(5); f[0] is field 3.
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	return (u + s) / clockTick, nil
}

// softirqCPU returns the machine's softirq CPU seconds.
func softirqCPU() (float64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("parsing /proc/stat")
	}
	v, err := strconv.ParseFloat(f[7], 64)
	if err != nil {
		return 0, fmt.Errorf("parsing /proc/stat: %w", err)
	}
	return v / clockTick, nil
}

func ratios(a, b []float64) []float64 {
	r := make([]float64, len(a))
	for i := range a {
		r[i] = a[i] / b[i]
	}
	return r
}

func sum(a, b []float64) []float64 {
	r := make([]float64, len(a))
	for i := range a {
		r[i] = a[i] + b[i]
	}
	return r
}

// spread formats the median with the smallest and largest value.
func spread(v []float64) string {
	return fmt.Sprintf("%.3f [%.3f-%.3f]", median(v), slices.Min(v), slices.Max(v))
}
