package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/raft"
)

// Txn applies t atomically through the leader. A transaction whose compares
// fail is not an error: see TxnResult.Succeeded. Journal records commit in
// the same entry as the ops once every member can apply such entries
// (AtomicJournalTxn); until then they are appended after the ops.
func (n *Node) Txn(ctx context.Context, t Txn) (TxnResult, error) {
	if err := t.validate(); err != nil {
		return TxnResult{}, err
	}
	if len(t.Journal) > 0 && !n.AtomicJournalTxn() {
		return n.txnThenAppend(ctx, t) // a rolling upgrade in progress (features.go)
	}
	res, err := n.propose(ctx, encodeTxn(nil, &t))
	if err != nil {
		return TxnResult{}, err
	}
	r, ok := res.(TxnResult)
	if !ok {
		return TxnResult{}, fmt.Errorf("cluster: unexpected transaction result %T", res)
	}
	return r, nil
}

// Put writes one key unconditionally and returns its new version.
func (n *Node) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	r, err := n.Txn(ctx, Txn{Ops: []Op{Put(key, value)}})
	return r.Revision, err
}

// Delete removes one key unconditionally.
func (n *Node) Delete(ctx context.Context, key string) error {
	_, err := n.Txn(ctx, Txn{Ops: []Op{Delete(key)}})
	return err
}

// Get reads one key. With Linearizable it first confirms with the leader
// that this node has applied every write acknowledged before the call.
func (n *Node) Get(ctx context.Context, key string, c Consistency) (KV, bool, error) {
	if c == Linearizable {
		if err := n.readBarrier(ctx); err != nil {
			return KV{}, false, err
		}
	}
	return n.fsm.get(key)
}

// List reads every key under prefix in key order, with the store revision
// the listing reflects.
func (n *Node) List(ctx context.Context, prefix string, c Consistency) ([]KV, uint64, error) {
	if c == Linearizable {
		if err := n.readBarrier(ctx); err != nil {
			return nil, 0, err
		}
	}
	return n.fsm.list(prefix)
}

// Watch lists the local state under prefix and registers a watcher for
// every later change, atomically: the listing at revision rev followed by
// the watcher's events is exactly the history. Close the watcher when done.
func (n *Node) Watch(prefix string) (w *Watcher, initial []KV, rev uint64, err error) {
	return n.fsm.watch(prefix)
}

// Append adds records to the journal through the leader and returns the
// sequence numbers they received, in order.
func (n *Node) Append(ctx context.Context, records [][]byte) (AppendResult, error) {
	if len(records) == 0 || len(records) > MaxAppendRecs {
		return AppendResult{}, fmt.Errorf("%w: append of %d records (want 1 to %d)", ErrInvalid, len(records), MaxAppendRecs)
	}
	for i, r := range records {
		if len(r) > MaxRecordLen {
			return AppendResult{}, fmt.Errorf("%w: record %d longer than %d bytes", ErrInvalid, i, MaxRecordLen)
		}
	}
	res, err := n.propose(ctx, encodeAppend(nil, records))
	if err != nil {
		return AppendResult{}, err
	}
	r, ok := res.(AppendResult)
	if !ok {
		return AppendResult{}, fmt.Errorf("cluster: unexpected append result %T", res)
	}
	return r, nil
}

// AppendKeyed adds records to the journal through the leader, dropping
// each record whose non-empty Key the journal already holds among its last
// JournalKeyWindow records, so that a writer may retry an append whose
// outcome it does not know without storing anything twice. The result's
// Seqs name, for each record, the sequence number holding it.
func (n *Node) AppendKeyed(ctx context.Context, records []KeyedRecord) (AppendResult, error) {
	if len(records) == 0 || len(records) > MaxAppendRecs {
		return AppendResult{}, fmt.Errorf("%w: append of %d records (want 1 to %d)", ErrInvalid, len(records), MaxAppendRecs)
	}
	for i, r := range records {
		switch {
		case len(r.Data) > MaxRecordLen:
			return AppendResult{}, fmt.Errorf("%w: record %d longer than %d bytes", ErrInvalid, i, MaxRecordLen)
		case len(r.Key) > MaxJournalKeyLen:
			return AppendResult{}, fmt.Errorf("%w: record %d: key longer than %d bytes", ErrInvalid, i, MaxJournalKeyLen)
		}
	}
	res, err := n.propose(ctx, encodeAppendKeyed(nil, records))
	if err != nil {
		return AppendResult{}, err
	}
	r, ok := res.(AppendResult)
	if !ok {
		return AppendResult{}, fmt.Errorf("cluster: unexpected append result %T", res)
	}
	return r, nil
}

