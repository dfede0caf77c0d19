package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// fakeClock is a clock tests set; goroutines may read it.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time   { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Set(at time.Time) { c.ns.Store(at.UnixNano()) }

// agedJournal writes events stamped with times of the test's choosing,
// each batch followed by a checkpoint signed at that time.
type agedJournal struct {
	t     testing.TB
	log   *audit.Log
	cp    *audit.Checkpointer
	clock *fakeClock
}

func newAgedJournal(t testing.TB, node *cluster.Node, s *audit.Signer) *agedJournal {
	t.Helper()
	j := &agedJournal{t: t, log: newLog(t, node), clock: &fakeClock{}}
	var err error
	j.cp, err = audit.NewCheckpointer(audit.CheckpointerConfig{Store: node, Signer: s, Poll: time.Hour, Now: j.clock.Now, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.cp.Close() })
	return j
}

// batch records n events at the time at, then a checkpoint, and returns
// the checkpoint. It leaves the clock at at.
func (j *agedJournal) batch(at time.Time, n int) audit.Checkpoint {
	j.t.Helper()
	for i := 0; i < n; i++ {
		e := loginEvent(i)
		e.Time = at
		if err := j.log.Record(context.Background(), e); err != nil {
			j.t.Fatal(err)
		}
	}
	j.clock.Set(at)
	c, err := j.cp.Checkpoint(context.Background())
	if err != nil {
		j.t.Fatal(err)
	}
	return c
}

func setCursor(t testing.TB, node *cluster.Node, sink string, seq uint64) {
	t.Helper()
	if _, err := node.Put(context.Background(), audit.CursorKey(sink), []byte(strconv.FormatUint(seq, 10))); err != nil {
		t.Fatal(err)
	}
}

func TestPlanTrim(t *testing.T) {
	c := startCluster(t, 1)
	node := c.Node(0)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	j := newAgedJournal(t, node, newSigner(t))
	batch := j.batch
	a := batch(t0, 30)                   // covers 30
	b := batch(t0.Add(48*time.Hour), 30) // covers 61
	batch(t0.Add(400*24*time.Hour), 30)  // recent
	now := t0.Add(401 * 24 * time.Hour)  // default retention cuts at t0+1d
	setCursor(t, node, "siem", 45)
	setCursor(t, node, "archive", 200)
	tests := []struct {
		name      string
		policy    audit.RetentionPolicy
		through   uint64
		anchorSeq uint64
	}{
		{"no sinks: nothing leaves", audit.RetentionPolicy{}, 0, 0},
		{"a sink that exported nothing holds everything", audit.RetentionPolicy{Sinks: []string{"archive", "new"}}, 0, 0},
		{"the slowest sink bounds the trim", audit.RetentionPolicy{Sinks: []string{"siem", "archive"}}, a.Seq, a.Seq + 1},
		{"retention bounds the trim", audit.RetentionPolicy{Sinks: []string{"archive"}}, a.Seq, a.Seq + 1},
		{"shorter retention, everything exported", audit.RetentionPolicy{Sinks: []string{"archive"}, Retention: 300 * 24 * time.Hour}, b.Seq, b.Seq + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := audit.PlanTrim(context.Background(), node, tt.policy, now)
			if err != nil {
				t.Fatal(err)
			}
			if p.Through != tt.through || p.AnchorSeq != tt.anchorSeq {
				t.Fatalf("plan through %d anchored at %d, want %d at %d", p.Through, p.AnchorSeq, tt.through, tt.anchorSeq)
			}
			if p.Through > 0 && (p.Anchor == nil || p.Anchor.Seq != p.Through) {
				t.Fatalf("anchor %+v does not sign record %d", p.Anchor, p.Through)
			}
		})
	}
}

