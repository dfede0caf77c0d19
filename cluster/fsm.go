package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Buckets of the state file. Every value in bucketKV is version(8) || value;
// every value in bucketJournal is prevHash(32) || hash(32) || data, keyed by
// the big-endian sequence number.
var (
	bucketMeta    = []byte("meta")
	bucketKV      = []byte("kv")
	bucketJournal = []byte("journal")

	metaApplied  = []byte("applied")  // last applied raft index
	metaRevision = []byte("revision") // store revision
	metaSeq      = []byte("jseq")     // last journal sequence number
	metaHash     = []byte("jhash")    // hash of the last journal record
	metaFirst    = []byte("jfirst")   // first journal sequence number kept (0: 1)
)

// AppendResult reports the sequence numbers a journal append received.
type AppendResult struct {
	First, Last uint64
	// Seqs, for AppendKeyed only, holds each record's sequence number: the
	// one it received, or the one already holding a repeat of its key.
	// Duplicates counts the records dropped as repeats.
	Seqs       []uint64
	Duplicates int
}

// fsm is the replicated state machine. Its state lives in bbolt, and the last
// applied index is written in the same transaction as the data it covers, so
// after a restart the FSM skips entries it has already applied.
//
// Apply is deterministic: it reads nothing but the log entry and the state.
type fsm struct {
	path string
	hub  *watchHub

	// applyMu serialises ApplyBatch, Restore and watch registration.
	applyMu sync.Mutex

	// dbMu guards db, which Restore swaps; readers hold it shared.
	dbMu sync.RWMutex
	db   *bolt.DB

	applied  atomic.Uint64
	revision atomic.Uint64

	sigMu     sync.Mutex    // guards appliedCh
	appliedCh chan struct{} // closed and replaced after every apply

	// keys indexes the journal's recent idempotency keys. Guarded by
	// applyMu (and replaced by open under dbMu as well).
	keys *keyIndex

	// onConfig, when set, is called after a batch that held a Raft
	// configuration entry; it must not block.
	onConfig func()
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.BatchingFSM = (*fsm)(nil)
)

func openFSM(path string, hub *watchHub) (*fsm, error) {
	f := &fsm{path: path, hub: hub, appliedCh: make(chan struct{})}
	if err := f.open(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *fsm) open() error {
	// No fsync: the state file is a cache of the Raft log and snapshots,
	// which are durable. After an unclean stop the node discards it and
	// rebuilds (see Node), so a torn write can never be read back. That
	// includes the fsync bbolt does when the file grows (NoGrowSync): it
	// would flush every unsynced page of the file while Apply waits.
	db, err := bolt.Open(f.path, 0o600, &bolt.Options{NoSync: true, NoGrowSync: true})
	if err != nil {
		return fmt.Errorf("opening state %s: %w", f.path, err)
	}
	var applied, rev uint64
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketKV, bucketJournal, bucketJKeys, bucketJStubs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		applied = getU64(m, metaApplied)
		rev = getU64(m, metaRevision)
		f.keys = loadKeyIndex(tx)
		return nil
	})
	if err != nil {
		db.Close()
		return fmt.Errorf("initialising state %s: %w", f.path, err)
	}
	f.db = db
	f.applied.Store(applied)
	f.revision.Store(rev)
	return nil
}

// setApplied records idx as applied after a restore from a snapshot whose
// index the snapshot store knows better than the snapshot's contents.
func (f *fsm) setApplied(idx uint64) error {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	err := f.db.Update(func(tx *bolt.Tx) error { return putU64(tx.Bucket(bucketMeta), metaApplied, idx) })
	if err == nil {
		f.applied.Store(idx)
	}
	return err
}

