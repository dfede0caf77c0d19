package authn_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

// benchOptions runs benchmark clusters with production Raft timeouts, as
// cluster's own benchmarks do, and a write timeout that rides out an
// election on a loaded machine.
var benchOptions = clustertest.Options{WriteTimeout: 10 * time.Second}

// BenchmarkTOTPVerify measures one TOTP verification, including its read
// and replay-guard compare-and-swap, on a three-node cluster on loopback
// with fsync on, requests spread over the nodes as the load balancer
// spreads them (two in three are forwarded to the leader). Every iteration
// uses its own user, so no code is a replay. Goal: p99 under 20 ms.
func BenchmarkTOTPVerify(b *testing.B) {
	e := newStateEnvWith(b, benchOptions)
	ctx := b.Context()
	ids := make([]authn.Identity, b.N)
	uris := make([]string, b.N)
	// Enroll everyone first, a few at a time, at the clock's current step.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range b.N {
		ids[i] = authn.Identity{UserID: fmt.Sprintf("bench-%d", i)}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			enr, err := e.mfa[i%3].BeginEnroll(ctx, ids[i])
			if err != nil {
				b.Error(err)
				return
			}
			code, _ := authntest.TOTPCode(enr.URI, e.clock.Now())
			if _, err := e.mfa[(i+1)%3].ConfirmEnroll(ctx, ids[i], code, testSrc); err != nil {
				b.Error(err)
				return
			}
			uris[i] = enr.URI
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	e.clock.Advance(30 * time.Second)
	codes := make([]string, b.N)
	for i := range b.N {
		codes[i], _ = authntest.TOTPCode(uris[i], e.clock.Now())
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if err := e.mfa[i%3].Verify(ctx, ids[i], codes[i], testSrc); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkSessionCreate measures session creation (its linearizable read
// of the user and its transaction) on a three-node cluster, spread over
// the nodes.
func BenchmarkSessionCreate(b *testing.B) {
	e := newStateEnvWith(b, benchOptions)
	ctx := b.Context()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		id := authn.Identity{UserID: fmt.Sprintf("bench-%d", i%64), Groups: []string{"eng"}}
		t0 := time.Now()
		if _, _, err := e.sess[i%3].Create(ctx, id, authn.MethodTOTP, testSrc); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// reportLatency reports the median and 99th percentile in milliseconds.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	at := func(p int) float64 {
		i := (len(s)*p + 99) / 100
		if i > 0 {
			i--
		}
		return float64(s[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(50), "p50-ms")
	b.ReportMetric(at(99), "p99-ms")
}
