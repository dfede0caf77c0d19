package tunnel_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/tunnel"
)

// rssStreams is how many saturating 3-second iperf3 streams
// BenchmarkGatewayRSS sends through each gateway: toward the VPC, then
// one back toward the client.
const rssStreams = 4

// BenchmarkGatewayRSS measures the embedded device's memory under load:
// the gateway process's resident set (now and its peak) after saturating
// iperf3 streams through a gateway with one peer and one with 20,000 peers
// (the stream through one of them), beside stock wireguard-go under the
// same streams, whose buffer pools grow without bound.
//
//	go test -run '^$' -bench GatewayRSS -benchtime 1x ./tunnel/
func BenchmarkGatewayRSS(b *testing.B) {
	e := newBenchEnv(b, "r")

	var report strings.Builder
	fmt.Fprintf(&report, "\ngateway memory under load: %d saturating iperf3 streams of 3 s toward the VPC, then one back\n", rssStreams)
	stream := func(name string, k int, rss func() (now, peak int64)) (int64, int64) {
		var gbps []string
		for i := 0; i <= rssStreams; i++ {
			args := []string{"iperf3", "-c", fmt.Sprintf("10.99.%d.1", k), "-t", "3"}
			if i == rssStreams {
				args = append(args, "-R")
			}
			out, err := e.n.In(e.cli, nil, args[0], args[1:]...)
			if err != nil {
				b.Fatalf("%s: %v\n%s", name, err, out)
			}
			gbps = append(gbps, lastRate(out))
		}
		now, peak := rss()
		fmt.Fprintf(&report, "  %-44s RSS %4d MiB, peak %4d MiB (streams %s)\n", name, now>>20, peak>>20, strings.Join(gbps, " "))
		return now, peak
	}

	// Stock wireguard-go, one peer: the baseline.
	stockPid := startStock(e, e.wgGo, 2, e.srvKey, e.cliKey)
	stream("stock wireguard-go, 1 peer", 2, func() (int64, int64) { return procRSS(b, stockPid) })

	// ferry, one peer and 20,000 peers.
	for i, np := range []int{1, 20000} {
		k := 3 + i
		kvs, _ := ferryStore(b, k, 10, 10, np, e.cliKey.PublicKey())
		a := e.ferryPath("r", k, kvs, np, 180*time.Second)
		now, peak := stream(fmt.Sprintf("ferry, %d peer(s)", np), k, func() (int64, int64) { return procRSS(b, a.Pid()) })
		if np == 1 {
			b.ReportMetric(float64(now>>20), "rss-1-peer-MiB")
			b.ReportMetric(float64(peak>>20), "rss-peak-1-peer-MiB")
		} else {
			b.ReportMetric(float64(now>>20), "rss-20k-peers-MiB")
			b.ReportMetric(float64(peak>>20), "rss-peak-20k-peers-MiB")
		}
	}
	fmt.Fprintf(&report, "  (goals: 1 peer <= 128 MiB, 20,000 peers <= 1 GiB; ferry's device holds at most %d packet buffers of 64 KiB)\n", tunnel.DefaultPacketBuffers)
	fmt.Println(report.String())
	b.Log(report.String())
}

// procRSS returns a process's resident set and its peak, in bytes.
func procRSS(b *testing.B, pid int) (now, peak int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		var kb int64
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fmt.Sscan(rest, &kb)
			now = kb << 10
		}
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Sscan(rest, &kb)
			peak = kb << 10
		}
	}
	return now, peak
}

// lastRate returns the receiver's rate from iperf3's text summary.
func lastRate(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "receiver") {
			f := strings.Fields(lines[i])
			for j := range f {
				if strings.HasSuffix(f[j], "bits/sec") && j > 0 {
					return f[j-1] + " " + f[j]
				}
			}
		}
	}
	return "?"
}
