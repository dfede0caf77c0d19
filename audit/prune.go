package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferryvpn/ferry/cluster"
)

// Tiered retention: flow records dominate the journal, which every node
// keeps whole, so their raw records stay only for a flow window (default
// DefaultFlowRetention) while every other record follows the audit
// retention (PlanTrim). Past the window, each run of consecutive flow
// records is pruned: the cluster replaces it by a stub that keeps the hash
// chain (cluster.Node.PruneJournal), so the journal, its exports and
// `ferryctl audit verify` still verify across the cut. The SIEM keeps the
// raw records long term; a stub's last hash is what re-hashing them from
// the stub's prev hash gives.

// DefaultFlowRetention is how long raw flow records stay in the journal
// by default: 30 days.
const DefaultFlowRetention = 30 * 24 * time.Hour

// maxPruneRecords bounds the records one prune command removes, so that
// one Raft entry applies in bounded time.
const maxPruneRecords = 1 << 16

// PrunePlan says which flow records may be pruned.
type PrunePlan struct {
	// Runs are the runs of consecutive flow records to prune, in order.
	Runs []cluster.PruneRun
	// Records counts the records in Runs.
	Records uint64
	// Through is the last record a prune may reach: the record a
	// checkpoint signs (after which the chain stays verifiable), confirmed
	// by every sink, with every event up to it older than the flow window.
	// 0 means none. Anchor is that checkpoint and AnchorSeq its record.
	Through   uint64
	Anchor    *Checkpoint
	AnchorSeq uint64
	// MinCursor is the least confirmed cursor over the sinks.
	MinCursor uint64
}

// PlanPrune finds the flow records that may be pruned under p at now:
// flow records (flow.accept, flow.deny) up to the last checkpoint that is
// older than the flow window (p.Retention, default DefaultFlowRetention)
// and signs a record every sink confirmed. Records already pruned and
// records of any other type are left alone. It reads the journal from its
// start; run it rarely, on the leader.
func PlanPrune(ctx context.Context, s LiveStore, p RetentionPolicy, now time.Time) (PrunePlan, error) {
	if p.Retention == 0 {
		p.Retention = DefaultFlowRetention
	}
	if p.Retention < 0 {
		return PrunePlan{}, errors.New("audit flow retention: must not be negative")
	}
	var plan PrunePlan
	var err error
	if plan.MinCursor, err = minCursor(ctx, s, &p); err != nil || plan.MinCursor == 0 {
		return PrunePlan{}, err
	}
	cutoff := now.Add(-p.Retention)
	var newest time.Time
	var runs []cluster.PruneRun // candidate runs, not yet covered by a checkpoint
	errStop := errors.New("stop")
	from := uint64(1)
	for {
		recs, err := s.JournalRange(from, ^uint64(0), scanPage)
		if err != nil {
			return PrunePlan{}, fmt.Errorf("reading journal from %d: %w", from, err)
		}
		if len(recs) == 0 {
			break
		}
		err = func() error {
			for _, r := range recs {
				e := entryFromRecord(r)
				if e.Event != nil && e.Event.Time.After(newest) {
					newest = e.Event.Time
				}
				if e.Event != nil && !newest.Before(cutoff) {
					return errStop
				}
				if e.Event != nil && e.Event.IsFlow() {
					// Record e.Seq-1 is in the last run only if it was a
					// flow record too: runs are maximal.
					if n := len(runs); n > 0 && runs[n-1].Last+1 == e.Seq {
						runs[n-1].Last = e.Seq
					} else {
						runs = append(runs, cluster.PruneRun{First: e.Seq, Last: e.Seq})
					}
					continue
				}
				c := e.Checkpoint
				if c == nil {
					continue
				}
				if c.Seq > plan.MinCursor || !c.Time.Before(cutoff) {
					return errStop
				}
				// Runs up to the record the checkpoint signs are covered.
				n := 0
				for n < len(runs) && runs[n].First <= c.Seq {
					n++
				}
				if n == 0 {
					continue
				}
				take := runs[:n:n]
				if last := &take[n-1]; last.Last > c.Seq {
					// Only the part the checkpoint signs (through the
					// record whose hash it names) goes now.
					rest := cluster.PruneRun{First: c.Seq + 1, Last: last.Last}
					last.Last = c.Seq
					runs = append([]cluster.PruneRun{rest}, runs[n:]...)
				} else {
					runs = append([]cluster.PruneRun(nil), runs[n:]...)
				}
				for _, r := range take {
					if plan.Records+(r.Last-r.First+1) > maxPruneRecords && len(plan.Runs) > 0 {
						return errStop // enough for one prune; the next takes the rest
					}
					plan.Runs = append(plan.Runs, r)
					plan.Records += r.Last - r.First + 1
				}
				plan.Through, plan.Anchor, plan.AnchorSeq = c.Seq, c, e.Seq
				if len(plan.Runs) >= cluster.MaxPruneRuns-1 || plan.Records >= maxPruneRecords {
					return errStop
				}
			}
			return nil
		}()
		if errors.Is(err, errStop) {
			break
		}
		from = recs[len(recs)-1].LastSeq() + 1
	}
	return plan, nil
}

// minCursor returns the least confirmed cursor over p's sinks (and the
// stored network sinks when p.StoredSinks), or 0 when there is no sink.
func minCursor(ctx context.Context, s LiveStore, p *RetentionPolicy) (uint64, error) {
	type lister interface {
		List(ctx context.Context, prefix string, c cluster.Consistency) ([]cluster.KV, uint64, error)
	}
	sinks := p.Sinks
	if l, ok := s.(lister); ok && p.StoredSinks {
		kvs, _, err := l.List(ctx, sinkPrefix, cluster.Local)
		if err != nil {
			return 0, fmt.Errorf("listing stored sinks: %w", err)
		}
		for _, kv := range kvs {
			sinks = append(sinks, kv.Key[len(sinkPrefix):])
		}
	}
	if len(sinks) == 0 {
		return 0, nil
	}
	least := ^uint64(0)
	for _, name := range sinks {
		kv, ok, err := s.Get(ctx, CursorKey(name), cluster.Linearizable)
		if err != nil {
			return 0, fmt.Errorf("reading cursor of sink %s: %w", name, err)
		}
		var c uint64
		if ok {
			if _, err := fmt.Sscan(string(kv.Value), &c); err != nil {
				return 0, fmt.Errorf("%w: cursor of sink %s", ErrMalformed, name)
			}
		}
		least = min(least, c)
	}
	return least, nil
}
