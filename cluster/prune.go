package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Journal pruning.
//
// Trimming drops a prefix of the journal. Pruning drops the data of runs of
// records inside it and keeps the chain: each run of consecutive records
// is replaced by one stub that holds the run's first and last sequence
// numbers, the first record's PrevHash and the last record's Hash. The
// chain still links across a stub (the record after it names the stub's
// Hash as its PrevHash), so a verifier takes the stub's Hash as the input
// of the next link, and a later signed checkpoint vouches for it. Which
// runs go is the caller's decision (package audit prunes flow records);
// the state machine only checks that the runs are stored records.
//
// Stubs live in bucketJStubs, keyed by their first sequence number, as
// last(8) || prevHash(32) || hash(32); the pruned records' keys leave
// bucketJournal and bucketJKeys. Journal readers return a stub as a Record
// whose Pruned counts the records it stands for.

var bucketJStubs = []byte("jstubs")

// MaxPruneRuns bounds the runs one prune command carries.
const MaxPruneRuns = 1 << 14

// PruneRun is a run of consecutive journal records, First..Last inclusive.
type PruneRun struct {
	First, Last uint64
}

// PruneResult reports what a prune did.
type PruneResult struct {
	// Runs counts the runs replaced by stubs (a run that extends a stub
	// counts too), Removed the records whose data went.
	Runs, Removed uint64
}

// PruneJournal replaces each run of journal records by a stub that keeps
// the hash chain (see Record.Pruned), through the leader. Runs must be in
// increasing order, must not overlap, must hold stored records only (at or
// after the first record kept by trimming, none already pruned) and must
// end before the journal head; otherwise nothing changes and the error
// wraps ErrInvalid. While a member runs an earlier version (CanPrune) it
// refuses with ErrMixedVersions and changes nothing. Callers keep whatever vouches for the chain across the
// stubs (audit checkpoints after them).
func (n *Node) PruneJournal(ctx context.Context, runs []PruneRun) (PruneResult, error) {
	if len(runs) == 0 || len(runs) > MaxPruneRuns {
		return PruneResult{}, fmt.Errorf("%w: prune of %d runs (want 1 to %d)", ErrInvalid, len(runs), MaxPruneRuns)
	}
	if !n.CanPrune() {
		return PruneResult{}, fmt.Errorf("%w: a member has not advertised that it applies prunes", ErrMixedVersions)
	}
	res, err := n.propose(ctx, encodePrune(nil, runs))
	if err != nil {
		return PruneResult{}, err
	}
	switch r := res.(type) {
	case PruneResult:
		return r, nil
	case error:
		return PruneResult{}, r
	}
	return PruneResult{}, fmt.Errorf("cluster: unexpected prune result %T", res)
}

func encodePrune(b []byte, runs []PruneRun) []byte {
	b = append(b, codecVersion, byte(cmdPrune))
	b = binary.AppendUvarint(b, uint64(len(runs)))
	for _, r := range runs {
		b = binary.AppendUvarint(b, r.First)
		b = binary.AppendUvarint(b, r.Last)
	}
	return b
}

// stub is one stored stub.
type stub struct {
	first, last uint64
	prev, hash  [32]byte
}

const stubLen = 8 + 32 + 32

func decodeStub(k, v []byte) (stub, error) {
	if len(k) != 8 || len(v) != stubLen {
		return stub{}, fmt.Errorf("%w: malformed stub", ErrJournalCorrupt)
	}
	s := stub{first: binary.BigEndian.Uint64(k), last: binary.BigEndian.Uint64(v)}
	copy(s.prev[:], v[8:40])
	copy(s.hash[:], v[40:72])
	if s.last < s.first {
		return stub{}, fmt.Errorf("%w: stub at %d ends before it starts", ErrJournalCorrupt, s.first)
	}
	return s, nil
}

func (s stub) value() []byte {
	v := make([]byte, stubLen)
	binary.BigEndian.PutUint64(v, s.last)
	copy(v[8:], s.prev[:])
	copy(v[40:], s.hash[:])
	return v
}

func (s stub) record() Record {
	return Record{Seq: s.first, Pruned: s.last - s.first + 1, PrevHash: s.prev, Hash: s.hash}
}

// stubAt returns the stub holding seq, if any.
func stubAt(b *bolt.Bucket, seq uint64) (stub, bool, error) {
	k, v := stubBefore(b.Cursor(), seq)
	if k == nil {
		return stub{}, false, nil
	}
	s, err := decodeStub(k, v)
	if err != nil || s.last < seq {
		return stub{}, false, err
	}
	return s, true, nil
}

