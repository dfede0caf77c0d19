package tunnel_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// BenchmarkCapture measures the embedded data plane's throughput (iperf3,
// client namespace to VPC namespace through ferry) with no capture, while
// a capture of another user runs and while a headers-only capture of the
// same user runs, in interleaved rounds, and reports the medians of the
// per-round ratios against no capture. Run it once:
//
//	go test -run '^$' -bench Capture -benchtime 1x ./tunnel/
func BenchmarkCapture(b *testing.B) {
	e := newBenchEnv(b, "c")
	const k = 3
	// Two peers: peer0 (100.64.0.2) is the measured client, peer1
	// (100.64.0.3) another user.
	kvs, _ := ferryStore(b, k, 1, 1, 2, e.cliKey.PublicKey())
	srv := e.ferryPath("c", k, kvs, 2, 60*time.Second)
	target := fmt.Sprintf("10.99.%d.1", k)
	if _, err := iperf(e, target); err != nil { // warm up, handshake
		b.Fatal(err)
	}
	modes := []struct {
		name, addr string
	}{
		{"no capture", ""},
		{"capture of another user", "100.64.0.3"},
		{"capture of the same user, headers only (96 bytes)", "100.64.0.2"},
	}
	gbps := make([][]float64, len(modes))
	var samePackets []string
	b.ResetTimer()
	for round := 0; round < benchRounds; round++ {
		for i, m := range modes {
			if m.addr != "" {
				srv.Must(b, tunneltest.Request{Op: "capture_start", Addr: m.addr, Bytes: 96, Proto: "discard"})
			}
			g, err := iperf(e, target)
			if err != nil {
				b.Fatalf("%s: %v", m.name, err)
			}
			if m.addr != "" {
				r := srv.Must(b, tunneltest.Request{Op: "capture_stop"})
				if i == 2 {
					samePackets = append(samePackets, strconv.Itoa(r.Conn))
					if r.Conn == 0 {
						b.Fatal("the capture of the measured client kept no packets")
					}
				}
			}
			gbps[i] = append(gbps[i], g)
		}
	}
	other, same := pairedRatio(gbps[1], gbps[0]), pairedRatio(gbps[2], gbps[0])
	var report strings.Builder
	fmt.Fprintf(&report, "\ncapture: throughput, iperf3 one TCP stream, -t 3, %d interleaved rounds (median)\n", benchRounds)
	for i, m := range modes {
		fmt.Fprintf(&report, "  %-52s %6.2f Gbit/s  runs %v\n", m.name, median(gbps[i]), roundAll(gbps[i]))
	}
	fmt.Fprintf(&report, "  another user's capture / none: %.2fx (goal >= 0.98); same user's / none: %.2fx (goal >= 0.85); median of per-round ratios\n", other, same)
	fmt.Fprintf(&report, "  packets kept by the same-user captures: %s\n", strings.Join(samePackets, ", "))
	b.ReportMetric(other, "other-user/none")
	b.ReportMetric(same, "same-user/none")
	b.ReportMetric(median(gbps[0]), "none-Gbit/s")
	fmt.Println(report.String())
	b.Log(report.String())
}
