package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

func TestTxnSemantics(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	n := c.Node(0)
	ctx := ctxT(t, 30*time.Second)
	v1, err := n.Put(ctx, "a", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		txn     cluster.Txn
		succeed bool
		failed  int
	}{
		{"absent holds for a new key", cluster.Txn{Compares: []cluster.Compare{cluster.IfAbsent("new")}, Ops: []cluster.Op{cluster.Put("new", []byte("x"))}}, true, -1},
		{"absent fails for an existing key", cluster.Txn{Compares: []cluster.Compare{cluster.IfAbsent("a")}, Ops: []cluster.Op{cluster.Put("a", []byte("no"))}}, false, 0},
		{"version holds", cluster.Txn{Compares: []cluster.Compare{cluster.IfVersion("a", v1)}, Ops: []cluster.Op{cluster.Put("b", []byte("2"))}}, true, -1},
		{"stale version fails", cluster.Txn{Compares: []cluster.Compare{cluster.IfVersion("a", v1-1)}, Ops: []cluster.Op{cluster.Put("a", []byte("no"))}}, false, 0},
		{"version 0 means absent", cluster.Txn{Compares: []cluster.Compare{cluster.IfVersion("zzz", 0)}, Ops: []cluster.Op{cluster.Put("c", []byte("3"))}}, true, -1},
		{"value holds", cluster.Txn{Compares: []cluster.Compare{cluster.IfValue("a", []byte("1"))}, Ops: []cluster.Op{cluster.Put("d", []byte("4"))}}, true, -1},
		{"value fails, second compare named", cluster.Txn{Compares: []cluster.Compare{cluster.IfValue("a", []byte("1")), cluster.IfValue("a", []byte("2"))}, Ops: []cluster.Op{cluster.Put("a", []byte("no"))}}, false, 1},
		{"value fails on absent key", cluster.Txn{Compares: []cluster.Compare{cluster.IfValue("nope", nil)}, Ops: []cluster.Op{cluster.Put("a", []byte("no"))}}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := n.Txn(ctx, tt.txn)
			if err != nil {
				t.Fatal(err)
			}
			if r.Succeeded != tt.succeed || r.FailedCompare != tt.failed {
				t.Fatalf("got succeeded=%v failed=%d, want %v %d", r.Succeeded, r.FailedCompare, tt.succeed, tt.failed)
			}
		})
	}
	if kv, _, _ := n.Get(ctx, "a", cluster.Linearizable); string(kv.Value) != "1" || kv.Version != v1 {
		t.Fatalf("failed transactions changed a: %q@%d", kv.Value, kv.Version)
	}

	// All or nothing, and one revision for all of a transaction's writes.
	r, err := n.Txn(ctx, cluster.Txn{Ops: []cluster.Op{cluster.Put("p/1", []byte("x")), cluster.Put("p/2", []byte("y")), cluster.Delete("b")}})
	if err != nil || !r.Succeeded {
		t.Fatal(r, err)
	}
	kvs, rev, err := n.List(ctx, "p/", cluster.Linearizable)
	if err != nil || len(kvs) != 2 || rev != r.Revision || kvs[0].Version != r.Revision || kvs[1].Version != r.Revision {
		t.Fatalf("list p/: %+v rev %d err %v, want two keys at revision %d", kvs, rev, err, r.Revision)
	}
	if _, ok, _ := n.Get(ctx, "b", cluster.Local); ok {
		t.Fatal("b not deleted")
	}
	if _, err := n.Txn(ctx, cluster.Txn{Ops: []cluster.Op{cluster.DeletePrefix("p/")}}); err != nil {
		t.Fatal(err)
	}
	if kvs, _, _ := n.List(ctx, "p/", cluster.Local); len(kvs) != 0 {
		t.Fatalf("delete prefix left %d keys", len(kvs))
	}
}

