package audit

import (
	"bytes"
	"context"
	"sort"
	"time"

	"github.com/ferryvpn/ferry/cluster"
)

// runningSink is a stored sink the exporter runs.
type runningSink struct {
	raw    []byte // the stored spec it was built from
	cancel context.CancelFunc
	done   chan struct{}
}

// followStored runs the sinks stored in the cluster, starting, stopping
// and rebuilding them as their specs change, until ctx ends.
func (x *Exporter) followStored(ctx context.Context) {
	defer x.stopAllStored()
	for ctx.Err() == nil {
		w, initial, _, err := x.store.Watch(sinkPrefix)
		if err != nil {
			x.log.Warn("watching stored audit sinks failed", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		x.reconcileStored(ctx, initial)
		for ctx.Err() == nil {
			evs, err := w.Next(ctx)
			if err != nil {
				break
			}
			_ = evs // the listing below is the truth
			kvs, _, err := x.store.List(ctx, sinkPrefix, cluster.Local)
			if err != nil {
				x.log.Warn("listing stored audit sinks failed", "err", err)
				continue
			}
			x.reconcileStored(ctx, kvs)
		}
		w.Close()
	}
}

func (x *Exporter) reconcileStored(ctx context.Context, kvs []cluster.KV) {
	want := map[string][]byte{}
	for _, kv := range kvs {
		want[kv.Key[len(sinkPrefix):]] = kv.Value
	}
	x.dynMu.Lock()
	defer x.dynMu.Unlock()
	if x.dynamic == nil {
		x.dynamic = map[string]*runningSink{}
	}
	for name, rs := range x.dynamic {
		if raw, ok := want[name]; !ok || !bytes.Equal(raw, rs.raw) {
			rs.cancel()
			<-rs.done
			delete(x.dynamic, name)
			x.errMu.Lock()
			delete(x.sinkErrs, name)
			x.errMu.Unlock()
			x.metrics.misconf.DeleteLabelValues(name)
			x.log.Info("audit sink stopped", "sink", name)
		}
	}
	for name, raw := range want {
		if _, ok := x.dynamic[name]; ok {
			continue
		}
		if x.static(name) {
			x.log.Warn("stored audit sink has the name of a configured one; the configured one runs", "sink", name)
			continue
		}
		spec, err := openSpec(x.cfg.Stored.Key, raw)
		var sink Sink
		if err == nil {
			sink, err = spec.Build(x.cfg.SinkOptions)
		}
		if err != nil {
			x.log.Error("stored audit sink cannot be built", "sink", name, "err", err)
			x.setSinkError(name, err)
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		rs := &runningSink{raw: raw, cancel: cancel, done: make(chan struct{})}
		x.dynamic[name] = rs
		go func() {
			defer close(rs.done)
			x.run(sctx, sink)
		}()
		x.log.Info("audit sink started", "sink", name, "type", spec.Type)
	}
}

func (x *Exporter) static(name string) bool {
	for _, s := range x.cfg.Sinks {
		if s.Name() == name {
			return true
		}
	}
	return false
}

func (x *Exporter) stopAllStored() {
	x.dynMu.Lock()
	defer x.dynMu.Unlock()
	for name, rs := range x.dynamic {
		rs.cancel()
		<-rs.done
		delete(x.dynamic, name)
	}
}

func (x *Exporter) dynamicNames() []string {
	x.dynMu.Lock()
	defer x.dynMu.Unlock()
	names := make([]string, 0, len(x.dynamic))
	for n := range x.dynamic {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NetworkSinks returns how many network sinks this exporter runs:
// configured ones that are not node-local, and stored ones.
func (x *Exporter) NetworkSinks() int {
	n := len(x.dynamicNames())
	for _, s := range x.cfg.Sinks {
		if _, local := s.(NodeLocal); !local {
			n++
		}
	}
	return n
}

// watchNoSink keeps ferry_audit_network_sinks current and, on the leader,
// logs every NoSinkLog that nothing exports the journal off the cluster.
func (x *Exporter) watchNoSink(ctx context.Context) {
	var lastLog time.Time
	for ctx.Err() == nil {
		n := x.NetworkSinks()
		x.metrics.network.Set(float64(n))
		if n == 0 && x.store.IsLeader() && time.Since(lastLog) >= x.cfg.NoSinkLog {
			x.log.Warn("no network audit sink: the journal is exported nowhere off the cluster (add one with ferryctl audit sink add)")
			lastLog = time.Now()
		}
		sleep(ctx, min(x.cfg.Poll*5, time.Second))
	}
}
