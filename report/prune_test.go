package report

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

// nodeHeadLimit shows a node's journal up to head.
type nodeHeadLimit struct {
	*cluster.Node
	head uint64
}

func (h *nodeHeadLimit) JournalHead() (uint64, [32]byte, error) {
	recs, err := h.JournalRange(h.head, h.head, 1)
	if err != nil || len(recs) == 0 {
		return 0, [32]byte{}, fmt.Errorf("no record %d: %v", h.head, err)
	}
	return h.head, recs[0].Hash, nil
}

// days returns the day buckets of a dump.
func days(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if strings.HasPrefix(k, string(bucketDay)+"/") {
			out[k] = v
		}
	}
	return out
}

// TestRollupAcrossPrune: on a real three-node cluster, flow records past
// the flow window are pruned by the leader's Trimmer (summaries first,
// then stubs). Every node's rollup folded the raw records; after the prune
// each equals a rebuild from its journal (which folds the summaries) and
// keeps its daily figures; the hourly buckets of the pruned days are gone
// on every node. A rollup that had folded part of the pruned range when
// the prune committed rebuilds and agrees too, and so does a follower that
// catches up by a snapshot install after the prune.
func TestRollupAcrossPrune(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, WriteTimeout: 10 * time.Second, Tune: func(cfg *cluster.Config) {
		cfg.SnapshotThreshold = 64
		cfg.TrailingLogs = 8
	}})
	leader := c.Leader(10 * time.Second)
	node := c.Node(leader)
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	log, err := audit.New(audit.Config{Store: node, Node: c.ID(leader), RetryFor: 30 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	var now time.Time
	clock := func() time.Time { return now }
	signer := audit.NewSigner(priv)
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Store: node, Signer: signer, Poll: time.Hour, Now: clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Close() })
	checkpoint := func(at time.Time) {
		t.Helper()
		now = at
		if _, err := cp.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	record := func(at time.Time, from, n, users int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if err := log.Record(ctx, flowEvent(at.Add(time.Duration(i)*time.Minute), i%users)); err != nil {
				t.Fatal(err)
			}
			if i%17 == 0 {
				if err := log.Record(ctx, audit.Event{Type: audit.TypeLogin, Outcome: audit.Success, Time: at}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// Two old days (the second across midnight), then recent traffic.
	// Two records in the per-connection layout of older versions, with
	// times finer than a millisecond.
	for _, e := range []audit.Event{
		flowEv(old.Add(123456789*time.Nanosecond), "carol", "pc", "eng", "10.0.4.17", 5432, false, 2, 100, 1000),
		flowEv(old.Add(987654321*time.Nanosecond), "carol", "pc", "eng", "10.0.9.1", 22, true, 3, 0, 0),
	} {
		e.ID = ""
		if err := log.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	record(old, 0, 60, 7)
	checkpoint(old.Add(2 * time.Hour))
	record(old.Add(24*time.Hour), 0, 60, 5)
	record(old.Add(38*time.Hour+40*time.Minute), 0, 30, 3) // 23:40 on, into the next day
	checkpoint(old.Add(48 * time.Hour))
	recent := old.Add(60 * 24 * time.Hour)
	record(recent, 0, 20, 4)
	checkpoint(recent.Add(time.Hour))
	c.WaitConverged(20 * time.Second)
	head, _, _ := node.JournalHead()
	if _, err := node.Put(ctx, audit.CursorKey("siem"), []byte(strconv.FormatUint(head, 10))); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	rollups := make([]*Rollup, 3)
	for i := range rollups {
		rollups[i] = openRollup(t, c.Node(i), filepath.Join(dir, fmt.Sprintf("n%d.db", i)))
		if _, err := rollups[i].Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	before := days(dump(t, rollups[leader]))
	if len(before) < 40 {
		t.Fatalf("only %d day buckets before the prune", len(before))
	}
	// The reports over the old days, whole and by day, as they read
	// before the prune.
	// A range that starts inside a pruned day counts that day whole
	// (daily resolution past the flow window): before the prune it did
	// so only from 9:00, when its flows start.
	oldDays := []AccessQuery{{Until: recent.Truncate(24 * time.Hour)}, {Until: recent.Truncate(24 * time.Hour), By: "day"},
		{Since: old.Truncate(24 * time.Hour), Until: old.Add(72 * time.Hour).Truncate(24 * time.Hour)},
		{Since: old.Add(-3 * time.Hour), Until: recent.Truncate(24 * time.Hour), By: "day"}}
	reports := func(r *Rollup) [][]AccessRow {
		t.Helper()
		var out [][]AccessRow
		for _, q := range oldDays {
			rep, err := r.Access(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rep.Rows)
		}
		return out
	}
	reportsBefore := reports(rollups[leader])
	// And by hour: past the window a pruned day reads as one period at
	// its first hour, with the day's totals.
	byHour, err := rollups[leader].Access(ctx, AccessQuery{Since: old.Truncate(24 * time.Hour), Until: old.Truncate(24 * time.Hour).Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(reportsBefore[0]) == 0 {
		t.Fatal("no access rows before the prune")
	}
	// A rollup that folded part of the old days only: it meets the prune
	// in the middle of its range.
	partial := openRollup(t, &nodeHeadLimit{Node: node, head: 40}, filepath.Join(dir, "partial.db"))
	if _, err := partial.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// A follower cut off before the prune catches up by a snapshot.
	lag := (leader + 1) % 3
	c.Net.Isolate(c.ID(lag))

	tr, err := audit.NewTrimmer(audit.TrimmerConfig{Store: node, Recorder: log, Logger: quiet, Delay: time.Hour, Interval: time.Hour,
		Now: clock, Policy: audit.RetentionPolicy{Sinks: []string{"siem"}}, FlowRetention: audit.DefaultFlowRetention, Summarize: Summarize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	now = recent.Add(2 * time.Hour)
	rep, err := tr.Prune(ctx)
	if err != nil || rep.Removed != 152 || rep.Summaries == 0 {
		t.Fatalf("prune: removed %d with %d summaries, %v (plan %d runs through %d)", rep.Removed, rep.Summaries, err, len(rep.Plan.Runs), rep.Plan.Through)
	}
	if rep, err := tr.Prune(ctx); err != nil || len(rep.Plan.Runs) != 0 {
		t.Fatalf("second prune: %+v, %v", rep, err)
	}
	if st, ok, err := audit.LastPrune(ctx, node); err != nil || !ok || st.Removed != 152 || st.FlowRetention != audit.DefaultFlowRetention {
		t.Fatalf("last prune status %+v %v %v", st, ok, err)
	}
	record(recent.Add(3*time.Hour), 0, 80, 6)
	if err := node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.Net.Heal()
	c.WaitConverged(30 * time.Second)
	if _, err := c.Node(lag).VerifyJournal(); err != nil {
		t.Fatalf("the lagging node's journal after the install: %v", err)
	}
	// The pruned journal verifies, stubs checked against the summaries.
	checkpoint(recent.Add(4 * time.Hour))
	c.WaitConverged(20 * time.Second)
	for i := range 3 {
		vr, err := audit.VerifyLive(ctx, c.Node(i), audit.VerifyOptions{Keys: signer.Keys()})
		if err != nil || vr.Pruned != 152 {
			t.Fatalf("node %d: live verification of the pruned journal: %+v, %v", i, vr, err)
		}
	}

	partial.cfg.Journal = node
	for i, r := range append(append([]*Rollup(nil), rollups...), partial) {
		if _, err := r.Sync(ctx); err != nil {
			t.Fatalf("rollup %d: %v", i, err)
		}
		got := dump(t, r)
		fresh := openRollup(t, node, filepath.Join(t.TempDir(), "fresh.db"))
		if err := fresh.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		want := dump(t, fresh)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("rollup %d after the prune (%d keys) differs from a rebuild from the pruned journal (%d keys)", i, len(got), len(want))
		}
		if got := reports(r); !reflect.DeepEqual(got, reportsBefore) {
			t.Errorf("rollup %d: the access reports over the pruned days changed: %d, %d, %d, %d rows, were %d, %d, %d, %d",
				i, len(got[0]), len(got[1]), len(got[2]), len(got[3]), len(reportsBefore[0]), len(reportsBefore[1]), len(reportsBefore[2]), len(reportsBefore[3]))
		}
		hr, err := r.Access(ctx, AccessQuery{Since: old.Truncate(24 * time.Hour), Until: old.Truncate(24 * time.Hour).Add(24 * time.Hour), By: "hour"})
		if err != nil || len(hr.Rows) != len(byHour.Rows) {
			t.Errorf("rollup %d: a pruned day by hour: %d rows, %v; want the day's %d", i, len(hr.Rows), err, len(byHour.Rows))
		}
		for _, row := range hr.Rows {
			if !row.Period.Equal(old.Truncate(24 * time.Hour)) {
				t.Errorf("rollup %d: a pruned day by hour has a row at %s", i, row.Period)
				break
			}
		}
		for k, v := range before {
			if p := time.Unix(int64(beUint64(k[len(bucketDay)+1:])), 0); !p.Before(recent.Truncate(24 * time.Hour)) {
				continue // flows of the recent day were recorded since
			}
			if got[k] != v {
				t.Errorf("rollup %d: day bucket %q changed by the prune", i, k)
			}
		}
		for k := range got {
			if strings.HasPrefix(k, string(bucketHour)+"/") {
				p := time.Unix(int64(beUint64(k[len(bucketHour)+1:])), 0)
				if p.Before(old.Add(72 * time.Hour)) {
					t.Errorf("rollup %d keeps an hourly bucket of a pruned day: %s", i, p.UTC())
				}
			}
		}
	}
}

func beUint64(s string) uint64 {
	var v uint64
	for i := 0; i < 8; i++ {
		v = v<<8 | uint64(s[i])
	}
	return v
}
