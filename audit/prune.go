package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ferryvpn/ferry/audit/auditfile"
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
	return PlanPruneFrom(ctx, s, p, now, 1)
}

// PlanPruneFrom is PlanPrune reading the journal from record from on: a
// pruner that planned before passes the record after the last plan's
// Through, so that each plan reads only what is new.
func PlanPruneFrom(ctx context.Context, s LiveStore, p RetentionPolicy, now time.Time, from uint64) (PrunePlan, error) {
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
	from = max(from, 1)
	for {
		if err := ctx.Err(); err != nil {
			return PrunePlan{}, err
		}
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

// Details keys of a flow.summary event. A prune of the flow records from
// FlowSummaryFrom to FlowSummaryTo (FlowSummaryRecords of them, in the runs
// whose digest is FlowSummaryRuns, the rest of that range being other
// records) is preceded by summary events of the day FlowSummaryDay; the
// last of them carries FlowSummaryLast = "true". Verification checks every
// stub against them (auditfile.RunsDigest): a stub that hides any other
// record is reported.
// Each summary event is shaped like a flow event of one client, verdict
// ("accept" or "deny" in FlowSummaryVerdict) and day, its Flows holding the
// day's totals per destination tuple.
const (
	FlowSummaryFrom    = "from"
	FlowSummaryTo      = "to"
	FlowSummaryRecords = "records"
	FlowSummaryRuns    = "runs_sha256"
	FlowSummaryDay     = "day"
	FlowSummaryVerdict = "verdict"
	FlowSummaryLast    = "last_part"
)

// SummaryDetails returns the details every flow.summary event of the
// prune p carries: its range, record count and runs digest.
func (p *PrunePlan) SummaryDetails() map[string]string {
	if len(p.Runs) == 0 {
		return map[string]string{}
	}
	runs := make([][2]uint64, len(p.Runs))
	for i, r := range p.Runs {
		runs[i] = [2]uint64{r.First, r.Last}
	}
	d := auditfile.RunsDigest(runs)
	return map[string]string{
		FlowSummaryFrom:    strconv.FormatUint(p.Runs[0].First, 10),
		FlowSummaryTo:      strconv.FormatUint(p.Runs[len(p.Runs)-1].Last, 10),
		FlowSummaryRecords: strconv.FormatUint(p.Records, 10),
		FlowSummaryRuns:    hex.EncodeToString(d[:]),
	}
}

// ActionPrune is the action of the event a Trimmer records for every
// prune: its full type is cluster.audit_prune. Its details name the
// records pruned ("removed"), the runs ("runs"), the last record the
// prune could reach ("through"), the checkpoint that vouches for the
// chain across the stubs ("anchor"), the summary events recorded first
// ("summaries") and the flow window ("flow_retention").
const ActionPrune = "audit_prune"

// keyLastPrune holds the last prune's summary (PruneStatus).
const keyLastPrune = "sys/audit/prune"

// PruneStatus is what the last prune did, as LastPrune reads it.
type PruneStatus struct {
	Time          time.Time     `json:"time"`
	FlowRetention time.Duration `json:"flow_retention"`
	Through       uint64        `json:"through"`
	Removed       uint64        `json:"removed"`
	Runs          uint64        `json:"runs"`
	Summaries     int           `json:"summaries"`
}

// LastPrune returns the last prune's status; ok is false when the
// journal was never pruned.
func LastPrune(ctx context.Context, s LiveStore) (st PruneStatus, ok bool, err error) {
	kv, ok, err := s.Get(ctx, keyLastPrune, cluster.Local)
	if err != nil || !ok {
		return PruneStatus{}, false, err
	}
	if err := json.Unmarshal(kv.Value, &st); err != nil {
		return PruneStatus{}, false, fmt.Errorf("%w: %s: %v", ErrMalformed, keyLastPrune, err)
	}
	return st, true, nil
}

// PruneReport says what one prune did.
type PruneReport struct {
	Plan      PrunePlan
	Summaries int
	Removed   uint64
}

// Prune plans with PlanPrune under the flow window and prunes what the
// plan allows: it records the summary events (Summarize) first, so that
// rollups rebuilt later keep the pruned records' figures, then replaces
// the runs by stubs, records a cluster.audit_prune event and stores the
// status LastPrune reads. With FlowRetention 0 or nothing to prune it
// does nothing. One call prunes at most about 65,536 records; the loop
// calls it until nothing is left.
func (t *Trimmer) Prune(ctx context.Context) (PruneReport, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cfg.FlowRetention == 0 {
		return PruneReport{}, nil
	}
	if !t.cfg.Store.CanPrune() {
		// A rolling upgrade in progress: members of an earlier version
		// would stop at the prune. Nothing is summarized either, so
		// nothing is recorded twice; the next round tries again.
		t.log.Info("audit flow records not pruned: a member does not apply prunes yet")
		return PruneReport{}, nil
	}
	p := t.cfg.Policy
	p.Retention = t.cfg.FlowRetention
	plan, err := PlanPruneFrom(ctx, t.cfg.Store, p, t.cfg.Now(), t.pruneFrom)
	if err != nil {
		t.metrics.errors.Inc()
		return PruneReport{}, fmt.Errorf("planning prune: %w", err)
	}
	rep := PruneReport{Plan: plan}
	if len(plan.Runs) == 0 {
		return rep, nil
	}
	evs, err := t.cfg.Summarize(ctx, t.cfg.Store, plan)
	if err != nil {
		t.metrics.errors.Inc()
		return rep, fmt.Errorf("summarizing flow records %d to %d: %w", plan.Runs[0].First, plan.Through, err)
	}
	for _, e := range evs {
		if err := t.cfg.Recorder.Record(ctx, e); err != nil {
			t.metrics.errors.Inc()
			return rep, fmt.Errorf("recording flow summary: %w", err)
		}
	}
	rep.Summaries = len(evs)
	res, err := t.cfg.Store.PruneJournal(ctx, plan.Runs)
	if err != nil {
		t.metrics.errors.Inc()
		t.recordPrune(ctx, rep, err)
		return rep, fmt.Errorf("pruning flow records through %d: %w", plan.Through, err)
	}
	rep.Removed = res.Removed
	t.pruneFrom = plan.Through + 1
	t.metrics.pruned.Add(float64(res.Removed))
	t.log.Info("audit flow records pruned", "removed", res.Removed, "runs", res.Runs, "through", plan.Through,
		"anchor", plan.AnchorSeq, "summaries", rep.Summaries, "flow_retention", t.cfg.FlowRetention)
	// The record first: a status that names a prune has its record.
	if err := t.recordPrune(ctx, rep, nil); err != nil {
		return rep, fmt.Errorf("recording prune through %d: %w", plan.Through, err)
	}
	st := PruneStatus{Time: t.cfg.Now().UTC(), FlowRetention: t.cfg.FlowRetention, Through: plan.Through,
		Removed: res.Removed, Runs: res.Runs, Summaries: rep.Summaries}
	if b, err := json.Marshal(st); err == nil {
		if _, err := t.cfg.Store.Put(ctx, keyLastPrune, b); err != nil {
			t.log.Warn("storing the prune status failed", "err", err)
		}
	}
	return rep, nil
}

// recordPrune stores the cluster.audit_prune event of a prune.
func (t *Trimmer) recordPrune(ctx context.Context, rep PruneReport, pruneErr error) error {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	e := Event{
		Type: TypeCluster, Action: ActionPrune, Outcome: Success,
		Actor:  Actor{UserID: "ferryd", Role: "system"},
		Target: Target{Node: t.cfg.Store.ID()},
		Details: map[string]string{
			"through": u(rep.Plan.Through), "removed": u(rep.Removed), "runs": u(uint64(len(rep.Plan.Runs))),
			"anchor": u(rep.Plan.AnchorSeq), "summaries": strconv.Itoa(rep.Summaries),
			"flow_retention": t.cfg.FlowRetention.String(),
		},
	}
	if pruneErr != nil {
		e.Outcome, e.Reason = Failure, pruneErr.Error()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := t.cfg.Recorder.Record(rctx, e)
	if err != nil {
		t.log.Error("recording audit prune failed", "through", rep.Plan.Through, "err", err)
	}
	return err
}

// RetentionStatus is what retention keeps, as `ferryctl audit status`
// shows it.
type RetentionStatus struct {
	// Retention is the audit retention and FlowRetention the raw flow
	// records' window (0: flow records follow Retention).
	Retention, FlowRetention time.Duration
	// First and Head are the first journal record kept and the last.
	First, Head uint64
	// LastPrune is the last prune, or nil.
	LastPrune *PruneStatus
}

// Status returns the retention settings, this node's journal range and
// the last prune.
func (t *Trimmer) Status(ctx context.Context) (RetentionStatus, error) {
	st := RetentionStatus{Retention: t.cfg.Policy.Retention, FlowRetention: t.cfg.FlowRetention}
	var err error
	if st.First, err = t.cfg.Store.JournalFirst(); err != nil {
		return st, fmt.Errorf("reading journal start: %w", err)
	}
	if st.Head, _, err = t.cfg.Store.JournalHead(); err != nil {
		return st, fmt.Errorf("reading journal head: %w", err)
	}
	p, ok, err := LastPrune(ctx, t.cfg.Store)
	if err != nil {
		return st, err
	}
	if ok {
		st.LastPrune = &p
	}
	return st, nil
}
