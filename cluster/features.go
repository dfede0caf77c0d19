package cluster

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Mixed versions during a rolling upgrade.
//
// A transaction that carries journal records (Txn.Journal) is a command
// earlier versions cannot apply: a node of such a version stops at it. So
// every node advertises the commands it can apply, as a level under
// codecPrefix+<node ID>, and a node proposes such a transaction as one
// entry only while every member of the configuration advertises
// levelTxnJournal. Until then (an upgrade in progress, a member that never
// advertised) it applies the transaction as before, then appends its
// records on their own, keyed, so a retry stores them once: not atomic,
// but nothing stops. The advertisement stays when a node is downgraded:
// downgrade every node, or none.

const (
	codecPrefix = "sys/cluster/codec/"
	// levelTxnJournal is the level of nodes that apply cmdTxnJournal and
	// cmdPrune, which came in the same release.
	levelTxnJournal = 2
	codecLevel      = levelTxnJournal
)

// advertiseCodec writes this node's codec level once, retrying while no
// leader takes the write, until the node closes.
func (n *Node) advertiseCodec() {
	key := codecPrefix + n.cfg.NodeID
	for {
		if kv, ok, err := n.fsm.get(key); err == nil && ok && codecLevelOf(kv.Value) >= codecLevel {
			return
		}
		ctx, cancel := n.writeCtx(n.ctx)
		_, err := n.Txn(ctx, Txn{Ops: []Op{Put(key, []byte(strconv.Itoa(codecLevel)))}})
		cancel()
		if err == nil {
			return
		}
		t := time.NewTimer(time.Second)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func codecLevelOf(v []byte) int {
	l, err := strconv.Atoi(string(v))
	if err != nil {
		return 0
	}
	return l
}

// AtomicJournalTxn reports whether a transaction that carries journal
// records commits as one entry, atomically with them: whether every member
// of the cluster, as this node knows it, runs a version that applies such
// entries. Otherwise Txn applies the transaction, then appends the
// records.
func (n *Node) AtomicJournalTxn() bool { return n.allMembersAt(levelTxnJournal) }

// CanPrune reports whether every member of the cluster, as this node
// knows it, applies PruneJournal's command. A node of an earlier version
// would stop at it, so PruneJournal refuses (ErrMixedVersions) until then.
func (n *Node) CanPrune() bool { return n.allMembersAt(levelTxnJournal) }

// allMembersAt reports whether every member has advertised level or more.
func (n *Node) allMembersAt(level int) bool {
	ids := n.memberIDs()
	if len(ids) == 0 {
		return false
	}
	for _, id := range ids {
		kv, ok, err := n.fsm.get(codecPrefix + id)
		if err != nil || !ok || codecLevelOf(kv.Value) < level {
			return false
		}
	}
	return true
}

// txnThenAppend is Txn for a cluster with members that cannot apply a
// transaction with journal records: the transaction, then, if it
// succeeded, its records appended (keyed) on their own.
func (n *Node) txnThenAppend(ctx context.Context, t Txn) (TxnResult, error) {
	journal := t.Journal
	t.Journal = nil
	var res TxnResult
	if len(t.Ops) > 0 || len(t.Compares) > 0 {
		r, err := n.propose(ctx, encodeTxn(nil, &t))
		if err != nil {
			return TxnResult{}, err
		}
		var ok bool
		if res, ok = r.(TxnResult); !ok {
			return TxnResult{}, fmt.Errorf("cluster: unexpected transaction result %T", r)
		}
		if !res.Succeeded {
			return res, nil
		}
	} else {
		// Records only: nothing to guard or write.
		res = TxnResult{Succeeded: true, FailedCompare: -1, Revision: n.fsm.revision.Load()}
	}
	recs := make([]KeyedRecord, len(journal))
	for i := range journal {
		recs[i] = KeyedRecord{Key: journal[i].Key, Data: journal[i].withRevision(res.Revision)}
	}
	j, err := n.AppendKeyed(ctx, recs)
	if err != nil {
		return res, fmt.Errorf("appending the transaction's journal records: %w", err)
	}
	res.Journal = j
	return res, nil
}