func (f *fsm) close() error {
	f.dbMu.Lock()
	defer f.dbMu.Unlock()
	if f.db == nil {
		return nil
	}
	err := f.db.Sync()
	if cerr := f.db.Close(); err == nil {
		err = cerr
	}
	f.db = nil
	return err
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: one bbolt transaction for the
// whole batch, then watchers are told.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()

	results := make([]interface{}, len(logs))
	var events []Event
	applied := f.applied.Load()
	configChanged := false
	err := f.db.Update(func(tx *bolt.Tx) error {
		st := newTxState(tx, f.keys)
		for i, l := range logs {
			if l.Index <= applied {
				continue // already in the state file: replay after restart
			}
			if l.Type == raft.LogCommand {
				cmd, err := decodeCommand(l.Data)
				if err != nil {
					// Going on would let this node's state diverge from
					// the others'.
					panic(fmt.Sprintf("cluster: undecodable log entry %d: %v", l.Index, err))
				}
				results[i] = st.apply(&cmd, &events)
			}
			configChanged = configChanged || l.Type == raft.LogConfiguration
			applied = l.Index
		}
		return st.finish(applied)
	})
	if err != nil {
		panic(fmt.Sprintf("cluster: writing state: %v", err))
	}
	f.applied.Store(applied)
	f.hub.dispatch(events)
	f.signalApplied()
	if configChanged && f.onConfig != nil {
		f.onConfig()
	}
	return results
}

func (f *fsm) signalApplied() {
	f.sigMu.Lock()
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.sigMu.Unlock()
}

// appliedSignal returns a channel closed at the next apply.
func (f *fsm) appliedSignal() <-chan struct{} {
	f.sigMu.Lock()
	defer f.sigMu.Unlock()
	return f.appliedCh
}

// txState applies commands inside one bbolt write transaction.
type txState struct {
	meta, kv, journal *bolt.Bucket
	jkeys, jstubs     *bolt.Bucket
	keys              *keyIndex
	rev, seq          uint64
	hash              [32]byte
	hasher            hash.Hash // chains records; reused
}

func newTxState(tx *bolt.Tx, keys *keyIndex) *txState {
	st := &txState{meta: tx.Bucket(bucketMeta), kv: tx.Bucket(bucketKV), journal: tx.Bucket(bucketJournal),
		jkeys: tx.Bucket(bucketJKeys), jstubs: tx.Bucket(bucketJStubs), keys: keys, hasher: sha256.New()}
	st.jkeys.FillPercent = 1.0
	// The journal only grows at its end (keys are increasing sequence
	// numbers), so full pages waste nothing: half as many pages to write.
	st.journal.FillPercent = 1.0
	st.rev = getU64(st.meta, metaRevision)
	st.seq = getU64(st.meta, metaSeq)
	copy(st.hash[:], st.meta.Get(metaHash))
	return st
}

func (st *txState) finish(applied uint64) error {
	if err := putU64(st.meta, metaApplied, applied); err != nil {
		return err
	}
	if err := putU64(st.meta, metaRevision, st.rev); err != nil {
		return err
	}
	if err := putU64(st.meta, metaSeq, st.seq); err != nil {
		return err
	}
	return st.meta.Put(metaHash, append([]byte(nil), st.hash[:]...))
}

func (st *txState) apply(c *command, events *[]Event) interface{} {
	switch c.typ {
	case cmdTxn, cmdTxnJournal:
		if err := c.txn.validate(); err != nil {
			return err
		}
		r, err := st.applyTxn(&c.txn, events)
		if err != nil {
			panic(fmt.Sprintf("cluster: applying transaction: %v", err))
		}
		return r
	case cmdAppend:
		if len(c.records) == 0 {
			return fmt.Errorf("%w: empty append", ErrInvalid)
		}
		r, err := st.applyAppend(c.records)
		if err != nil {
			panic(fmt.Sprintf("cluster: appending to journal: %v", err))
		}
		return r
	case cmdAppendKeyed:
		if len(c.keyed) == 0 {
			return fmt.Errorf("%w: empty append", ErrInvalid)
		}
		r, err := st.applyAppendKeyed(c.keyed)
		if err != nil {
			panic(fmt.Sprintf("cluster: appending to journal: %v", err))
		}
		return r
	case cmdTrim:
		r, err := st.applyTrim(c.before)
		if err != nil {
			panic(fmt.Sprintf("cluster: trimming journal: %v", err))
		}
		return r
	case cmdPrune:
		r, err := st.applyPrune(c.runs)
		if errors.Is(err, ErrInvalid) {
			return err
		}
		if err != nil {
			panic(fmt.Sprintf("cluster: pruning journal: %v", err))
		}
		return r
	case cmdBatch:
		rs := make([]interface{}, len(c.batch))
		for i := range c.batch {
			rs[i] = st.apply(&c.batch[i], events)
		}
		return rs
	}
	panic(fmt.Sprintf("cluster: unknown command type %d", c.typ))
}

