package cluster_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

// A transaction's journal records are appended iff its compares hold, in
// the same step as its ops, chained like any append; through a follower
// too, identically on every node.
func TestTxnJournalBothOrNeither(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	leader := c.Leader(5 * time.Second)
	f := c.Node((leader + 1) % 3)
	ctx := ctxT(t, 30*time.Second)
	// Every member advertises that it applies such transactions.
	clustertest.WaitFor(t, 10*time.Second, "atomic journal transactions", func() error {
		if !f.AtomicJournalTxn() || !c.Node(leader).AtomicJournalTxn() {
			return errors.New("not every member advertises it")
		}
		return nil
	})
	a, err := f.Append(ctx, [][]byte{[]byte("before")})
	if err != nil {
		t.Fatal(err)
	}
	head0 := a.Last

	// Compares fail: neither the op nor the record.
	r, err := f.Txn(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfVersion("u/1", 7)},
		Ops:      []cluster.Op{cluster.Put("u/1", []byte("disabled"))},
		Journal:  []cluster.TxnRecord{{Key: []byte("ev-a"), Data: []byte("user.disable")}},
	})
	if err != nil || r.Succeeded || r.Journal.Seqs != nil {
		t.Fatalf("failed compare: %+v, %v", r, err)
	}

	// Compares hold: both, the record naming the transaction's revision.
	r, err = f.Txn(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent("u/1")},
		Ops:      []cluster.Op{cluster.Put("u/1", []byte("disabled"))},
		Journal: []cluster.TxnRecord{
			{Key: []byte("ev-a"), Data: []byte(`{"v":}`), RevisionAt: 5},
			{Data: []byte("second")},
		},
	})
	if err != nil || !r.Succeeded || r.Journal.First != head0+1 || r.Journal.Last != head0+2 || len(r.Journal.Seqs) != 2 {
		t.Fatalf("transaction: %+v, %v", r, err)
	}
	kv, ok, err := f.Get(ctx, "u/1", cluster.Linearizable)
	if err != nil || !ok || kv.Version != r.Revision {
		t.Fatalf("key after transaction: %+v %v %v", kv, ok, err)
	}
	c.WaitConverged(10 * time.Second)
	recs, err := f.JournalRange(head0+1, head0+2, 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("journal: %v, %v", recs, err)
	}
	if want := `{"v":` + strconv.FormatUint(r.Revision, 10) + `}`; string(recs[0].Data) != want || string(recs[1].Data) != "second" {
		t.Fatalf("records %q %q, want %q and second", recs[0].Data, recs[1].Data, want)
	}

	// A repeated key is not stored twice; the ops still apply.
	r2, err := f.Txn(ctx, cluster.Txn{
		Ops:     []cluster.Op{cluster.Put("u/1", []byte("again"))},
		Journal: []cluster.TxnRecord{{Key: []byte("ev-a"), Data: []byte("repeat")}},
	})
	if err != nil || !r2.Succeeded || r2.Journal.Duplicates != 1 || r2.Journal.Seqs[0] != r.Journal.Seqs[0] {
		t.Fatalf("repeat: %+v, %v", r2, err)
	}
	c.WaitConverged(10 * time.Second)
	for i := 0; i < 3; i++ {
		n := c.Node(i)
		if head, _, err := n.JournalHead(); err != nil || head != head0+2 {
			t.Fatalf("node %d journal head %d (%v), want %d", i, head, err, head0+2)
		}
		if _, err := n.VerifyJournal(); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
}

func TestTxnJournalInvalid(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	n := c.Node(0)
	ctx := ctxT(t, 30*time.Second)
	tests := []struct {
		name string
		rec  cluster.TxnRecord
	}{
		{"offset past the end", cluster.TxnRecord{Data: []byte("ab"), RevisionAt: 3}},
		{"negative offset", cluster.TxnRecord{Data: []byte("ab"), RevisionAt: -1}},
		{"key too long", cluster.TxnRecord{Key: make([]byte, cluster.MaxJournalKeyLen+1), Data: []byte("ab")}},
		{"record too long", cluster.TxnRecord{Data: make([]byte, cluster.MaxRecordLen)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n.Txn(ctx, cluster.Txn{Ops: []cluster.Op{cluster.Put("k", nil)}, Journal: []cluster.TxnRecord{tt.rec}})
			if !errors.Is(err, cluster.ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
		})
	}
	if _, ok, _ := n.Get(ctx, "k", cluster.Linearizable); ok {
		t.Fatal("an invalid transaction wrote")
	}
	if head, _, _ := n.JournalHead(); head != 0 {
		t.Fatalf("an invalid transaction appended: head %d", head)
	}
}

// While a member has not said it applies transactions with journal records
// (a node of an earlier version, during a rolling upgrade), a transaction
// still applies and its records are still appended, after it, so that no
// node meets an entry it cannot apply.
func TestTxnJournalMixedVersions(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	leader := c.Leader(5 * time.Second)
	n := c.Node(leader)
	ctx := ctxT(t, 30*time.Second)
	clustertest.WaitFor(t, 10*time.Second, "atomic journal transactions", func() error {
		if !n.AtomicJournalTxn() {
			return errors.New("not every member advertises it")
		}
		return nil
	})
	old := c.ID((leader + 1) % 3)
	if err := n.Delete(ctx, "sys/cluster/codec/"+old); err != nil {
		t.Fatal(err)
	}
	if n.AtomicJournalTxn() {
		t.Fatalf("atomic with %s not advertising", old)
	}
	// A prune would stop the member of an earlier version: refused.
	if _, err := n.PruneJournal(ctx, []cluster.PruneRun{{First: 1, Last: 1}}); !errors.Is(err, cluster.ErrMixedVersions) {
		t.Fatalf("prune with %s not advertising: %v, want ErrMixedVersions", old, err)
	}
	r, err := n.Txn(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent("k")},
		Ops:      []cluster.Op{cluster.Put("k", []byte("v"))},
		Journal:  []cluster.TxnRecord{{Key: []byte("ev"), Data: []byte(`{"v":}`), RevisionAt: 5}},
	})
	if err != nil || !r.Succeeded || r.Journal.First == 0 {
		t.Fatalf("transaction: %+v, %v", r, err)
	}
	recs, err := n.JournalRange(r.Journal.First, r.Journal.Last, 10)
	if want := `{"v":` + strconv.FormatUint(r.Revision, 10) + `}`; err != nil || len(recs) != 1 || string(recs[0].Data) != want {
		t.Fatalf("records %v (%v), want %s", recs, err, want)
	}
	r, err = n.Txn(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent("k")},
		Ops:      []cluster.Op{cluster.Put("k", []byte("again"))},
		Journal:  []cluster.TxnRecord{{Key: []byte("ev2"), Data: []byte("x")}},
	})
	if err != nil || r.Succeeded || r.Journal.Seqs != nil {
		t.Fatalf("failed compare: %+v, %v", r, err)
	}
	c.WaitConverged(10 * time.Second)
}
