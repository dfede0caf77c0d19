package tunneltest

import (
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"testing"
)

// GCStats is what an agent process's Go runtime has done so far: garbage
// collection cycles, bytes allocated on the heap, the runtime's estimate
// of the CPU time its collector took (background workers and assists),
// and the heap that the last cycle found live. Differences between two
// readings give a gateway's allocation and collection cost under load.
type GCStats struct {
	Cycles     uint64  `json:"cycles"`
	AllocBytes uint64  `json:"alloc_bytes"`
	GCCPU      float64 `json:"gc_cpu_seconds"`
	LiveHeap   uint64  `json:"live_heap"`
}

// gcSamples names the runtime/metrics that GCStats reads, in its order.
var gcSamples = []string{
	"/gc/cycles/total:gc-cycles",
	"/gc/heap/allocs:bytes",
	"/cpu/classes/gc/total:cpu-seconds",
	"/gc/heap/live:bytes",
}

// readGCStats reads this process's GCStats.
func readGCStats() GCStats {
	s := make([]metrics.Sample, len(gcSamples))
	for i, name := range gcSamples {
		s[i].Name = name
	}
	metrics.Read(s)
	u := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	var cpu float64
	if s[2].Value.Kind() == metrics.KindFloat64 {
		cpu = s[2].Value.Float64()
	}
	return GCStats{Cycles: u(0), AllocBytes: u(1), GCCPU: cpu, LiveHeap: u(3)}
}

// writeAllocs writes this process's allocation profile (pprof's "allocs",
// sampled at the runtime's default rate) to path, after a collection: the
// runtime publishes the profile at the end of a cycle, so without it the
// profile can miss everything allocated since the last one.
func writeAllocs(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("writing allocation profile: %w", err)
	}
	return f.Close()
}

// GCStats reads the agent's GCStats.
func (a *Agent) GCStats(t testing.TB) GCStats {
	t.Helper()
	r := a.Must(t, Request{Op: "gcstats"})
	if r.GC == nil {
		t.Fatalf("agent %s: no GC stats", a.Name)
	}
	return *r.GC
}

// Sub returns what happened between an earlier reading and s.
func (s GCStats) Sub(earlier GCStats) GCStats {
	return GCStats{Cycles: s.Cycles - earlier.Cycles, AllocBytes: s.AllocBytes - earlier.AllocBytes,
		GCCPU: s.GCCPU - earlier.GCCPU, LiveHeap: s.LiveHeap}
}
