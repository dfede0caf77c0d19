package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/audit/auditfile"
	"github.com/ferryvpn/ferry/cluster"
)

// prunedJournal is a journal with two runs of old flow records among
// other events, each stretch followed by a checkpoint, and recent records
// after them.
type prunedJournal struct {
	node   *cluster.Node
	signer *audit.Signer
	j      *agedJournal
	t0     time.Time
	// runs are the flow runs old enough to prune.
	runs []cluster.PruneRun
}

func newPrunedJournal(t *testing.T) *prunedJournal {
	t.Helper()
	c := startCluster(t, 1)
	pj := &prunedJournal{node: c.Node(0), signer: newSigner(t), t0: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	pj.j = newAgedJournal(t, pj.node, pj.signer)
	rec := func(e audit.Event, at time.Time) uint64 {
		t.Helper()
		e.Time = at
		r, err := pj.j.log.Append(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		return r.Seq
	}
	// login login flow*5 login flow*3 checkpoint | login flow*2 checkpoint (recent)
	at := pj.t0
	rec(loginEvent(1), at)
	rec(loginEvent(2), at)
	first := rec(flowEvent(1), at)
	for i := 2; i <= 5; i++ {
		rec(flowEvent(i), at)
	}
	pj.runs = append(pj.runs, cluster.PruneRun{First: first, Last: first + 4})
	rec(loginEvent(3), at)
	first = rec(flowEvent(6), at)
	rec(flowEvent(7), at)
	rec(flowEvent(8), at)
	pj.runs = append(pj.runs, cluster.PruneRun{First: first, Last: first + 2})
	pj.j.clock.Set(at)
	if _, err := pj.j.cp.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	recent := pj.t0.Add(40 * 24 * time.Hour)
	rec(loginEvent(4), recent)
	rec(flowEvent(9), recent)
	rec(flowEvent(10), recent)
	pj.j.clock.Set(recent)
	if _, err := pj.j.cp.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	head, _, _ := pj.node.JournalHead()
	setCursor(t, pj.node, "siem", head)
	return pj
}

func (pj *prunedJournal) export(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := audit.Export(context.Background(), &buf, pj.node, audit.ExportOptions{Signer: pj.signer}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (pj *prunedJournal) prune(t *testing.T) audit.PrunePlan {
	t.Helper()
	plan, err := audit.PlanPrune(context.Background(), pj.node, audit.RetentionPolicy{Sinks: []string{"siem"}}, pj.t0.Add(31*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Runs) != len(pj.runs) || plan.Runs[0] != pj.runs[0] || plan.Runs[1] != pj.runs[1] {
		t.Fatalf("plan runs %v, want %v", plan.Runs, pj.runs)
	}
	// What the leader does (Trimmer.Prune): the summary first, then the
	// stubs.
	e := audit.Event{Type: audit.TypeFlowSummary, Outcome: audit.Success, Time: pj.t0, Details: plan.SummaryDetails()}
	e.Details[audit.FlowSummaryLast] = "true"
	if err := pj.j.log.Record(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	res, err := pj.node.PruneJournal(context.Background(), plan.Runs)
	if err != nil || res.Removed != 8 {
		t.Fatalf("prune: %+v, %v", res, err)
	}
	pj.j.clock.Set(pj.t0.Add(40 * 24 * time.Hour))
	if _, err := pj.j.cp.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	return plan
}

// Pruned flow records leave stubs that keep the journal verifiable: on
// the node, over a range, and in an export that `ferryctl audit verify`
// checks offline.
func TestPruneKeepsJournalVerifiable(t *testing.T) {
	pj := newPrunedJournal(t)
	pj.prune(t)
	keys := audit.VerifyOptions{Keys: pj.signer.Keys()}
	if n, err := pj.node.VerifyJournal(); err != nil {
		t.Fatalf("node chain after prune (%d records): %v", n, err)
	}
	rep, err := audit.VerifyLive(context.Background(), pj.node, keys)
	if err != nil || rep.Stubs != 2 || rep.Pruned != 8 || !rep.Anchored {
		t.Fatalf("live verify after prune: %+v, %v", rep, err)
	}
	head, _, _ := pj.node.JournalHead()
	if rep.Signed != head-1 {
		t.Fatalf("signed through %d, want %d", rep.Signed, head-1)
	}
	if rep, err := audit.VerifyRange(context.Background(), pj.node, pj.runs[0].First+2, keys); err != nil || rep.Stubs != 2 {
		t.Fatalf("range verify from inside a stub: %+v, %v", rep, err)
	}
	f := pj.export(t)
	if got := bytes.Count(f, []byte(`"pruned":`)); got != 2 {
		t.Fatalf("export holds %d stub lines, want 2:\n%s", got, f)
	}
	rep, err = audit.VerifyFile(bytes.NewReader(f), audit.VerifyOptions{Keys: pj.signer.Keys(), RequireTrailer: true})
	if err != nil || !rep.Trailer || rep.Stubs != 2 || rep.Pruned != 8 {
		t.Fatalf("export verify after prune: %+v, %v", rep, err)
	}
	// An export that ends before the flow summary (seq<=) cannot account
	// for its stubs: it says so and verifies.
	var cut bytes.Buffer
	if _, err := audit.Export(context.Background(), &cut, pj.node, audit.ExportOptions{Signer: pj.signer,
		Filter: audit.Filter{ToSeq: pj.runs[1].Last + 1}}); err != nil {
		t.Fatal(err)
	}
	rep, err = audit.VerifyFile(&cut, audit.VerifyOptions{Keys: pj.signer.Keys(), RequireTrailer: true, AcceptUnsignedTail: true})
	if err != nil || rep.PrunedUnchecked != 8 {
		t.Fatalf("export cut before the summary: %+v, %v", rep, err)
	}
	// Nothing is pruned twice: a second plan finds nothing left.
	plan, err := audit.PlanPrune(context.Background(), pj.node, audit.RetentionPolicy{Sinks: []string{"siem"}}, pj.t0.Add(31*24*time.Hour))
	if err != nil || len(plan.Runs) != 0 {
		t.Fatalf("second plan: %+v, %v", plan, err)
	}
}

// Tampering with an export that holds stubs is detected: a kept record
// after a stub edited, a stub's hash edited, a non-flow record or a stub
// deleted.
func TestPruneExportTamperDetected(t *testing.T) {
	pj := newPrunedJournal(t)
	pj.prune(t)
	f := pj.export(t)
	lines := strings.Split(strings.TrimSuffix(string(f), "\n"), "\n")
	find := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		t.Fatalf("no line starting %q", prefix)
		return -1
	}
	seqLine := func(seq uint64) int { return find(`{"seq":` + uitoa(seq) + `,`) }
	afterStub := seqLine(pj.runs[0].Last + 1) // the login between the runs
	recentLogin := pj.runs[1].Last + 2        // after the checkpoint
	stub := seqLine(pj.runs[0].First)
	tests := []struct {
		name   string
		tamper func(ls []string) []string
	}{
		{"kept record after a stub edited", func(ls []string) []string {
			ls[afterStub] = strings.Replace(ls[afterStub], "user3@example.com", "user9@example.com", 1)
			return ls
		}},
		{"stub hash edited", func(ls []string) []string {
			i := strings.Index(ls[stub], `"hash":"`) + len(`"hash":"`)
			b := []byte(ls[stub])
			if b[i] == '0' {
				b[i] = '1'
			} else {
				b[i] = '0'
			}
			ls[stub] = string(b)
			return ls
		}},
		{"stub widened", func(ls []string) []string {
			ls[stub] = strings.Replace(ls[stub], `"pruned":5`, `"pruned":6`, 1)
			return ls
		}},
		{"non-flow record next to a stub replaced by a stub", func(ls []string) []string {
			ls[afterStub] = asStub(t, ls[afterStub])
			return ls
		}},
		{"non-flow record outside any prune replaced by a stub", func(ls []string) []string {
			i := seqLine(recentLogin)
			ls[i] = asStub(t, ls[i])
			return ls
		}},
		{"non-flow record deleted", func(ls []string) []string { return append(ls[:afterStub:afterStub], ls[afterStub+1:]...) }},
		{"stub deleted", func(ls []string) []string { return append(ls[:stub:stub], ls[stub+1:]...) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls := tt.tamper(append([]string(nil), lines...))
			bad := strings.Join(ls, "\n") + "\n"
			if bad == string(f) {
				t.Fatal("tampering changed nothing")
			}
			rep, err := audit.VerifyFile(strings.NewReader(bad), audit.VerifyOptions{Keys: pj.signer.Keys(), RequireTrailer: true})
			if !errors.Is(err, audit.ErrTampered) {
				t.Fatalf("tampered export verified: %+v, %v", rep, err)
			}
		})
	}
}

// A SIEM's copy of the pruned records, exported before the prune,
// re-hashes from a stub's prev hash to the stub's hash: the raw records
// kept long term are provably the ones the journal pruned.
func TestPrunedRecordsRehashFromSIEMCopy(t *testing.T) {
	pj := newPrunedJournal(t)
	siem := pj.export(t)
	pj.prune(t)
	byseq := map[uint64]auditfile.Line{}
	for _, l := range strings.Split(strings.TrimSuffix(string(siem), "\n"), "\n") {
		line, err := auditfile.ParseLine([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if line.Seq > 0 && line.Export == nil && line.End == nil && line.Checkpoint == nil {
			byseq[line.Seq] = line
		}
	}
	recs, err := pj.node.JournalRange(1, ^uint64(0), 1000)
	if err != nil {
		t.Fatal(err)
	}
	stubs := 0
	for _, r := range recs {
		if r.Pruned == 0 {
			continue
		}
		stubs++
		h := r.PrevHash
		for seq := r.Seq; seq <= r.LastSeq(); seq++ {
			l, ok := byseq[seq]
			if !ok {
				t.Fatalf("SIEM copy lacks record %d", seq)
			}
			if !strings.Contains(string(l.Bytes()), `"flow.`) {
				t.Fatalf("record %d pruned but not a flow record: %s", seq, l.Bytes())
			}
			h = cluster.ChainHash(h, seq, l.Bytes())
		}
		if h != r.Hash {
			t.Fatalf("stub %d..%d: the SIEM copy re-hashes to %x, the stub holds %x", r.Seq, r.LastSeq(), h, r.Hash)
		}
	}
	if stubs != 2 {
		t.Fatalf("%d stubs, want 2", stubs)
	}
}

// A prune plan waits for every sink and for the flow window, and never
// goes past the last checkpoint older than the window.
func TestPlanPruneWaitsForSinksAndWindow(t *testing.T) {
	pj := newPrunedJournal(t)
	now := pj.t0.Add(31 * 24 * time.Hour)
	tests := []struct {
		name   string
		policy audit.RetentionPolicy
		now    time.Time
		runs   int
	}{
		{"no sinks: nothing pruned", audit.RetentionPolicy{}, now, 0},
		{"a sink that confirmed nothing holds everything", audit.RetentionPolicy{Sinks: []string{"siem", "new"}}, now, 0},
		{"inside the window", audit.RetentionPolicy{Sinks: []string{"siem"}}, pj.t0.Add(29 * 24 * time.Hour), 0},
		{"shorter window", audit.RetentionPolicy{Sinks: []string{"siem"}, Retention: 24 * time.Hour}, pj.t0.Add(2 * 24 * time.Hour), 2},
		{"past the window", audit.RetentionPolicy{Sinks: []string{"siem"}}, now, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := audit.PlanPrune(context.Background(), pj.node, tt.policy, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Runs) != tt.runs {
				t.Fatalf("plan %+v, want %d runs", p, tt.runs)
			}
		})
	}
	// A sink behind the checkpoint holds the prune back.
	setCursor(t, pj.node, "slow", pj.runs[1].Last-1)
	p, err := audit.PlanPrune(context.Background(), pj.node, audit.RetentionPolicy{Sinks: []string{"siem", "slow"}}, now)
	if err != nil || len(p.Runs) != 0 {
		t.Fatalf("plan with a sink behind the checkpoint: %+v, %v", p, err)
	}
}

// asStub rewrites a record line as a stub of that one record.
func asStub(t *testing.T, line string) string {
	t.Helper()
	l, err := auditfile.ParseLine([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	b, err := auditfile.AppendLine(nil, &auditfile.Line{Seq: l.Seq, PrevHash: l.PrevHash, Hash: l.Hash, Pruned: 1})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A prune that stubs a record other than a flow record (the state machine
// cannot tell) fails live verification: the flow summaries name the runs
// that may be pruned.
func TestPruneOfNonFlowRecordDetected(t *testing.T) {
	pj := newPrunedJournal(t)
	pj.prune(t)
	keys := audit.VerifyOptions{Keys: pj.signer.Keys()}
	if _, err := audit.VerifyLive(context.Background(), pj.node, keys); err != nil {
		t.Fatal(err)
	}
	login := pj.runs[1].Last + 2
	if _, err := pj.node.PruneJournal(context.Background(), []cluster.PruneRun{{First: login, Last: login}}); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyLive(context.Background(), pj.node, keys)
	if !errors.Is(err, audit.ErrTampered) || !strings.Contains(err.Error(), "without a flow summary") {
		t.Fatalf("a stubbed login passed live verification: %+v, %v", rep, err)
	}
}

func uitoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// The Trimmer's loop prunes on the leader after each trim: with a flow
// window set, flow records past it go without anyone calling Prune, and
// the status says so.
func TestTrimmerLoopPrunes(t *testing.T) {
	pj := newPrunedJournal(t)
	summarize := func(ctx context.Context, j audit.Journal, plan audit.PrunePlan) ([]audit.Event, error) {
		e := audit.Event{Type: audit.TypeFlowSummary, Outcome: audit.Success, Details: plan.SummaryDetails()}
		e.Details[audit.FlowSummaryLast] = "true"
		return []audit.Event{e}, nil
	}
	tr, err := audit.NewTrimmer(audit.TrimmerConfig{Store: pj.node, Recorder: pj.j.log, Logger: quietLogger(),
		Delay: time.Millisecond, Interval: time.Hour, Poll: 5 * time.Millisecond,
		Now:    func() time.Time { return pj.t0.Add(31 * 24 * time.Hour) },
		Policy: audit.RetentionPolicy{Sinks: []string{"siem"}}, FlowRetention: audit.DefaultFlowRetention, Summarize: summarize})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	waitFor(t, 20*time.Second, func() (bool, string) {
		st, err := tr.Status(context.Background())
		if err != nil || st.LastPrune == nil {
			return false, fmt.Sprintf("no prune yet: %+v, %v", st, err)
		}
		return st.LastPrune.Removed == 8 && st.FlowRetention == audit.DefaultFlowRetention, fmt.Sprintf("status %+v, last prune %+v", st, *st.LastPrune)
	})
	ids := journalIDs(t, pj.node)
	var pruneEvents int
	err = audit.Scan(context.Background(), pj.node, audit.Filter{Types: []string{"cluster." + audit.ActionPrune}, NoCheckpoints: true}, func(e *audit.Entry) error {
		pruneEvents++
		if e.Event.Details["removed"] != "8" || e.Event.Outcome != audit.Success {
			t.Errorf("prune record %+v", e.Event)
		}
		return nil
	})
	if err != nil || pruneEvents != 1 || len(ids) == 0 {
		t.Fatalf("%d cluster.audit_prune records, %v", pruneEvents, err)
	}
}

func TestTrimmerConfigFlowRetention(t *testing.T) {
	c := startCluster(t, 1)
	sum := func(context.Context, audit.Journal, audit.PrunePlan) ([]audit.Event, error) { return nil, nil }
	tests := []struct {
		name string
		cfg  audit.TrimmerConfig
		want string
	}{
		{"negative", audit.TrimmerConfig{FlowRetention: -time.Hour, Summarize: sum}, "flow retention -1h0m0s: must not be negative"},
		{"no summarize", audit.TrimmerConfig{FlowRetention: time.Hour}, "summarize: required"},
		{"over the audit retention", audit.TrimmerConfig{FlowRetention: 50 * time.Hour, Summarize: sum, Policy: audit.RetentionPolicy{Retention: 48 * time.Hour}}, "must not exceed the audit retention"},
		{"over the default audit retention", audit.TrimmerConfig{FlowRetention: audit.DefaultRetention + time.Hour, Summarize: sum}, "must not exceed the audit retention"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Store, tt.cfg.Recorder = c.Node(0), newLog(t, c.Node(0))
			if err := tt.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// During a rolling upgrade (a member that has not advertised that it
// applies prunes) the Trimmer neither prunes nor records summaries, so
// nothing is recorded twice when it tries again after the upgrade.
func TestTrimmerWaitsForEveryMemberToApplyPrunes(t *testing.T) {
	pj := newPrunedJournal(t)
	if err := pj.node.Delete(context.Background(), "sys/cluster/codec/"+pj.node.ID()); err != nil {
		t.Fatal(err)
	}
	summaries := 0
	summarize := func(context.Context, audit.Journal, audit.PrunePlan) ([]audit.Event, error) {
		summaries++
		return nil, nil
	}
	tr, err := audit.NewTrimmer(audit.TrimmerConfig{Store: pj.node, Recorder: pj.j.log, Logger: quietLogger(),
		Delay: time.Hour, Interval: time.Hour,
		Now:    func() time.Time { return pj.t0.Add(31 * 24 * time.Hour) },
		Policy: audit.RetentionPolicy{Sinks: []string{"siem"}}, FlowRetention: audit.DefaultFlowRetention, Summarize: summarize})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	before := journalIDs(t, pj.node)
	rep, err := tr.Prune(context.Background())
	if err != nil || len(rep.Plan.Runs) != 0 || summaries != 0 {
		t.Fatalf("prune during an upgrade: %+v, %v, %d summaries", rep, err, summaries)
	}
	if after := journalIDs(t, pj.node); len(after) != len(before) {
		t.Fatalf("journal changed: %d records, was %d", len(after), len(before))
	}
}