func (st *txState) applyTxn(t *Txn, events *[]Event) (TxnResult, error) {
	for i, c := range t.Compares {
		raw := st.kv.Get([]byte(c.Key))
		var ok bool
		switch c.Kind {
		case CompareAbsent:
			ok = raw == nil
		case CompareVersion:
			ok = (raw == nil && c.Version == 0) || (raw != nil && binary.BigEndian.Uint64(raw) == c.Version)
		case CompareValue:
			ok = raw != nil && bytes.Equal(raw[8:], c.Value)
		}
		if !ok {
			return TxnResult{Revision: st.rev, FailedCompare: i}, nil
		}
	}
	if len(t.Ops) == 0 {
		return st.applyTxnJournal(t, TxnResult{Succeeded: true, Revision: st.rev, FailedCompare: -1})
	}
	st.rev++
	for _, o := range t.Ops {
		switch o.Kind {
		case OpPut:
			v := make([]byte, 8+len(o.Value))
			binary.BigEndian.PutUint64(v, st.rev)
			copy(v[8:], o.Value)
			if err := st.kv.Put([]byte(o.Key), v); err != nil {
				return TxnResult{}, err
			}
			*events = append(*events, Event{Type: EventPut, Key: o.Key, Value: o.Value, Revision: st.rev})
		case OpDelete:
			if st.kv.Get([]byte(o.Key)) == nil {
				continue
			}
			if err := st.kv.Delete([]byte(o.Key)); err != nil {
				return TxnResult{}, err
			}
			*events = append(*events, Event{Type: EventDelete, Key: o.Key, Revision: st.rev})
		case OpDeletePrefix:
			var keys []string
			c := st.kv.Cursor()
			p := []byte(o.Key)
			for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
				keys = append(keys, string(k))
			}
			for _, k := range keys {
				if err := st.kv.Delete([]byte(k)); err != nil {
					return TxnResult{}, err
				}
				*events = append(*events, Event{Type: EventDelete, Key: k, Revision: st.rev})
			}
		}
	}
	return st.applyTxnJournal(t, TxnResult{Succeeded: true, Revision: st.rev, FailedCompare: -1})
}

// applyTxnJournal appends a successful transaction's journal records, as
// a keyed append, and reports their range in r.
func (st *txState) applyTxnJournal(t *Txn, r TxnResult) (TxnResult, error) {
	if len(t.Journal) == 0 {
		return r, nil
	}
	recs := make([]KeyedRecord, len(t.Journal))
	for i := range t.Journal {
		recs[i] = KeyedRecord{Key: t.Journal[i].Key, Data: t.Journal[i].withRevision(r.Revision)}
	}
	j, err := st.applyAppendKeyed(recs)
	if err != nil {
		return TxnResult{}, err
	}
	r.Journal = j
	return r, nil
}

