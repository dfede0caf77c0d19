package cluster

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Idempotent journal appends.
//
// A writer whose append outcome is unknown (its leader died after the entry
// left it) must retry, and a retry may store a record twice. AppendKeyed
// gives each record an idempotency key; the state machine drops a record
// whose key it has journaled among the last JournalKeyWindow records.
//
// The window is counted in journal records, not time, so Apply stays
// deterministic: every node drops exactly the same records. Keys are kept
// as 16-byte SHA-256 digests in bucketJKeys (seq → digest), which follows
// the journal through snapshots and trims; the in-memory index of the last
// window is rebuilt from it when the state file is opened or restored.

// JournalKeyWindow is how many of the latest journal records the state
// machine remembers the keys of. At the audit log's peak rate (about 20,000
// records a second) it spans several seconds, far more than a retry after
// a leader change takes; at ordinary rates it spans hours.
const JournalKeyWindow = 1 << 17

// MaxJournalKeyLen bounds one idempotency key.
const MaxJournalKeyLen = 128

var bucketJKeys = []byte("jkeys")

// KeyedRecord is a journal record with an idempotency key. An empty Key
// means the record is never dropped as a repeat.
type KeyedRecord struct {
	Key  []byte
	Data []byte
}

type keyDigest [16]byte

func digestKey(k []byte) keyDigest {
	s := sha256.Sum256(k)
	var d keyDigest
	copy(d[:], s[:16])
	return d
}

type keyEntry struct {
	seq uint64
	d   keyDigest
}

// keyIndex maps the key digests of the last JournalKeyWindow records to
// their sequence numbers. Only Apply (under applyMu) and open touch it.
type keyIndex struct {
	m    map[keyDigest]uint64
	fifo []keyEntry // in seq order; fifo[head:] are live
	head int
}

func newKeyIndex() *keyIndex { return &keyIndex{m: make(map[keyDigest]uint64)} }

// lookup returns the sequence number of the record holding d, if it is
// inside the window ending at last.
func (x *keyIndex) lookup(d keyDigest, last uint64) (uint64, bool) {
	seq, ok := x.m[d]
	if !ok || seq+JournalKeyWindow <= last {
		return 0, false
	}
	return seq, true
}

func (x *keyIndex) add(d keyDigest, seq uint64) {
	x.m[d] = seq
	x.fifo = append(x.fifo, keyEntry{seq: seq, d: d})
}

// evict forgets keys of records that left the window ending at last.
func (x *keyIndex) evict(last uint64) {
	for x.head < len(x.fifo) && x.fifo[x.head].seq+JournalKeyWindow <= last {
		e := x.fifo[x.head]
		if x.m[e.d] == e.seq {
			delete(x.m, e.d)
		}
		x.head++
	}
	if x.head > 4096 && x.head*2 > len(x.fifo) {
		x.fifo = append(x.fifo[:0:0], x.fifo[x.head:]...)
		x.head = 0
	}
}

// loadKeyIndex rebuilds the index from the state.
func loadKeyIndex(tx *bolt.Tx) *keyIndex {
	x := newKeyIndex()
	last := getU64(tx.Bucket(bucketMeta), metaSeq)
	b := tx.Bucket(bucketJKeys)
	if b == nil {
		return x
	}
	from := uint64(1)
	if last > JournalKeyWindow {
		from = last - JournalKeyWindow + 1
	}
	c := b.Cursor()
	for k, v := c.Seek(u64Key(from)); k != nil; k, v = c.Next() {
		if len(k) != 8 || len(v) != len(keyDigest{}) {
			continue
		}
		x.add(keyDigest(v), binary.BigEndian.Uint64(k))
	}
	return x
}

// applyAppendKeyed appends the records whose keys are not in the window,
// reporting for each record the sequence number that holds it.
func (st *txState) applyAppendKeyed(recs []KeyedRecord) (AppendResult, error) {
	res := AppendResult{First: st.seq + 1, Seqs: make([]uint64, len(recs))}
	var fresh [][]byte
	var digests []keyDigest
	var hasKey []bool
	for i, r := range recs {
		if len(r.Key) > 0 {
			d := digestKey(r.Key)
			if seq, ok := st.keys.lookup(d, st.seq+uint64(len(fresh))); ok {
				res.Seqs[i] = seq
				res.Duplicates++
				continue
			}
			// Reserve it now, so a repeat later in this command drops too.
			st.keys.add(d, st.seq+uint64(len(fresh))+1)
			digests = append(digests, d)
			hasKey = append(hasKey, true)
		} else {
			digests = append(digests, keyDigest{})
			hasKey = append(hasKey, false)
		}
		fresh = append(fresh, r.Data)
		res.Seqs[i] = st.seq + uint64(len(fresh))
	}
	if len(fresh) == 0 {
		res.First, res.Last = 0, 0
		return res, nil
	}
	first := st.seq + 1
	if _, err := st.applyAppend(fresh); err != nil {
		return AppendResult{}, err
	}
	for i, d := range digests {
		if !hasKey[i] {
			continue
		}
		if err := st.jkeys.Put(u64Key(first+uint64(i)), d[:]); err != nil {
			return AppendResult{}, fmt.Errorf("storing journal key: %w", err)
		}
	}
	st.keys.evict(st.seq)
	res.First, res.Last = first, st.seq
	return res, nil
}

// trimKeys drops stored keys of records below before.
func (st *txState) trimKeys(before uint64) error {
	c := st.jkeys.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) < before; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
