package cluster_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

// BenchmarkCommit measures committed writes per second and their latency on
// a three-node cluster on loopback with fsync on, writers spread over all
// nodes as a load balancer would spread them.
func BenchmarkCommit(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			c := clustertest.Start(b, 3, clustertest.Options{WriteTimeout: 10 * time.Second})
			defer c.Close() // b.Run calls this function again with a larger b.N
			value := make([]byte, 128)
			var next atomic.Int64
			lat := make([][]time.Duration, writers)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					n := c.Node(w % 3)
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						t0 := time.Now()
						if _, err := n.Put(context.Background(), fmt.Sprintf("bench/%d", i%4096), value); err != nil {
							b.Error(err)
							return
						}
						lat[w] = append(lat[w], time.Since(t0))
					}
				}(w)
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			var all []time.Duration
			for _, l := range lat {
				all = append(all, l...)
			}
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "commits/s")
			b.ReportMetric(percentile(all, 50).Seconds()*1000, "p50-ms")
			b.ReportMetric(percentile(all, 99).Seconds()*1000, "p99-ms")
		})
	}
}

// BenchmarkMembershipCheck measures what the per-request membership check
// costs: 64 writers spread over a three-node cluster commit in rounds with
// the check on and off, interleaved on the same cluster, and the cost is
// the median over the rounds of 1 - (checked / unchecked throughput). One
// iteration is one pair of rounds.
func BenchmarkMembershipCheck(b *testing.B) {
	const writers, perRound = 64, 10000
	c := clustertest.Start(b, 3, clustertest.Options{WriteTimeout: 10 * time.Second})
	defer c.Close()
	value := make([]byte, 128)
	round := func(on bool) float64 {
		for i := 0; i < 3; i++ {
			cluster.SetMembershipCheck(c.Node(i), on)
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				n := c.Node(w % 3)
				for {
					i := next.Add(1)
					if i > perRound {
						return
					}
					if _, err := n.Put(context.Background(), fmt.Sprintf("bench/%d", i%4096), value); err != nil {
						b.Error(err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		return perRound / time.Since(start).Seconds()
	}
	round(true) // warm up connections and the log
	var costs, checked, unchecked []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate which goes first, so a drift in the machine's load
		// does not favour one side.
		var on, off float64
		if i%2 == 0 {
			on, off = round(true), round(false)
		} else {
			off, on = round(false), round(true)
		}
		checked, unchecked = append(checked, on), append(unchecked, off)
		costs = append(costs, 100*(1-on/off))
	}
	b.StopTimer()
	for i := 0; i < 3; i++ {
		cluster.SetMembershipCheck(c.Node(i), true)
	}
	b.ReportMetric(median(costs), "check-cost-%")
	b.ReportMetric(median(checked), "checked-commits/s")
	b.ReportMetric(median(unchecked), "unchecked-commits/s")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkFailover measures the time from killing the leader (no graceful
// leave) to the first successful write through a surviving node.
func BenchmarkFailover(b *testing.B) {
	for _, tc := range []struct {
		name string
		fast bool
	}{{"default", false}, {"tuned", true}} {
		b.Run(tc.name, func(b *testing.B) {
			var gaps []time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c := clustertest.Start(b, 3, clustertest.Options{Fast: tc.fast, WriteTimeout: 30 * time.Second})
				leader := c.Leader(10 * time.Second)
				if _, err := c.Node(leader).Put(context.Background(), "warm", []byte("x")); err != nil {
					b.Fatal(err)
				}
				survivor := c.Node((leader + 1) % 3)
				b.StartTimer()
				start := time.Now()
				c.Stop(leader)
				if _, err := survivor.Put(context.Background(), "after", []byte("y")); err != nil {
					b.Fatal(err)
				}
				gaps = append(gaps, time.Since(start))
				b.StopTimer()
				c.Close()
			}
			b.ReportMetric(percentile(gaps, 50).Seconds(), "failover-s")
		})
	}
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

var _ = cluster.Local