func TestInvalidRequestsChangeNothing(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	n := c.Node(0)
	ctx := ctxT(t, 30*time.Second)
	before := snapshotState(t, n)
	bad := []struct {
		name string
		txn  cluster.Txn
	}{
		{"empty", cluster.Txn{}},
		{"empty key", cluster.Txn{Ops: []cluster.Op{cluster.Put("", []byte("x"))}}},
		{"long key", cluster.Txn{Ops: []cluster.Op{cluster.Put(string(make([]byte, cluster.MaxKeyLen+1)), nil)}}},
		{"huge value", cluster.Txn{Ops: []cluster.Op{cluster.Put("k", make([]byte, cluster.MaxValueLen+1))}}},
		{"unknown op", cluster.Txn{Ops: []cluster.Op{{Kind: 99, Key: "k"}}}},
		{"unknown compare", cluster.Txn{Compares: []cluster.Compare{{Kind: 42, Key: "k"}}, Ops: []cluster.Op{cluster.Put("k", nil)}}},
		{"empty prefix delete", cluster.Txn{Ops: []cluster.Op{cluster.DeletePrefix("")}}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n.Txn(ctx, tt.txn)
			if !errors.Is(err, cluster.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := n.Append(ctx, nil); !errors.Is(err, cluster.ErrInvalid) {
		t.Fatalf("empty append: %v", err)
	}
	if _, err := n.Append(ctx, [][]byte{make([]byte, cluster.MaxRecordLen+1)}); !errors.Is(err, cluster.ErrInvalid) {
		t.Fatalf("huge record: %v", err)
	}
	if err := diffState(before, snapshotState(t, n)); err != nil {
		t.Fatalf("invalid requests changed state: %v", err)
	}
}

func TestWatchSeesEveryChangeOnceInOrder(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	ctx := ctxT(t, time.Minute)
	if _, err := c.Node(0).Put(ctx, "w/seed", []byte("0")); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(10 * time.Second)

	// A watcher on every node; writes go through every node.
	type watch struct {
		w       *cluster.Watcher
		initial []cluster.KV
		rev     uint64
	}
	var ws []watch
	for i := 0; i < 3; i++ {
		w, initial, rev, err := c.Node(i).Watch("w/")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if len(initial) != 1 || initial[0].Key != "w/seed" {
			t.Fatalf("initial listing %+v, want w/seed", initial)
		}
		ws = append(ws, watch{w, initial, rev})
	}
	var want []cluster.Event
	exists := map[string]bool{}
	for j := 0; j < 60; j++ {
		k := fmt.Sprintf("w/%02d", j%20)
		n := c.Node(j % 3)
		if j%7 == 6 {
			r, err := n.Txn(ctx, cluster.Txn{Ops: []cluster.Op{cluster.Delete(k)}})
			if err != nil {
				t.Fatal(err)
			}
			if exists[k] { // deleting an absent key changes nothing
				want = append(want, cluster.Event{Type: cluster.EventDelete, Key: k, Revision: r.Revision})
			}
			delete(exists, k)
			continue
		}
		v := []byte(fmt.Sprint(j))
		r, err := n.Txn(ctx, cluster.Txn{Ops: []cluster.Op{cluster.Put(k, v), cluster.Put("other/"+k, v)}})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, cluster.Event{Type: cluster.EventPut, Key: k, Value: v, Revision: r.Revision})
		exists[k] = true
	}
	for i, w := range ws {
		var got []cluster.Event
		for len(got) < len(want) {
			evs, err := w.w.Next(ctxT(t, 10*time.Second))
			if err != nil {
				t.Fatalf("node %d: after %d events: %v", i, len(got), err)
			}
			got = append(got, evs...)
		}
		for j := range want {
			g, e := got[j], want[j]
			if g.Type != e.Type || g.Key != e.Key || g.Revision != e.Revision || !bytes.Equal(g.Value, e.Value) {
				t.Fatalf("node %d event %d: got %v %s@%d, want %v %s@%d", i, j, g.Type, g.Key, g.Revision, e.Type, e.Key, e.Revision)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("node %d: %d events, want %d (duplicates?)", i, len(got), len(want))
		}
		if g := got[0].Revision; g <= w.rev {
			t.Fatalf("first event at revision %d is not after the listing's %d", g, w.rev)
		}
	}
	// Nothing more is queued: exactly once.
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if evs, err := ws[0].w.Next(short); err == nil {
		t.Fatalf("unexpected extra events %+v", evs)
	}
	ws[0].w.Close()
	if _, err := ws[0].w.Next(context.Background()); !errors.Is(err, cluster.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}