// TrimJournal drops journal records with sequence numbers below before,
// through the leader. The last record always stays, and the first kept
// record's PrevHash anchors verification of what remains; callers keep
// whatever proves the dropped part (audit checkpoints) elsewhere.
func (n *Node) TrimJournal(ctx context.Context, before uint64) (TrimResult, error) {
	res, err := n.propose(ctx, encodeTrim(nil, before))
	if err != nil {
		return TrimResult{}, err
	}
	r, ok := res.(TrimResult)
	if !ok {
		return TrimResult{}, fmt.Errorf("cluster: unexpected trim result %T", res)
	}
	return r, nil
}

// JournalFirst returns the first journal sequence number still stored.
func (n *Node) JournalFirst() (uint64, error) { return n.fsm.firstSeq() }

// JournalRange returns this node's journal records with from <= seq <= to,
// at most max of them.
func (n *Node) JournalRange(from, to uint64, max int) ([]Record, error) {
	return n.fsm.journalRange(from, to, max)
}

// JournalHead returns the last sequence number and its hash.
func (n *Node) JournalHead() (uint64, [32]byte, error) { return n.fsm.lastSeq() }

// VerifyJournal recomputes this node's whole hash chain and returns the
// number of records checked, or an error wrapping ErrJournalCorrupt that
// names the first bad record.
func (n *Node) VerifyJournal() (uint64, error) { return n.fsm.verifyJournal() }

// Snapshot asks Raft to take a snapshot now and compact the log.
func (n *Node) Snapshot() error {
	err := n.raft.Snapshot().Error()
	if err == raft.ErrNothingNewToSnapshot {
		return nil
	}
	return err
}

// Backup writes a consistent copy of this node's applied state to w, in
// the snapshot format, and returns the index it reflects. Restore accepts it.
func (n *Node) Backup(w io.Writer) (uint64, error) {
	n.fsm.dbMu.RLock()
	defer n.fsm.dbMu.RUnlock()
	if n.fsm.db == nil {
		return 0, ErrClosed
	}
	tx, err := n.fsm.db.Begin(false)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	idx := getU64(tx.Bucket(bucketMeta), metaApplied)
	return idx, writeSnapshot(w, tx)
}

// Restore replaces the whole cluster's state with a backup made by Backup.
// Any node takes it: a follower streams r to the leader over the cluster's
// mutual TLS. Every node installs the backup and every watcher sees a
// reset. The backup is checked whole before anything changes, so a damaged
// or truncated one (ErrInvalid) or a failing r changes nothing. r is read
// once: a restore is not retried once it has started, and ErrNotLeader
// means leadership moved meanwhile.
func (n *Node) Restore(ctx context.Context, r io.Reader) error {
	wctx, cancel := n.writeCtx(ctx)
	defer cancel()
	for {
		if n.ctx.Err() != nil {
			return ErrClosed
		}
		err := ErrNotLeader
		if n.raft.State() == raft.Leader {
			return n.restoreLocal(ctx, r)
		} else if _, addr := n.Leader(); addr != "" {
			if err = n.restoreVia(ctx, addr, r); !errors.Is(err, errNotSent) {
				return err
			}
		}
		if werr := n.waitRetry(wctx); werr != nil {
			return fmt.Errorf("%w: %v", ErrNoQuorum, err)
		}
	}
}

// restoreLocal is Restore on the leader.
func (n *Node) restoreLocal(ctx context.Context, r io.Reader) error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	tmp, err := os.CreateTemp(n.cfg.DataDir, "restore-*.snap")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := rewriteBackup(r, tmp); err != nil {
		return fmt.Errorf("%w: checking backup: %w", ErrInvalid, err)
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	// The index is only a floor: Raft gives the restored snapshot an index
	// above everything in its log.
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: 1, Term: 1, Size: size}
	if err := n.raft.Restore(meta, tmp, timeLeft(ctx)); err != nil {
		return fmt.Errorf("restoring backup: %w", err)
	}
	// The backup may come from another cluster: its nodes are no members
	// here, and their certificates must not come back with a reused ID.
	if err := n.revokeStrangers(ctx); err != nil {
		return fmt.Errorf("restored, but revoking the backup's other nodes failed: %w", err)
	}
	return n.noteKnown(ctx, n.memberIDs()...)
}
