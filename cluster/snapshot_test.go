package cluster_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

func writeSome(t *testing.T, n *cluster.Node, prefix string, count int) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	for j := 0; j < count; j++ {
		k := fmt.Sprintf("%s/%04d", prefix, j)
		if _, err := n.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
		if j%10 == 0 {
			if _, err := n.Append(ctx, [][]byte{[]byte("rec " + k)}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A follower that fell behind a compacted log installs a snapshot: its state
// ends up identical and its watchers are told to resync.
func TestLaggingFollowerInstallsSnapshot(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, Tune: func(cfg *cluster.Config) {
		cfg.SnapshotThreshold = 32
		cfg.TrailingLogs = 8
	}})
	leader := c.Leader(5 * time.Second)
	lag := (leader + 1) % 3
	writeSome(t, c.Node(leader), "before", 20)
	c.WaitConverged(10 * time.Second)

	w, _, _, err := c.Node(lag).Watch("")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c.Net.Isolate(c.ID(lag))
	writeSome(t, c.Node(leader), "during", 200)
	if err := c.Node(leader).Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.Net.Heal()
	c.WaitConverged(15 * time.Second)
	checkConsistent(t, c, nil)

	sawReset := false
	ctx := ctxT(t, 10*time.Second)
	for !sawReset {
		evs, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for reset: %v", err)
		}
		for _, e := range evs {
			if e.Type == cluster.EventReset {
				sawReset = true
			}
		}
	}
}

// A backup restored into a new cluster gives identical state; a damaged
// backup changes nothing.
func TestBackupRestore(t *testing.T) {
	src := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	writeSome(t, src.Node(0), "data", 120)
	src.WaitConverged(10 * time.Second)
	var backup bytes.Buffer
	if _, err := src.Node(1).Backup(&backup); err != nil {
		t.Fatal(err)
	}
	want := snapshotState(t, src.Node(1))

	dst := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	writeSome(t, dst.Node(0), "old", 5)
	dst.WaitConverged(10 * time.Second)
	leader := dst.Leader(5 * time.Second)
	w, _, _, err := dst.Node((leader + 1) % 3).Watch("")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	damaged := []struct {
		name string
		data []byte
	}{
		{"truncated", backup.Bytes()[:backup.Len()/2]},
		{"flipped byte", flip(backup.Bytes(), backup.Len()/3)},
		{"not a backup", []byte("hello")},
		{"empty", nil},
	}
	before := snapshotState(t, dst.Node(leader))
	for _, d := range damaged {
		t.Run(d.name, func(t *testing.T) {
			err := dst.Node(leader).Restore(ctxT(t, 10*time.Second), bytes.NewReader(d.data))
			if !errors.Is(err, cluster.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
	if err := diffState(before, snapshotState(t, dst.Node(leader))); err != nil {
		t.Fatalf("a damaged backup changed state: %v", err)
	}

	if err := dst.Node(leader).Restore(ctxT(t, 10*time.Second), bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatal(err)
	}
	// Writes after the restore land on top of the restored state everywhere.
	if _, err := dst.Node((leader+2)%3).Put(ctxT(t, 10*time.Second), "after", []byte("restore")); err != nil {
		t.Fatal(err)
	}
	dst.WaitConverged(10 * time.Second)
	for i := 0; i < 3; i++ {
		got := snapshotState(t, dst.Node(i))
		if len(got.kvs) != len(want.kvs)+1 {
			t.Fatalf("node %d: %d keys, want %d restored + 1", i, len(got.kvs), len(want.kvs))
		}
		withoutAfter := state{kvs: nil, journal: got.journal}
		for _, kv := range got.kvs {
			if kv.Key != "after" {
				withoutAfter.kvs = append(withoutAfter.kvs, kv)
			}
		}
		if err := diffState(want, withoutAfter); err != nil {
			t.Fatalf("node %d after restore: %v", i, err)
		}
		if _, err := dst.Node(i).VerifyJournal(); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := w.Next(ctxT(t, 10*time.Second))
	if err != nil || len(evs) == 0 || evs[0].Type != cluster.EventReset {
		t.Fatalf("watcher on a follower: got %+v, %v; want a reset first", evs, err)
	}
}

func flip(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0x40
	return out
}

// After an unclean stop the state file, written without fsync, is not
// trusted: the node rebuilds it from its snapshot and log, even when the
// file was torn.
func TestUncleanRestartRebuildsState(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, Tune: func(cfg *cluster.Config) {
		cfg.SnapshotThreshold = 32
		cfg.TrailingLogs = 8
	}})
	a := &acks{m: map[string][]byte{}}
	for j := 0; j < 60; j++ {
		k := fmt.Sprintf("k%03d", j)
		if err := a.put(t, c.Node(j%3), k, []byte(k)); err != nil {
			t.Fatal(err)
		}
		if j == 40 {
			for i := 0; i < 3; i++ {
				if err := c.Node(i).Snapshot(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	c.WaitConverged(10 * time.Second)
	victim := (c.Leader(5*time.Second) + 1) % 3
	c.Stop(victim)
	// What a crash leaves: no clean marker, and a torn state file.
	if err := os.Remove(filepath.Join(c.Dir(victim), "state.clean")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir(victim), "state.db"), bytes.Repeat([]byte{0xde, 0xad}, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.put(t, c.Node((victim+1)%3), "while-down", []byte("x")); err != nil {
		t.Fatal(err)
	}
	c.StartNode(victim)
	c.WaitAllReady(10 * time.Second)
	checkConsistent(t, c, a.m)
}
