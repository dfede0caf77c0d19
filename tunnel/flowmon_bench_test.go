package tunnel

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"

	"github.com/ferryvpn/ferry/audit"
)

// rssBytes reads the process's resident set size.
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkFlowAggregation feeds conntrack DESTROY events of 2,000 clients
// with 5 to 500 destinations each into the flow monitor, one interval of
// 100,000 events per second for 60 seconds (6 M events) per iteration, and
// reports the events per second one core aggregates, the records per
// interval, and the RSS and heap after it: memory is bounded by the caps,
// not by the events. The netlink decoding before it is not measured.
func BenchmarkFlowAggregation(b *testing.B) {
	const perInterval = 6_000_000
	flows := make([]conntrack.Flow, 1<<16)
	t0 := time.Now()
	for i := range flows {
		client := netip.AddrFrom4([4]byte{100, 64, byte(i % 2000 / 250), byte(i % 250)})
		var dst string
		if i%10 == 0 { // one in ten to a wide range: scanners, many services
			dst = fmt.Sprintf("10.%d.%d.%d", i%7, (i/7)%250, i%250)
		} else {
			dst = fmt.Sprintf("10.0.4.%d", i%5)
		}
		f := ctFlow(client.String(), dst, protoTCP, uint16(443+i%3), 1500, 15000, t0, t0.Add(time.Second))
		flows[i] = f
	}
	var records int
	emit := func(audit.Event) { records++ }
	h := newFlowHarness(b, DefaultFlowMaxRecords)
	h.fm.emit = emit
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for i := range perInterval {
			h.fm.destroyed(&flows[i&(len(flows)-1)])
		}
		h.fm.flush()
	}
	el := time.Since(start)
	b.StopTimer()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(perInterval*b.N)/el.Seconds(), "events/s")
	b.ReportMetric(float64(records)/float64(b.N), "records/interval")
	b.ReportMetric(float64(rssBytes())/(1<<20), "rss-MiB")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(0, "ns/op")
}