func (st *txState) applyAppend(recs [][]byte) (AppendResult, error) {
	res := AppendResult{First: st.seq + 1}
	// One buffer for all values: bbolt keeps them, uncopied, until the
	// transaction commits (keys it copies).
	n := 0
	for _, data := range recs {
		n += 64 + len(data)
	}
	buf := make([]byte, n)
	var k [8]byte
	for _, data := range recs {
		st.seq++
		h := chainHashWith(st.hasher, st.hash, st.seq, data)
		v := buf[: 64+len(data) : 64+len(data)]
		buf = buf[64+len(data):]
		copy(v, st.hash[:])
		copy(v[32:], h[:])
		copy(v[64:], data)
		binary.BigEndian.PutUint64(k[:], st.seq)
		if err := st.journal.Put(k[:], v); err != nil {
			return AppendResult{}, err
		}
		st.hash = h
	}
	res.Last = st.seq
	return res, nil
}

// applyTrim drops journal records below before (never the last one, so
// the chain head stays). The first kept record's PrevHash anchors the chain.
func (st *txState) applyTrim(before uint64) (TrimResult, error) {
	first := max(getU64(st.meta, metaFirst), 1)
	before = min(before, st.seq)
	if before <= first {
		return TrimResult{First: first}, nil
	}
	before, err := st.trimStubs(before)
	if err != nil {
		return TrimResult{}, err
	}
	if before <= first {
		return TrimResult{First: first}, nil
	}
	c := st.journal.Cursor()
	var n uint64
	for k, _ := c.Seek(u64Key(first)); k != nil && binary.BigEndian.Uint64(k) < before; k, _ = c.Next() {
		if err := c.Delete(); err != nil {
			return TrimResult{}, err
		}
		n++
	}
	if err := putU64(st.meta, metaFirst, before); err != nil {
		return TrimResult{}, err
	}
	if err := st.trimKeys(before); err != nil {
		return TrimResult{}, err
	}
	return TrimResult{First: before, Removed: n}, nil
}

// TrimResult reports what a journal trim kept and removed.
type TrimResult struct {
	First   uint64 // first sequence number kept
	Removed uint64
}

// chainHash is the journal's hash: SHA-256(prev || seq || data).
func chainHash(prev [32]byte, seq uint64, data []byte) [32]byte {
	return chainHashWith(sha256.New(), prev, seq, data)
}

// chainHashWith is chainHash reusing h, so that hashing many records
// allocates nothing.
func chainHashWith(h hash.Hash, prev [32]byte, seq uint64, data []byte) [32]byte {
	h.Reset()
	h.Write(prev[:])
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	h.Write(s[:])
	h.Write(data)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// ChainHash exposes the journal hash so that records exported elsewhere can
// be verified offline: SHA-256(prev || big-endian seq || data).
func ChainHash(prev [32]byte, seq uint64, data []byte) [32]byte { return chainHash(prev, seq, data) }

// get reads one key from local state.
func (f *fsm) get(key string) (KV, bool, error) {
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	if f.db == nil {
		return KV{}, false, ErrClosed
	}
	var kv KV
	var found bool
	err := f.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketKV).Get([]byte(key))
		if raw == nil {
			return nil
		}
		found = true
		kv = decodeKV([]byte(key), raw)
		return nil
	})
	return kv, found, err
}

// list reads every key under prefix from local state, with the revision the
// listing reflects.
func (f *fsm) list(prefix string) ([]KV, uint64, error) {
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	if f.db == nil {
		return nil, 0, ErrClosed
	}
	var out []KV
	var rev uint64
	err := f.db.View(func(tx *bolt.Tx) error {
		rev = getU64(tx.Bucket(bucketMeta), metaRevision)
		c := tx.Bucket(bucketKV).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			out = append(out, decodeKV(k, v))
		}
		return nil
	})
	return out, rev, err
}

// watch registers a watcher and lists its prefix atomically with respect to
// applies, so the listing plus the events are exactly the history.
func (f *fsm) watch(prefix string) (*Watcher, []KV, uint64, error) {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	kvs, rev, err := f.list(prefix)
	if err != nil {
		return nil, nil, 0, err
	}
	return f.hub.add(prefix), kvs, rev, nil
}

