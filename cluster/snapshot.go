package cluster

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Snapshots are written in ferry's own framed format rather than as a raw
// bbolt file, so that restoring one never hands untrusted pages to bbolt:
//
//	snapshot = magic(8) entry* end(1 = 0) sha256(32 over all before it)
//	entry    = bucket(1 = 1 meta, 2 kv, 3 journal, 4 journal keys, 5 journal stubs) key(bytes) value(bytes)
//
// A state without stubs writes no entry of bucket 5, so its snapshots
// restore on versions that predate pruning.
var snapMagic = []byte("FERRYSN1")

const snapEnd = 0

var snapBuckets = [][]byte{nil, bucketMeta, bucketKV, bucketJournal, bucketJKeys, bucketJStubs}

// maxSnapValue bounds one value in a snapshot: the largest KV value or
// journal record plus its header.
const maxSnapValue = MaxRecordLen + 64

// Snapshot implements raft.FSM. It opens a read transaction, which sees the
// state exactly as of the last applied entry; Persist streams it.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	if f.db == nil {
		return nil, ErrClosed
	}
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("starting snapshot: %w", err)
	}
	return &fsmSnapshot{tx: tx}, nil
}

type fsmSnapshot struct{ tx *bolt.Tx }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.tx); err != nil {
		sink.Cancel()
		return fmt.Errorf("persisting snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { _ = s.tx.Rollback() }

// writeSnapshot writes every bucket of tx in the snapshot format.
func writeSnapshot(w io.Writer, tx *bolt.Tx) error {
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<16)
	bw.Write(snapMagic)
	var scratch []byte
	for id := 1; id < len(snapBuckets); id++ {
		err := tx.Bucket(snapBuckets[id]).ForEach(func(k, v []byte) error {
			scratch = append(scratch[:0], byte(id))
			scratch = appendBytes(scratch, k)
			scratch = appendBytes(scratch, v)
			_, err := bw.Write(scratch)
			return err
		})
		if err != nil {
			return err
		}
	}
	bw.WriteByte(snapEnd)
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(h.Sum(nil))
	return err
}

// snapshotReader decodes the snapshot format, hashing as it goes.
type snapshotReader struct {
	r *bufio.Reader
	h hash.Hash
}

func newSnapshotReader(r io.Reader) (*snapshotReader, error) {
	sr := &snapshotReader{r: bufio.NewReaderSize(r, 1<<16), h: sha256.New()}
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(sr.r, magic); err != nil {
		return nil, fmt.Errorf("reading snapshot header: %w", err)
	}
	if !bytes.Equal(magic, snapMagic) {
		return nil, errors.New("not a ferry snapshot (bad magic)")
	}
	sr.h.Write(magic)
	return sr, nil
}

func (sr *snapshotReader) readByte() (byte, error) {
	b, err := sr.r.ReadByte()
	if err != nil {
		return 0, noEOF(err)
	}
	sr.h.Write([]byte{b})
	return b, nil
}

func (sr *snapshotReader) readBytes(max int) ([]byte, error) {
	var lenBuf [binary.MaxVarintLen64]byte
	n := 0
	for {
		b, err := sr.readByte()
		if err != nil {
			return nil, err
		}
		if n == len(lenBuf) {
			return nil, errors.New("length prefix too long")
		}
		lenBuf[n] = b
		n++
		if b < 0x80 {
			break
		}
	}
	l, k := binary.Uvarint(lenBuf[:n])
	if k <= 0 || l > uint64(max) {
		return nil, fmt.Errorf("field length out of range (max %d)", max)
	}
	p := make([]byte, l)
	if _, err := io.ReadFull(sr.r, p); err != nil {
		return nil, noEOF(err)
	}
	sr.h.Write(p)
	return p, nil
}

// next returns the next entry; ok is false at the end marker, after which
// the checksum has been verified.
func (sr *snapshotReader) next() (bucket int, k, v []byte, ok bool, err error) {
	id, err := sr.readByte()
	if err != nil {
		return 0, nil, nil, false, err
	}
	if id == snapEnd {
		sum := sr.h.Sum(nil)
		want := make([]byte, sha256.Size)
		if _, err := io.ReadFull(sr.r, want); err != nil {
			return 0, nil, nil, false, noEOF(err)
		}
		if !bytes.Equal(sum, want) {
			return 0, nil, nil, false, errors.New("snapshot checksum mismatch")
		}
		if _, err := sr.r.ReadByte(); err != io.EOF {
			return 0, nil, nil, false, errors.New("trailing data after snapshot")
		}
		return 0, nil, nil, false, nil
	}
	if int(id) >= len(snapBuckets) {
		return 0, nil, nil, false, fmt.Errorf("unknown bucket %d", id)
	}
	if k, err = sr.readBytes(MaxKeyLen); err != nil {
		return 0, nil, nil, false, err
	}
	if len(k) == 0 {
		return 0, nil, nil, false, errors.New("empty key")
	}
	if v, err = sr.readBytes(maxSnapValue); err != nil {
		return 0, nil, nil, false, err
	}
	return int(id), k, v, true, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Restore implements raft.FSM: it builds a new state file from the snapshot
// beside the current one, checks it whole, then swaps it in and tells every
// watcher to resync. A bad snapshot leaves the current state untouched.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	tmp := f.path + ".restore"
	os.Remove(tmp)
	if err := buildState(tmp, rc); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restoring snapshot: %w", err)
	}

	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.dbMu.Lock()
	if f.db != nil {
		if err := f.db.Close(); err != nil {
			f.dbMu.Unlock()
			return fmt.Errorf("closing state for restore: %w", err)
		}
	}
	if err := os.Rename(tmp, f.path); err != nil {
		f.dbMu.Unlock()
		return fmt.Errorf("installing restored state: %w", err)
	}
	err := f.open()
	f.dbMu.Unlock()
	if err != nil {
		return err
	}
	f.hub.dispatch([]Event{{Type: EventReset, Revision: f.revision.Load()}})
	f.signalApplied()
	return nil
}

// buildState writes a snapshot stream into a fresh bbolt file at path.
func buildState(path string, r io.Reader) error {
	sr, err := newSnapshotReader(r)
	if err != nil {
		return err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer db.Close()
	const perTx = 10000
	for done := false; !done; {
		err := db.Update(func(tx *bolt.Tx) error {
			for i := 0; i < perTx; i++ {
				id, k, v, ok, err := sr.next()
				if err != nil {
					return err
				}
				if !ok {
					done = true
					return nil
				}
				b, err := tx.CreateBucketIfNotExists(snapBuckets[id])
				if err != nil {
					return err
				}
				if err := b.Put(k, v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return db.Sync()
}

// rewriteBackup checks a backup whole and copies it to w without its applied
// index: a backup's index means nothing in the log of the cluster it is
// restored into, where the first entry applied afterwards records the real
// one.
func rewriteBackup(r io.Reader, w io.Writer) error {
	sr, err := newSnapshotReader(r)
	if err != nil {
		return err
	}
	h := sha256.New()
	bw := bufio.NewWriter(io.MultiWriter(w, h))
	bw.Write(snapMagic)
	var scratch []byte
	for {
		id, k, v, ok, err := sr.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if id == 1 && bytes.Equal(k, metaApplied) {
			continue
		}
		scratch = append(scratch[:0], byte(id))
		scratch = appendBytes(scratch, k)
		scratch = appendBytes(scratch, v)
		bw.Write(scratch)
	}
	bw.WriteByte(snapEnd)
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err = w.Write(h.Sum(nil))
	return err
}
