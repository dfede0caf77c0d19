package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	// StoredSinks adds the network sinks stored in the cluster (SinkStore)
	// to Sinks, read when a plan is made.
	StoredSinks bool
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
// rarely (daily), on the leader. A Trimmer runs it and trims.
func PlanTrim(ctx context.Context, s LiveStore, p RetentionPolicy, now time.Time) (TrimPlan, error) {
	if p.Retention == 0 {
		p.Retention = DefaultRetention
	}
	if p.Retention < 0 {
		return TrimPlan{}, errors.New("audit retention: must not be negative")
	}
	var plan TrimPlan
	type lister interface {
		List(ctx context.Context, prefix string, c cluster.Consistency) ([]cluster.KV, uint64, error)
	}
	if l, ok := s.(lister); ok && p.StoredSinks {
		kvs, _, err := l.List(ctx, sinkPrefix, cluster.Local)
		if err != nil {
			return TrimPlan{}, fmt.Errorf("listing stored sinks: %w", err)
		}
		for _, kv := range kvs {
			p.Sinks = append(p.Sinks, kv.Key[len(sinkPrefix):])
		}
	}
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
	// The latest stubs read: a checkpoint signing a record inside one
	// (not its last) cannot anchor a trim, since that record is gone.
	var stubs [16]cluster.PruneRun
	nstubs := 0
	insideStub := func(seq uint64) bool {
		for _, s := range stubs[:min(nstubs, len(stubs))] {
			if s.First <= seq && seq < s.Last {
				return true
			}
		}
		return false
	}
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
				case e.Pruned > 0:
					stubs[nstubs%len(stubs)] = cluster.PruneRun{First: e.Seq, Last: e.LastSeq()}
					nstubs++
				case e.Event != nil:
					if e.Event.Time.After(newest) {
						newest = e.Event.Time
					}
					if !newest.Before(cutoff) {
						return errStop
					}
				case e.Checkpoint != nil:
					c := e.Checkpoint
					if c.Seq > plan.MinCursor || !c.Time.Before(cutoff) {
						return errStop
					}
					if insideStub(c.Seq) {
						continue
					}
					plan.Through, plan.Anchor, plan.AnchorSeq = c.Seq, c, r.Seq
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

// ActionTrim is the action of the event a Trimmer records for every trim:
// its full type is cluster.audit_trim. Its details name the records
// removed ("removed"), the last one removed ("through"), the first one kept
// ("first") and the checkpoint that vouches for the cut ("anchor").
const ActionTrim = "audit_trim"

// TrimmerConfig configures a Trimmer. Zero values take the documented
// defaults.
type TrimmerConfig struct {
	// Store is this node's cluster member. Required.
	Store *cluster.Node
	// Recorder receives a cluster.audit_trim event for every trim, and
	// for every trim that failed. Required: the audit log does not shrink
	// off the record.
	Recorder Recorder
	// Policy is the retention and the sinks that must confirm a record
	// before it goes (see PlanTrim).
	Policy RetentionPolicy
	// Delay is how long after this node becomes leader the first trim
	// runs; default 1 minute, so the exporter has read the cursors first.
	Delay time.Duration
	// Interval is the time between trims while this node leads; default
	// 24 hours. A failed trim is retried after an hour, or Interval if
	// that is shorter.
	Interval time.Duration
	// Poll is how often the Trimmer checks for leadership; default 1s.
	Poll time.Duration
	// Timeout bounds one trim (planning reads the whole journal); default
	// 10 minutes.
	Timeout time.Duration
	// Now is the clock the retention is measured on; default time.Now.
	// Delay and Interval are measured on the monotonic clock.
	Now func() time.Time
	// Logger receives operational logs; default slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives the trim metrics, among them
	// ferry_audit_trimmed_records_total and
	// ferry_audit_pruned_records_total.
	Registerer prometheus.Registerer
	// FlowRetention is how long raw flow records stay in the journal
	// before each trim prunes them (Prune; the SIEM keeps them); 0 leaves
	// them to Policy.Retention like every other record. It must not exceed
	// Policy.Retention.
	FlowRetention time.Duration
	// Summarize returns the flow.summary events that keep the figures of
	// the flow records a prune plan removes (report.Summarize reads them
	// from j). Required with FlowRetention.
	Summarize func(ctx context.Context, j Journal, plan PrunePlan) ([]Event, error)
}

// Validate checks the configuration, naming the first bad field.
func (c *TrimmerConfig) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("audit trimmer config: store: required")
	case c.Recorder == nil:
		return errors.New("audit trimmer config: recorder: required")
	case c.Policy.Retention < 0:
		return fmt.Errorf("audit trimmer config: retention %s: must not be negative", c.Policy.Retention)
	case c.Delay < 0 || c.Interval < 0 || c.Poll < 0 || c.Timeout < 0:
		return errors.New("audit trimmer config: durations must not be negative")
	case c.FlowRetention < 0:
		return fmt.Errorf("audit trimmer config: flow retention %s: must not be negative", c.FlowRetention)
	case c.FlowRetention > 0 && c.Summarize == nil:
		return errors.New("audit trimmer config: summarize: required with a flow retention")
	case c.FlowRetention > cmp.Or(c.Policy.Retention, DefaultRetention):
		return fmt.Errorf("audit trimmer config: flow retention %s: must not exceed the audit retention", c.FlowRetention)
	}
	for _, name := range c.Policy.Sinks {
		if err := checkSinkName(name); err != nil {
			return fmt.Errorf("audit trimmer config: %w", err)
		}
	}
	return nil
}