// journalRange returns records with from <= seq <= to, at most max of them.
func (f *fsm) journalRange(from, to uint64, max int) ([]Record, error) {
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	if f.db == nil {
		return nil, ErrClosed
	}
	var out []Record
	err := f.db.View(func(tx *bolt.Tx) error {
		it := newJournalIter(tx, from)
		for len(out) < max {
			r, ok, err := it.next()
			if err != nil || !ok || r.Seq > to {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// lastSeq returns the last journal sequence number and its hash.
func (f *fsm) lastSeq() (uint64, [32]byte, error) {
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	var seq uint64
	var h [32]byte
	if f.db == nil {
		return 0, h, ErrClosed
	}
	err := f.db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		seq = getU64(m, metaSeq)
		copy(h[:], m.Get(metaHash))
		return nil
	})
	return seq, h, err
}

// firstSeq returns the first journal sequence number kept.
func (f *fsm) firstSeq() (uint64, error) {
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	if f.db == nil {
		return 0, ErrClosed
	}
	var first uint64
	err := f.db.View(func(tx *bolt.Tx) error {
		first = max(getU64(tx.Bucket(bucketMeta), metaFirst), 1)
		return nil
	})
	return first, err
}

// verifyJournal recomputes the whole chain.
func (f *fsm) verifyJournal() (uint64, error) {
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	if f.db == nil {
		return 0, ErrClosed
	}
	var n uint64
	err := f.db.View(func(tx *bolt.Tx) error {
		var prev [32]byte
		want := max(getU64(tx.Bucket(bucketMeta), metaFirst), 1)
		it := newJournalIter(tx, 1)
		for {
			r, ok, err := it.next()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			seq := r.Seq
			if n == 0 && want > 1 && seq == want {
				prev = r.PrevHash // records before were trimmed: this one anchors the chain
			}
			if seq != want {
				return fmt.Errorf("%w: record %d missing", ErrJournalCorrupt, want)
			}
			if r.PrevHash != prev {
				return fmt.Errorf("%w: record %d does not follow record %d", ErrJournalCorrupt, seq, seq-1)
			}
			// A stub's inner records are gone: its hash is taken as
			// the chain's input, which a later checkpoint vouches for.
			if r.Pruned == 0 && chainHash(r.PrevHash, seq, r.Data) != r.Hash {
				return fmt.Errorf("%w: record %d altered", ErrJournalCorrupt, seq)
			}
			prev = r.Hash
			want = r.LastSeq() + 1
			n += max(r.Pruned, 1)
		}
		m := tx.Bucket(bucketMeta)
		if last := getU64(m, metaSeq); last != want-1 {
			return fmt.Errorf("%w: journal ends at %d, state says %d", ErrJournalCorrupt, want-1, last)
		}
		if !bytes.Equal(m.Get(metaHash), prev[:]) && n > 0 {
			return fmt.Errorf("%w: last record's hash differs from the recorded head", ErrJournalCorrupt)
		}
		return nil
	})
	return n, err
}

func decodeRecord(seq uint64, v []byte) (Record, error) {
	if len(v) < 64 {
		return Record{}, fmt.Errorf("%w: record %d truncated", ErrJournalCorrupt, seq)
	}
	r := Record{Seq: seq, Data: append([]byte(nil), v[64:]...)}
	copy(r.PrevHash[:], v[:32])
	copy(r.Hash[:], v[32:64])
	return r, nil
}

func decodeKV(k, raw []byte) KV {
	if len(raw) < 8 {
		return KV{Key: string(k)}
	}
	return KV{Key: string(k), Version: binary.BigEndian.Uint64(raw), Value: append([]byte(nil), raw[8:]...)}
}

func u64Key(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putU64(b *bolt.Bucket, k []byte, v uint64) error { return b.Put(k, u64Key(v)) }
