package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferryvpn/ferry/cluster"
)

// DefaultRetention is how long records stay in the hot store by default:
// 400 days, over PCI DSS 10.5.1's year of history with three months at
// hand.
const DefaultRetention = 400 * 24 * time.Hour

// RetentionPolicy decides which journal records may leave the hot store.
type RetentionPolicy struct {
	// Retention is the least age of a record before it may go; default
	// DefaultRetention.
	Retention time.Duration
	// Sinks names every configured sink: a record goes only once each of
	// them has confirmed it. With no sinks nothing is trimmed (an export
	// nobody took is not an export).
	Sinks []string
}

// TrimPlan says how far the journal may be trimmed.
type TrimPlan struct {
	// Through is the last record that may be dropped; 0 means none.
	Through uint64
	// Anchor is the checkpoint that signs record Through's hash, and
	// AnchorSeq the record that holds it (after Through, so it stays).
	// After trimming, the first remaining record's prev_hash is the
	// anchor's hash, and live verification accepts the shortened journal
	// because this signed checkpoint vouches for what was cut.
	Anchor    *Checkpoint
	AnchorSeq uint64
	// MinCursor is the least confirmed cursor over the sinks.
	MinCursor uint64
}

// PlanTrim finds the furthest point the journal may be trimmed to under p
// at now: a record covered by a checkpoint (which stays as the anchor),
// confirmed by every sink, and such that every event up to it is older
// than the retention. It reads the journal from its start; run it
// rarely (daily), on the leader. Trimming itself needs a cluster
// operation (see the package documentation).
func PlanTrim(ctx context.Context, s LiveStore, p RetentionPolicy, now time.Time) (TrimPlan, error) {
	if p.Retention == 0 {
		p.Retention = DefaultRetention
	}
	if p.Retention < 0 {
		return TrimPlan{}, errors.New("audit retention: must not be negative")
	}
	var plan TrimPlan
	if len(p.Sinks) == 0 {
		return plan, nil
	}
	plan.MinCursor = ^uint64(0)
	for _, name := range p.Sinks {
		kv, ok, err := s.Get(ctx, CursorKey(name), cluster.Linearizable)
		if err != nil {
			return TrimPlan{}, fmt.Errorf("reading cursor of sink %s: %w", name, err)
		}
		var c uint64
		if ok {
			if _, err := fmt.Sscan(string(kv.Value), &c); err != nil {
				return TrimPlan{}, fmt.Errorf("%w: cursor of sink %s", ErrMalformed, name)
			}
		}
		plan.MinCursor = min(plan.MinCursor, c)
	}
	cutoff := now.Add(-p.Retention)
	var newest time.Time // newest event time seen so far
	errStop := errors.New("stop")
	from := uint64(1)
	for plan.MinCursor > 0 {
		recs, err := s.JournalRange(from, ^uint64(0), scanPage)
		if err != nil {
			return TrimPlan{}, fmt.Errorf("reading journal from %d: %w", from, err)
		}
		if len(recs) == 0 {
			break
		}
		err = func() error {
			for _, r := range recs {
				e := entryFromRecord(r)
				switch {
				case e.Event != nil:
					if e.Event.Time.After(newest) {
						newest = e.Event.Time
					}
					if !newest.Before(cutoff) {
						return errStop
					}
				case e.Checkpoint != nil && bytes.HasPrefix(r.Data, checkpointPrefix):
					c := e.Checkpoint
					if c.Seq > plan.MinCursor || !c.Time.Before(cutoff) {
						return errStop
					}
					plan.Through, plan.Anchor, plan.AnchorSeq = c.Seq, c, r.Seq
				}
			}
			return nil
		}()
		if errors.Is(err, errStop) {
			break
		}
		from = recs[len(recs)-1].Seq + 1
	}
	return plan, nil
}
