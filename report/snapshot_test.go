package report

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

// TestRollupAfterSnapshotInstall: on a real three-node cluster, each node
// folds its own copy of the journal. A follower cut off while flows are
// recorded catches up by installing a Raft snapshot (the leader compacted
// its log); a backup restored into the cluster replaces every node's
// journal with an older one, after which other flows are recorded. After
// each, every node's rollup equals a rebuild from its journal, and all
// nodes' rollups are equal.
func TestRollupAfterSnapshotInstall(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, WriteTimeout: 10 * time.Second, Tune: func(cfg *cluster.Config) {
		cfg.SnapshotThreshold = 32
		cfg.TrailingLogs = 8
	}})
	leader := c.Leader(10 * time.Second)
	lag := (leader + 1) % 3
	log, err := audit.New(audit.Config{Store: c.Node(leader), Node: c.ID(leader), RetryFor: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	record := func(from, n, users int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if err := log.Record(ctx, flowEvent(start.Add(time.Duration(i)*time.Minute), i%users)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	rollups := make([]*Rollup, 3)
	for i := range rollups {
		rollups[i] = openRollup(t, c.Node(i), filepath.Join(dir, fmt.Sprintf("n%d.db", i)))
	}
	syncAll := func() {
		t.Helper()
		c.WaitConverged(20 * time.Second)
		for i, r := range rollups {
			if _, err := r.Sync(ctx); err != nil {
				t.Fatalf("node %d: %v", i, err)
			}
		}
	}
	// checkAll compares every node's rollup with a rebuild from its
	// journal, and the nodes with one another.
	checkAll := func(what string) {
		t.Helper()
		var first map[string]string
		for i, r := range rollups {
			got := dump(t, r)
			fresh := openRollup(t, c.Node(i), filepath.Join(t.TempDir(), "fresh.db"))
			if err := fresh.Rebuild(ctx); err != nil {
				t.Fatal(err)
			}
			if want := dump(t, fresh); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: node %d's rollup (%d keys) differs from a rebuild from its journal (%d keys)", what, i, len(got), len(want))
			}
			if first == nil {
				first = got
			} else if !reflect.DeepEqual(got, first) {
				t.Errorf("%s: node %d's rollup differs from node 0's", what, i)
			}
		}
		rep, err := rollups[lag].Access(ctx, AccessQuery{})
		if err != nil || len(rep.Rows) == 0 {
			t.Errorf("%s: access report on the lagging node: %d rows, %v", what, len(rep.Rows), err)
		}
	}

	record(0, 40, 7)
	syncAll()
	var backup bytes.Buffer
	if _, err := c.Node(leader).Backup(&backup); err != nil {
		t.Fatal(err)
	}

	// A follower cut off while the leader records and compacts its log
	// catches up by a snapshot install (its watchers see a reset).
	w, _, _, err := c.Node(lag).Watch("")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c.Net.Isolate(c.ID(lag))
	record(40, 200, 11)
	if err := c.Node(leader).Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.Net.Heal()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for reset := false; !reset; {
		evs, err := w.Next(wctx)
		if err != nil {
			t.Fatalf("waiting for the lagging node's snapshot install: %v", err)
		}
		for _, e := range evs {
			reset = reset || e.Type == cluster.EventReset
		}
	}
	syncAll()
	checkAll("after a snapshot install")

	// A backup restored into the cluster: every journal goes back to the
	// backup's, under rollups that folded more; then other flows come.
	rctx, rcancel := context.WithTimeout(clustertest.AsAdmin(ctx), 30*time.Second)
	defer rcancel()
	if err := c.Node(c.Leader(10*time.Second)).Restore(rctx, bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatal(err)
	}
	record(1000, 30, 5)
	syncAll()
	checkAll("after a restore and new flows")
}