// journalStart returns the first record node still stores and checks that
// the rest run without a gap to the head.
func journalStart(t *testing.T, node *cluster.Node) uint64 {
	t.Helper()
	var first, next uint64
	err := audit.Scan(context.Background(), node, audit.Filter{}, func(e *audit.Entry) error {
		if first == 0 {
			first, next = e.Seq, e.Seq
		}
		if e.Seq != next {
			return fmt.Errorf("record %d follows %d", e.Seq, next-1)
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if f, err := node.JournalFirst(); err != nil || f != first {
		t.Fatalf("JournalFirst() = %d, %v; the journal starts at %d", f, err, first)
	}
	return first
}

// trimEvents returns the cluster.audit_trim events in node's journal.
func trimEvents(t *testing.T, node *cluster.Node) []*audit.Event {
	t.Helper()
	var out []*audit.Event
	err := audit.Scan(context.Background(), node, audit.Filter{Types: []string{"cluster." + audit.ActionTrim}, NoCheckpoints: true}, func(e *audit.Entry) error {
		out = append(out, e.Event)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// metricValue returns the value of an unlabelled counter or gauge, or -1.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		if m := mf.GetMetric()[0]; m.Counter != nil {
			return m.Counter.GetValue()
		}
		return mf.GetMetric()[0].GetGauge().GetValue()
	}
	return -1
}

// verifyEverywhere checks every node's journal live, and an export of it
// offline, after a trim: the anchor checkpoint vouches for the cut.
func verifyEverywhere(t *testing.T, c interface {
	Len() int
	Node(int) *cluster.Node
}, s *audit.Signer, first uint64) {
	t.Helper()
	for i := 0; i < c.Len(); i++ {
		rep, err := audit.VerifyLive(context.Background(), c.Node(i), audit.VerifyOptions{Keys: s.Keys()})
		if err != nil || !rep.Anchored || rep.First != first {
			t.Fatalf("node %d: VerifyLive after the trim: %+v, %v", i, rep, err)
		}
		var buf bytes.Buffer
		if _, err := audit.Export(context.Background(), &buf, c.Node(i), audit.ExportOptions{Signer: s}); err != nil {
			t.Fatal(err)
		}
		frep, err := audit.VerifyFile(&buf, audit.VerifyOptions{Keys: s.Keys(), RequireTrailer: true})
		if err != nil || !frep.Anchored || !frep.Trailer || frep.First != first {
			t.Fatalf("node %d: export after the trim: %+v, %v", i, frep, err)
		}
	}
}

// The leader's trimmer drops what is older than the retention and
// confirmed by every sink, on every node, records the trim, and leaves a
// journal that still verifies; what a sink has not confirmed stays.
func TestTrimmerTrimsOnTheLeader(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.Node(c.Leader(5 * time.Second))
	s := newSigner(t)
	j := newAgedJournal(t, leader, s)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	a := j.batch(t0, 30)                     // old, confirmed by every sink
	b := j.batch(t0.Add(2*24*time.Hour), 30) // old, not yet confirmed by siem
	j.batch(t0.Add(25*24*time.Hour), 30)     // within the retention
	j.clock.Set(t0.Add(30 * 24 * time.Hour)) // 10 days of retention cut at t0+20d
	head, _, _ := leader.JournalHead()
	setCursor(t, leader, "siem", b.Seq-5)
	setCursor(t, leader, "archive", head)

	regs := make([]*prometheus.Registry, c.Len())
	for i := range regs {
		regs[i] = prometheus.NewRegistry()
		tr, err := audit.NewTrimmer(audit.TrimmerConfig{
			Store: c.Node(i), Recorder: newLog(t, c.Node(i)),
			Policy: audit.RetentionPolicy{Retention: 10 * 24 * time.Hour, Sinks: []string{"siem", "archive"}},
			Delay:  20 * time.Millisecond, Interval: 50 * time.Millisecond, Poll: 5 * time.Millisecond,
			Now: j.clock.Now, Logger: quietLogger(), Registerer: regs[i],
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
	}
	waitTrimmed := func(through uint64) {
		t.Helper()
		waitFor(t, 10*time.Second, func() (bool, string) {
			for i := 0; i < c.Len(); i++ {
				if f, err := c.Node(i).JournalFirst(); err != nil || f != through+1 {
					return false, fmt.Sprintf("node %d starts at %d (%v), want %d", i, f, err, through+1)
				}
			}
			return true, ""
		})
		for i := 0; i < c.Len(); i++ {
			if got := journalStart(t, c.Node(i)); got != through+1 {
				t.Fatalf("node %d: journal starts at %d, want %d", i, got, through+1)
			}
		}
		verifyEverywhere(t, c, s, through+1)
	}

	// Records through a's checkpoint go; b's, older than the retention
	// but not confirmed by siem, stay.
	waitTrimmed(a.Seq)
	ev := trimEvents(t, leader)
	if len(ev) != 1 || ev[0].Outcome != audit.Success || ev[0].Details["through"] != strconv.FormatUint(a.Seq, 10) ||
		ev[0].Details["removed"] != strconv.FormatUint(a.Seq, 10) || ev[0].Details["anchor"] != strconv.FormatUint(a.Seq+1, 10) {
		t.Fatalf("trim events after the first trim: %+v", ev)
	}
	var trimmed float64
	for _, reg := range regs {
		trimmed += metricValue(t, reg, "ferry_audit_trimmed_records_total")
	}
	if trimmed != float64(a.Seq) {
		t.Errorf("ferry_audit_trimmed_records_total summed over the nodes = %v, want %d", trimmed, a.Seq)
	}

	// Once siem confirms b, b goes too; the recent batch stays.
	setCursor(t, leader, "siem", head)
	waitTrimmed(b.Seq)
	if ev := trimEvents(t, leader); len(ev) != 2 || ev[1].Details["removed"] != strconv.FormatUint(b.Seq-a.Seq, 10) {
		t.Fatalf("trim events after the second trim: %+v", ev)
	}
}

// A sink that has exported nothing holds the whole journal: the trim
// removes and records nothing until it has.
func TestTrimStopsAtASinkThatHasNotExported(t *testing.T) {
	c := startCluster(t, 1)
	node := c.Node(0)
	s := newSigner(t)
	j := newAgedJournal(t, node, s)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	a := j.batch(t0, 20)
	j.batch(t0.Add(24*time.Hour), 20)
	j.clock.Set(t0.Add(500 * 24 * time.Hour))
	head, _, _ := node.JournalHead()
	setCursor(t, node, "siem", head)
	tr, err := audit.NewTrimmer(audit.TrimmerConfig{
		Store: node, Recorder: newLog(t, node), Policy: audit.RetentionPolicy{Sinks: []string{"siem", "new"}},
		Delay: time.Hour, Now: j.clock.Now, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	rep, err := tr.Trim(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Removed != 0 || rep.Plan.Through != 0 || rep.Plan.MinCursor != 0 {
		t.Fatalf("trim with a sink that exported nothing: %+v", rep)
	}
	if first := journalStart(t, node); first != 1 || len(trimEvents(t, node)) != 0 {
		t.Fatalf("journal starts at %d with %d trim events, want 1 and none", first, len(trimEvents(t, node)))
	}

	// Once it confirms the first batch, the first batch goes.
	setCursor(t, node, "new", a.Seq+1)
	if rep, err = tr.Trim(context.Background()); err != nil || rep.Removed != a.Seq || rep.First != a.Seq+1 {
		t.Fatalf("trim after the sink exported: %+v, %v", rep, err)
	}
	// Trimming again changes nothing.
	if rep, err = tr.Trim(context.Background()); err != nil || rep.Removed != 0 || len(trimEvents(t, node)) != 1 {
		t.Fatalf("second trim: %+v, %v, %d events", rep, err, len(trimEvents(t, node)))
	}
	verifyEverywhere(t, c, s, a.Seq+1)
}
