package cluster

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// newTestFSM returns an FSM with n journal records applied.
func newTestFSM(t *testing.T, n int) (*fsm, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	f, err := openFSM(path, newWatchHub())
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return f, path
	}
	var recs [][]byte
	for i := 1; i <= n; i++ {
		recs = append(recs, []byte(fmt.Sprintf("record %d", i)))
	}
	res := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: encodeAppend(nil, recs)})
	if r, ok := res.(AppendResult); !ok || r.First != 1 || r.Last != uint64(n) {
		t.Fatalf("append result %+v", res)
	}
	return f, path
}

func TestJournalTamperDetected(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(b *bolt.Bucket) error
		want   string
	}{
		{"edit", func(b *bolt.Bucket) error {
			v := append([]byte(nil), b.Get(u64Key(5))...)
			v[len(v)-1] ^= 1
			return b.Put(u64Key(5), v)
		}, "record 5 altered"},
		{"edit with recomputed hash", func(b *bolt.Bucket) error {
			v := append([]byte(nil), b.Get(u64Key(5))...)
			var prev [32]byte
			copy(prev[:], v[:32])
			data := []byte("forged")
			h := chainHash(prev, 5, data)
			return b.Put(u64Key(5), append(append(append([]byte(nil), v[:32]...), h[:]...), data...))
		}, "record 6 does not follow record 5"},
		{"delete", func(b *bolt.Bucket) error { return b.Delete(u64Key(4)) }, "record 4 missing"},
		{"reorder", func(b *bolt.Bucket) error {
			a, c := append([]byte(nil), b.Get(u64Key(3))...), append([]byte(nil), b.Get(u64Key(4))...)
			if err := b.Put(u64Key(3), c); err != nil {
				return err
			}
			return b.Put(u64Key(4), a)
		}, "record 3 does not follow record 2"},
		{"truncate", func(b *bolt.Bucket) error { return b.Delete(u64Key(10)) }, "journal ends at 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newTestFSM(t, 10)
			if n, err := f.verifyJournal(); err != nil || n != 10 {
				t.Fatalf("untouched journal: %d records, %v", n, err)
			}
			err := f.db.Update(func(tx *bolt.Tx) error { return tt.tamper(tx.Bucket(bucketJournal)) })
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.verifyJournal()
			if !errors.Is(err, ErrJournalCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrJournalCorrupt naming %q", err, tt.want)
			}
			f.close()
		})
	}
}

// Replaying entries already in the state file (after a restart) changes
// nothing: the applied index is stored with the data.
func TestApplySkipsAlreadyApplied(t *testing.T) {
	f, path := newTestFSM(t, 3)
	f.close()
	g, err := openFSM(path, newWatchHub())
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	if res := g.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: encodeAppend(nil, [][]byte{[]byte("again")})}); res != nil {
		t.Fatalf("replayed entry applied again: %+v", res)
	}
	if seq, _, _ := g.lastSeq(); seq != 3 {
		t.Fatalf("journal at %d after replay, want 3", seq)
	}
}

func TestUnknownCommandStopsTheNode(t *testing.T) {
	f, _ := newTestFSM(t, 1)
	defer f.close()
	defer func() {
		if recover() == nil {
			t.Fatal("an undecodable entry was applied without stopping")
		}
	}()
	f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: []byte{codecVersion, 77}})
}

func TestJournalTrimKeepsChainVerifiable(t *testing.T) {
	f, _ := newTestFSM(t, 10)
	defer f.close()
	res := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: encodeTrim(nil, 6)})
	if r, ok := res.(TrimResult); !ok || r.First != 6 || r.Removed != 5 {
		t.Fatalf("trim result %+v", res)
	}
	if n, err := f.verifyJournal(); err != nil || n != 5 {
		t.Fatalf("after trim: %d records, %v", n, err)
	}
	if recs, _ := f.journalRange(1, 100, 100); len(recs) != 5 || recs[0].Seq != 6 {
		t.Fatalf("kept records %+v", recs)
	}
	// Trimming never drops the head, and never goes backwards.
	f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: encodeTrim(nil, 1000)})
	f.Apply(&raft.Log{Index: 4, Type: raft.LogCommand, Data: encodeTrim(nil, 2)})
	if first, _ := f.firstSeq(); first != 10 {
		t.Fatalf("first kept %d, want 10 (the head)", first)
	}
	// Appends continue the chain.
	f.Apply(&raft.Log{Index: 5, Type: raft.LogCommand, Data: encodeAppend(nil, [][]byte{[]byte("more")})})
	if n, err := f.verifyJournal(); err != nil || n != 2 {
		t.Fatalf("after append: %d records, %v", n, err)
	}
	// Removing the first kept record is still detected.
	if err := f.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketJournal).Delete(u64Key(10)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.verifyJournal(); !errors.Is(err, ErrJournalCorrupt) {
		t.Fatalf("deleting the anchor record: %v", err)
	}
}