// applyPrune replaces each run by a stub, merging it with stubs right
// before and after it. It checks every run before changing anything.
func (st *txState) applyPrune(runs []PruneRun) (PruneResult, error) {
	stubs := st.jstubs
	first := max(getU64(st.meta, metaFirst), 1)
	var prevLast uint64
	for i, r := range runs {
		switch {
		case r.First == 0 || r.Last < r.First:
			return PruneResult{}, fmt.Errorf("%w: prune run %d: bad range %d..%d", ErrInvalid, i, r.First, r.Last)
		case i > 0 && r.First <= prevLast:
			return PruneResult{}, fmt.Errorf("%w: prune run %d: not after run %d", ErrInvalid, i, i-1)
		case r.First < first:
			return PruneResult{}, fmt.Errorf("%w: prune run %d: record %d was trimmed", ErrInvalid, i, r.First)
		case r.Last >= st.seq:
			return PruneResult{}, fmt.Errorf("%w: prune run %d: reaches the journal head %d", ErrInvalid, i, st.seq)
		}
		prevLast = r.Last
		// The journal is contiguous outside stubs, so the run's records
		// are all stored unless a stub overlaps it.
		if s, ok, err := stubAt(stubs, r.First); err != nil {
			return PruneResult{}, err
		} else if ok {
			return PruneResult{}, fmt.Errorf("%w: prune run %d: record %d already pruned (stub %d..%d)", ErrInvalid, i, r.First, s.first, s.last)
		}
		if k, _ := stubs.Cursor().Seek(u64Key(r.First)); k != nil && binary.BigEndian.Uint64(k) <= r.Last {
			return PruneResult{}, fmt.Errorf("%w: prune run %d: record %d already pruned", ErrInvalid, i, binary.BigEndian.Uint64(k))
		}
	}
	var res PruneResult
	for _, r := range runs {
		s := stub{first: r.First, last: r.Last}
		c := st.journal.Cursor()
		k, v := c.Seek(u64Key(r.First))
		for ; k != nil && binary.BigEndian.Uint64(k) <= r.Last; k, v = c.Seek(u64Key(r.First)) {
			seq := binary.BigEndian.Uint64(k)
			if len(v) < 64 {
				return PruneResult{}, fmt.Errorf("%w: record %d truncated", ErrJournalCorrupt, seq)
			}
			if seq == r.First {
				copy(s.prev[:], v[:32])
			}
			if seq == r.Last {
				copy(s.hash[:], v[32:64])
			}
			if err := c.Delete(); err != nil {
				return PruneResult{}, err
			}
			res.Removed++
		}
		if err := st.deleteKeys(r.First, r.Last); err != nil {
			return PruneResult{}, err
		}
		// Merge with a stub ending right before and one starting right
		// after, so a run pruned in two passes stays one stub.
		if r.First > 1 {
			if before, ok, err := stubAt(stubs, r.First-1); err != nil {
				return PruneResult{}, err
			} else if ok {
				if err := stubs.Delete(u64Key(before.first)); err != nil {
					return PruneResult{}, err
				}
				s.first, s.prev = before.first, before.prev
			}
		}
		if raw := stubs.Get(u64Key(r.Last + 1)); raw != nil {
			after, err := decodeStub(u64Key(r.Last+1), raw)
			if err != nil {
				return PruneResult{}, err
			}
			if err := stubs.Delete(u64Key(after.first)); err != nil {
				return PruneResult{}, err
			}
			s.last, s.hash = after.last, after.hash
		}
		if err := stubs.Put(u64Key(s.first), s.value()); err != nil {
			return PruneResult{}, err
		}
		res.Runs++
	}
	return res, nil
}

// deleteKeys drops the stored idempotency keys of records first..last.
func (st *txState) deleteKeys(first, last uint64) error {
	c := st.jkeys.Cursor()
	for k, _ := c.Seek(u64Key(first)); k != nil && binary.BigEndian.Uint64(k) <= last; k, _ = c.Seek(u64Key(first)) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// trimStubs drops the stubs wholly below before. It returns before, moved
// down to the first record of a stub that holds record before-1 and
// record before: a trim never cuts a stub, whose inner records are gone.
func (st *txState) trimStubs(before uint64) (uint64, error) {
	if s, ok, err := stubAt(st.jstubs, before); err != nil {
		return 0, err
	} else if ok {
		before = s.first
	}
	c := st.jstubs.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) < before; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return 0, err
		}
	}
	return before, nil
}

// stubBefore positions c on the last stub starting at or before seq.
func stubBefore(c *bolt.Cursor, seq uint64) (k, v []byte) {
	k, v = c.Seek(u64Key(seq))
	switch {
	case k == nil:
		return c.Last()
	case binary.BigEndian.Uint64(k) > seq:
		return c.Prev()
	}
	return k, v
}

// journalIter walks the journal in sequence order, records and stubs
// alike.
type journalIter struct {
	jc, sc *bolt.Cursor
	jk, jv []byte
	sk, sv []byte
}

// newJournalIter starts at the record or stub holding from, or the next.
func newJournalIter(tx *bolt.Tx, from uint64) *journalIter {
	it := &journalIter{jc: tx.Bucket(bucketJournal).Cursor()}
	it.jk, it.jv = it.jc.Seek(u64Key(from))
	if b := tx.Bucket(bucketJStubs); b != nil {
		it.sc = b.Cursor()
		if k, v := stubBefore(it.sc, from); k != nil && len(v) == stubLen && binary.BigEndian.Uint64(v) >= from {
			it.sk, it.sv = k, v // a stub holding from
		} else {
			it.sk, it.sv = it.sc.Seek(u64Key(from))
		}
	}
	return it
}

// next returns the next record or stub; ok is false at the end.
func (it *journalIter) next() (r Record, ok bool, err error) {
	switch {
	case it.sk != nil && (it.jk == nil || bytes.Compare(it.sk, it.jk) < 0):
		s, err := decodeStub(it.sk, it.sv)
		if err != nil {
			return Record{}, false, err
		}
		it.sk, it.sv = it.sc.Next()
		return s.record(), true, nil
	case it.jk != nil:
		r, err := decodeRecord(binary.BigEndian.Uint64(it.jk), it.jv)
		if err != nil {
			return Record{}, false, err
		}
		it.jk, it.jv = it.jc.Next()
		return r, true, nil
	}
	return Record{}, false, nil
}
