package tunnel

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

// minBulkQueue is the least bound of queued flow events: flows come at network speed and
// audit storage must not take the node down. Session events are never
// dropped.
const minBulkQueue = 10000

// emitter hands audit events to the Recorder off the data plane's
// goroutines, which never wait for replication.
type emitter struct {
	rec   audit.Recorder
	node  string
	log   *slog.Logger
	drops func()
	// maxBulk bounds queued flow records: room for two intervals of
	// records at the flow monitor's caps, so that records are dropped
	// (and counted) only when the audit log stalls for an interval.
	maxBulk int
	notify  chan struct{} // capacity 1

	mu   sync.Mutex // guards prio and bulk
	prio []audit.Event
	bulk []audit.Event
}

func newEmitter(rec audit.Recorder, node string, log *slog.Logger, drops func(), maxBulk int) *emitter {
	return &emitter{rec: rec, node: node, log: log, drops: drops, notify: make(chan struct{}, 1), maxBulk: max(maxBulk, minBulkQueue)}
}

// emit queues e; flow events beyond the bound are dropped and counted.
func (em *emitter) emit(e audit.Event) {
	if e.Node == "" {
		e.Node = em.node
	}
	em.mu.Lock()
	if e.Type == audit.TypeFlowAccept || e.Type == audit.TypeFlowDeny {
		if len(em.bulk) >= em.maxBulk {
			em.mu.Unlock()
			em.drops()
			return
		}
		em.bulk = append(em.bulk, e)
	} else {
		em.prio = append(em.prio, e)
	}
	em.mu.Unlock()
	select {
	case em.notify <- struct{}{}:
	default:
	}
}

func (em *emitter) take() (audit.Event, bool) {
	em.mu.Lock()
	defer em.mu.Unlock()
	if len(em.prio) > 0 {
		e := em.prio[0]
		em.prio = em.prio[1:]
		return e, true
	}
	if len(em.bulk) > 0 {
		e := em.bulk[0]
		em.bulk = em.bulk[1:]
		return e, true
	}
	return audit.Event{}, false
}

// run records queued events until ctx ends, then records what is left
// within a short grace period.
func (em *emitter) run(ctx context.Context) {
	for {
		for {
			e, ok := em.take()
			if !ok {
				break
			}
			// An event taken is recorded even if ctx ends meanwhile (the
			// gateway stopping): record bounds the wait.
			em.record(context.WithoutCancel(ctx), e)
		}
		select {
		case <-ctx.Done():
			grace, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for {
				e, ok := em.take()
				if !ok || grace.Err() != nil {
					return
				}
				em.record(grace, e)
			}
		case <-em.notify:
		}
	}
}

func (em *emitter) record(ctx context.Context, e audit.Event) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := em.rec.Record(rctx, e); err != nil {
		em.log.Error("recording audit event failed", "type", string(e.Type), "err", err)
	}
}
