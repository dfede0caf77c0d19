package cluster

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

func applyPrune(t *testing.T, f *fsm, idx uint64, runs ...PruneRun) interface{} {
	t.Helper()
	return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: encodePrune(nil, runs)})
}

// Pruning replaces runs by stubs that keep the chain: the journal still
// verifies, readers return the stubs in place of the runs, and a reader
// starting inside a stub gets the stub.
func TestJournalPruneKeepsChain(t *testing.T) {
	f, _ := newTestFSM(t, 20)
	defer f.close()
	before, _ := f.journalRange(1, 20, 100)
	res := applyPrune(t, f, 2, PruneRun{3, 5}, PruneRun{8, 8}, PruneRun{10, 14})
	if r, ok := res.(PruneResult); !ok || r.Runs != 3 || r.Removed != 9 {
		t.Fatalf("prune result %+v", res)
	}
	if n, err := f.verifyJournal(); err != nil || n != 20 {
		t.Fatalf("after prune: %d records, %v", n, err)
	}
	recs, err := f.journalRange(1, 100, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, string(rune('a'-1+r.Seq))+string(rune('0'+r.Pruned)))
	}
	if want := "a0 b0 c3 f0 g0 h1 i0 j5 o0 p0 q0 r0 s0 t0"; strings.Join(got, " ") != want {
		t.Fatalf("records %v, want %s", got, want)
	}
	// A stub carries the first record's prev hash and the last one's hash.
	if s := recs[2]; s.PrevHash != before[2].PrevHash || s.Hash != before[4].Hash || s.Data != nil || s.LastSeq() != 5 {
		t.Fatalf("stub %+v", s)
	}
	if r, _ := f.journalRange(12, 12, 1); len(r) != 1 || r[0].Seq != 10 || r[0].Pruned != 5 {
		t.Fatalf("reading inside a stub: %+v", r)
	}
	if r, _ := f.journalRange(15, 16, 10); len(r) != 2 || r[0].Seq != 15 {
		t.Fatalf("reading after a stub: %+v", r)
	}
	// A run next to a stub extends it: one stub per run, however pruned.
	if r, ok := applyPrune(t, f, 3, PruneRun{6, 7}, PruneRun{15, 15}).(PruneResult); !ok || r.Removed != 3 {
		t.Fatalf("second prune: %+v", r)
	}
	recs, _ = f.journalRange(1, 100, 100)
	if len(recs) != 10 || recs[2].Seq != 3 || recs[2].Pruned != 6 || recs[3].Seq != 9 || recs[4].Pruned != 6 {
		t.Fatalf("after merging: %+v", recs)
	}
	if recs[2].Hash != before[7].Hash || recs[4].Hash != before[14].Hash {
		t.Fatal("a merged stub lost the last record's hash")
	}
	if n, err := f.verifyJournal(); err != nil || n != 20 {
		t.Fatalf("after second prune: %d records, %v", n, err)
	}
	// Appends continue the chain after stubs.
	f.Apply(&raft.Log{Index: 4, Type: raft.LogCommand, Data: encodeAppend(nil, [][]byte{[]byte("more")})})
	if n, err := f.verifyJournal(); err != nil || n != 21 {
		t.Fatalf("after append: %d records, %v", n, err)
	}
}

