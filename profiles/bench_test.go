package profiles_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/profiles"
)

// BenchmarkIssue measures issuances (sign-in already done) through a
// three-node cluster with 64 concurrent clients spread over the nodes.
func BenchmarkIssue(b *testing.B) {
	e := newBenchEnv(b)
	const clients = 64
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = pubkey(b)
	}
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			s := e.stores[c%3]
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				_, _, err := s.Issue(context.Background(), session(fmt.Sprintf("user-%d", i), "engineering"), profiles.IssueRequest{PublicKey: keys[i], Device: "laptop"})
				if err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "issuances/s")
	b.ReportMetric(all[len(all)/2].Seconds()*1000, "p50-ms")
	b.ReportMetric(all[(len(all)*99+99)/100-1].Seconds()*1000, "p99-ms")
}