func (c *TrimmerConfig) setDefaults() {
	if c.Policy.Retention == 0 {
		c.Policy.Retention = DefaultRetention
	}
	if c.Delay == 0 {
		c.Delay = time.Minute
	}
	if c.Interval == 0 {
		c.Interval = 24 * time.Hour
	}
	if c.Poll == 0 {
		c.Poll = time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// TrimReport says what one trim did.
type TrimReport struct {
	// Plan is what PlanTrim allowed.
	Plan TrimPlan
	// Removed counts the records dropped by this trim and First is the
	// first record the journal keeps. Removed is 0 when the plan allowed
	// nothing beyond an earlier trim.
	Removed, First uint64
}

// Trimmer trims the journal to the retention policy while this node leads:
// once Delay after it becomes leader, then every Interval. Each trim plans
// with PlanTrim, drops the records the plan allows through the cluster,
// logs and records what went. It runs on every node; followers only wait.
// Close stops it.
type Trimmer struct {
	cfg     TrimmerConfig
	log     *slog.Logger
	metrics *trimMetrics
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	mu      sync.Mutex // serialises trims and prunes; guards pruneFrom
	// pruneFrom is where the next prune plan starts reading: the record
	// after the last prune's Through (1 on a new leader).
	pruneFrom uint64
}

// NewTrimmer starts a Trimmer.
func NewTrimmer(cfg TrimmerConfig) (*Trimmer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	t := &Trimmer{cfg: cfg, log: cfg.Logger.With("component", "audit-trimmer"), metrics: newTrimMetrics()}
	if cfg.Registerer != nil {
		if err := registerAll(cfg.Registerer, t.metrics.collectors()); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.loop(ctx)
	}()
	return t, nil
}

// Close stops the trimmer and waits for it. It is idempotent.
func (t *Trimmer) Close() error {
	t.once.Do(func() {
		t.cancel()
		t.wg.Wait()
		if t.cfg.Registerer != nil {
			for _, c := range t.metrics.collectors() {
				t.cfg.Registerer.Unregister(c)
			}
		}
	})
	return nil
}

func (t *Trimmer) loop(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Poll)
	defer tick.Stop()
	var due time.Time // zero while following
	for {
		switch now := time.Now(); {
		case !t.cfg.Store.IsLeader():
			if !due.IsZero() {
				t.mu.Lock()
				t.pruneFrom = 0 // a new leadership plans from the start
				t.mu.Unlock()
			}
			due = time.Time{}
		case due.IsZero():
			due = now.Add(t.cfg.Delay)
		case !now.Before(due):
			due = now.Add(t.cfg.Interval)
			rctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
			_, err := t.Trim(rctx)
			// Then prune flow records past their window, a bounded
			// prune at a time, until nothing is left or time is up.
			for err == nil && t.cfg.FlowRetention > 0 && rctx.Err() == nil {
				var rep PruneReport
				if rep, err = t.Prune(rctx); err == nil && len(rep.Plan.Runs) == 0 {
					break
				}
			}
			cancel()
			if err != nil && ctx.Err() == nil {
				due = now.Add(min(time.Hour, t.cfg.Interval))
				t.log.Warn("audit retention trim failed", "err", err, "retry_in", time.Until(due).Round(time.Second))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Trim plans and trims now. It works on any node (the trim is forwarded to
// the leader), but is meant for the leader, whose cursors are current.
// With nothing to trim it changes and records nothing.
func (t *Trimmer) Trim(ctx context.Context) (TrimReport, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	plan, err := PlanTrim(ctx, t.cfg.Store, t.cfg.Policy, t.cfg.Now())
	if err != nil {
		t.metrics.errors.Inc()
		return TrimReport{}, fmt.Errorf("planning trim: %w", err)
	}
	rep := TrimReport{Plan: plan}
	first, err := t.cfg.Store.JournalFirst()
	if err != nil {
		t.metrics.errors.Inc()
		return rep, fmt.Errorf("reading journal start: %w", err)
	}
	rep.First = max(first, 1)
	if plan.Through < rep.First {
		return rep, nil
	}
	res, err := t.cfg.Store.TrimJournal(ctx, plan.Through+1)
	if err != nil {
		t.metrics.errors.Inc()
		t.record(ctx, plan, rep, err)
		return rep, fmt.Errorf("trimming journal through %d: %w", plan.Through, err)
	}
	rep.Removed, rep.First = res.Removed, res.First
	t.metrics.trimmed.Add(float64(res.Removed))
	t.metrics.first.Set(float64(res.First))
	t.log.Info("audit journal trimmed", "removed", res.Removed, "through", plan.Through, "first", res.First,
		"anchor", plan.AnchorSeq, "min_cursor", plan.MinCursor, "retention", t.cfg.Policy.Retention)
	if err := t.record(ctx, plan, rep, nil); err != nil {
		return rep, fmt.Errorf("recording trim through %d: %w", plan.Through, err)
	}
	return rep, nil
}

// record stores the cluster.audit_trim event of a trim: success when
// trimErr is nil, else failure with trimErr as the reason.
func (t *Trimmer) record(ctx context.Context, plan TrimPlan, rep TrimReport, trimErr error) error {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	e := Event{
		Type: TypeCluster, Action: ActionTrim, Outcome: Success,
		Actor:  Actor{UserID: "ferryd", Role: "system"},
		Target: Target{Node: t.cfg.Store.ID()},
		Details: map[string]string{
			"through": u(plan.Through), "removed": u(rep.Removed), "first": u(rep.First),
			"anchor": u(plan.AnchorSeq), "min_cursor": u(plan.MinCursor), "retention": t.cfg.Policy.Retention.String(),
		},
	}
	if trimErr != nil {
		e.Outcome, e.Reason = Failure, trimErr.Error()
	}
	// The trim happened (or failed) whatever the caller's context does
	// now; its record must not be lost to a cancellation.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := t.cfg.Recorder.Record(rctx, e)
	if err != nil {
		t.log.Error("recording audit trim failed", "through", plan.Through, "err", err)
	}
	return err
}