// A prune that names records that are not stored (trimmed, pruned, the
// head, beyond it) or runs out of order changes nothing.
func TestJournalPruneRejectsBadRuns(t *testing.T) {
	tests := []struct {
		name string
		runs []PruneRun
	}{
		{"reversed", []PruneRun{{5, 4}}},
		{"zero", []PruneRun{{0, 2}}},
		{"head", []PruneRun{{8, 10}}},
		{"beyond head", []PruneRun{{11, 12}}},
		{"overlapping runs", []PruneRun{{2, 4}, {4, 5}}},
		{"out of order", []PruneRun{{6, 7}, {2, 3}}},
		{"already pruned", []PruneRun{{6, 6}}},
		{"covers a stub", []PruneRun{{5, 7}}},
		{"trimmed", []PruneRun{{1, 1}}},
		{"second run bad", []PruneRun{{3, 3}, {9, 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newTestFSM(t, 10)
			defer f.close()
			f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: encodeTrim(nil, 2)})
			applyPrune(t, f, 3, PruneRun{6, 7})
			before, _ := f.journalRange(1, 100, 100)
			res := applyPrune(t, f, 4, tt.runs...)
			if err, ok := res.(error); !ok || !errors.Is(err, ErrInvalid) {
				t.Fatalf("result %v, want ErrInvalid", res)
			}
			after, _ := f.journalRange(1, 100, 100)
			if len(after) != len(before) {
				t.Fatalf("a rejected prune changed the journal: %d -> %d entries", len(before), len(after))
			}
			if _, err := f.verifyJournal(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Tampering around stubs is detected: a stub's hash or prev hash edited,
// a stub removed, a record after a stub edited or deleted.
func TestJournalPruneTamperDetected(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(tx *bolt.Tx) error
		want   string
	}{
		{"stub hash edited", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketJStubs)
			v := append([]byte(nil), b.Get(u64Key(4))...)
			v[len(v)-1] ^= 1
			return b.Put(u64Key(4), v)
		}, "record 7 does not follow record 6"},
		{"stub prev edited", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketJStubs)
			v := append([]byte(nil), b.Get(u64Key(4))...)
			v[8] ^= 1
			return b.Put(u64Key(4), v)
		}, "record 4 does not follow record 3"},
		{"stub deleted", func(tx *bolt.Tx) error { return tx.Bucket(bucketJStubs).Delete(u64Key(4)) }, "record 4 missing"},
		{"stub widened", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketJStubs)
			v := append([]byte(nil), b.Get(u64Key(4))...)
			copy(v, u64Key(7))
			return b.Put(u64Key(4), v)
		}, "record 8 missing"},
		{"record after stub edited", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketJournal)
			v := append([]byte(nil), b.Get(u64Key(7))...)
			v[len(v)-1] ^= 1
			return b.Put(u64Key(7), v)
		}, "record 7 altered"},
		{"record after stub deleted", func(tx *bolt.Tx) error { return tx.Bucket(bucketJournal).Delete(u64Key(7)) }, "record 7 missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newTestFSM(t, 10)
			defer f.close()
			applyPrune(t, f, 2, PruneRun{4, 6})
			if _, err := f.verifyJournal(); err != nil {
				t.Fatal(err)
			}
			if err := f.db.Update(tt.tamper); err != nil {
				t.Fatal(err)
			}
			_, err := f.verifyJournal()
			if !errors.Is(err, ErrJournalCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrJournalCorrupt naming %q", err, tt.want)
			}
		})
	}
}

// A trim never cuts a stub: trimming to a record inside one keeps the
// whole stub, and trimming past one drops it.
func TestJournalTrimAroundStubs(t *testing.T) {
	f, _ := newTestFSM(t, 20)
	defer f.close()
	applyPrune(t, f, 2, PruneRun{3, 5}, PruneRun{10, 14})
	if r, ok := f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: encodeTrim(nil, 7)}).(TrimResult); !ok || r.First != 7 || r.Removed != 3 {
		t.Fatalf("trim past a stub: %+v", r)
	}
	if r, ok := f.Apply(&raft.Log{Index: 4, Type: raft.LogCommand, Data: encodeTrim(nil, 12)}).(TrimResult); !ok || r.First != 10 || r.Removed != 3 {
		t.Fatalf("trim into a stub: %+v", r)
	}
	recs, _ := f.journalRange(1, 100, 100)
	if len(recs) != 7 || recs[0].Seq != 10 || recs[0].Pruned != 5 {
		t.Fatalf("after trims: %+v", recs)
	}
	if n, err := f.verifyJournal(); err != nil || n != 11 {
		t.Fatalf("after trims: %d records, %v", n, err)
	}
	err := f.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketJStubs).Get(u64Key(3)) != nil {
			t.Error("a stub below the trim point stayed")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A snapshot carries the stubs; a state without stubs writes a snapshot
// that names no stub bucket (so older versions restore it).
func TestJournalPruneSnapshot(t *testing.T) {
	f, _ := newTestFSM(t, 10)
	defer f.close()
	snap := func(f *fsm) []byte {
		t.Helper()
		var buf bytes.Buffer
		err := f.db.View(func(tx *bolt.Tx) error { return writeSnapshot(&buf, tx) })
		if err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	sr, _ := newSnapshotReader(bytes.NewReader(snap(f)))
	for {
		id, _, _, ok, err := sr.next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if id == 5 {
			t.Fatal("a snapshot without stubs has a stub entry")
		}
	}
	applyPrune(t, f, 2, PruneRun{2, 4})
	g, _ := newTestFSM(t, 0)
	defer g.close()
	if err := g.Restore(nopCloser{bytes.NewBuffer(snap(f))}); err != nil {
		t.Fatal(err)
	}
	if n, err := g.verifyJournal(); err != nil || n != 10 {
		t.Fatalf("restored: %d records, %v", n, err)
	}
	recs, _ := g.journalRange(1, 100, 100)
	if len(recs) != 8 || recs[1].Pruned != 3 {
		t.Fatalf("restored records %+v", recs)
	}
}
