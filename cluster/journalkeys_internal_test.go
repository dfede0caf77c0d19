package cluster

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

func keyed(pairs ...string) []KeyedRecord {
	var out []KeyedRecord
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, KeyedRecord{Key: []byte(pairs[i]), Data: []byte(pairs[i+1])})
	}
	return out
}

func applyKeyed(t *testing.T, f *fsm, idx uint64, recs []KeyedRecord) AppendResult {
	t.Helper()
	res := f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: encodeAppendKeyed(nil, recs)})
	r, ok := res.(AppendResult)
	if !ok {
		t.Fatalf("append result %T %v", res, res)
	}
	return r
}

// A record re-sent after its first append's outcome was lost (the leader it
// was forwarded to died) is stored once: the state machine drops a key it
// journaled recently, in the same command or an earlier one, and says
// where the record already is.
func TestAppendKeyedDropsRepeats(t *testing.T) {
	f, path := newTestFSM(t, 2)
	r := applyKeyed(t, f, 2, keyed("a", "rec a", "b", "rec b", "a", "rec a again", "", "no key", "", "no key"))
	if want := []uint64{3, 4, 3, 5, 6}; !slices.Equal(r.Seqs, want) || r.Duplicates != 1 || r.First != 3 || r.Last != 6 {
		t.Fatalf("first append: %+v, want seqs %v", r, want)
	}
	r = applyKeyed(t, f, 3, keyed("b", "rec b", "c", "rec c"))
	if want := []uint64{4, 7}; !slices.Equal(r.Seqs, want) || r.Duplicates != 1 {
		t.Fatalf("repeat: %+v, want seqs %v", r, want)
	}
	r = applyKeyed(t, f, 4, keyed("c", "rec c"))
	if r.Duplicates != 1 || r.First != 0 || !slices.Equal(r.Seqs, []uint64{7}) {
		t.Fatalf("all repeats: %+v", r)
	}
	if n, err := f.verifyJournal(); err != nil || n != 7 {
		t.Fatalf("journal: %d records, %v", n, err)
	}
	// The index survives a restart and a snapshot restore.
	f.close()
	g, err := openFSM(path, newWatchHub())
	if err != nil {
		t.Fatal(err)
	}
	if r := applyKeyed(t, g, 5, keyed("a", "rec a")); r.Duplicates != 1 {
		t.Fatalf("after restart: %+v", r)
	}
	var snap bytes.Buffer
	s, err := g.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSnapshot(&snap, s.(*fsmSnapshot).tx); err != nil {
		t.Fatal(err)
	}
	s.Release()
	h, err := openFSM(filepath.Join(t.TempDir(), "other.db"), newWatchHub())
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	defer g.close()
	if err := h.Restore(nopCloser{&snap}); err != nil {
		t.Fatal(err)
	}
	if r := applyKeyed(t, h, 6, keyed("b", "rec b", "d", "rec d")); r.Duplicates != 1 || !slices.Equal(r.Seqs, []uint64{4, 8}) {
		t.Fatalf("after restore: %+v", r)
	}
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

// The window is counted in records, so every node forgets a key at the same
// point: after JournalKeyWindow later records, the key is new again.
func TestAppendKeyedWindow(t *testing.T) {
	f, _ := newTestFSM(t, 0)
	defer f.close()
	applyKeyed(t, f, 1, keyed("k", "first"))
	filler := make([][]byte, 0, MaxAppendRecs)
	idx := uint64(2)
	for n := 1; n < JournalKeyWindow; {
		filler = filler[:0]
		for len(filler) < MaxAppendRecs && n < JournalKeyWindow {
			filler = append(filler, []byte(fmt.Sprint(n)))
			n++
		}
		f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: encodeAppend(nil, filler)})
		idx++
	}
	// Record 1 is the oldest of the last JournalKeyWindow: still known.
	if r := applyKeyed(t, f, idx, keyed("k", "again")); r.Duplicates != 1 {
		t.Fatalf("inside the window: %+v", r)
	}
	f.Apply(&raft.Log{Index: idx + 1, Type: raft.LogCommand, Data: encodeAppend(nil, [][]byte{[]byte("one more")})})
	if r := applyKeyed(t, f, idx+2, keyed("k", "again")); r.Duplicates != 0 || r.Last != JournalKeyWindow+2 {
		t.Fatalf("outside the window: %+v", r)
	}
}
