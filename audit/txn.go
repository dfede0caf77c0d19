package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/ferryvpn/ferry/cluster"
)

// An audit record written after the change it describes can go missing:
// the change commits, then the append fails (the leader lost between the
// two proposals, the caller's context ended, the Log closed), and the
// change is live with no evidence. A retry then finds nothing to change
// and records nothing. Commit closes that gap: the event's journal record
// rides in the change's own cluster transaction (cluster.Txn.Journal), so
// both commit in one Raft entry or neither does.

// TxnRevision, as an Event's PolicyVersion, stands for the revision of the
// cluster transaction that commits the event (Commit): the version that
// transaction gives the keys it writes, which is not known before it
// commits. The state machine writes the number into the record (the
// largest integer every JSON reader holds exactly, so that it can be found
// in the record's canonical form).
const TxnRevision uint64 = 1<<53 - 1

// Journaler is a Recorder whose events can be committed in the same
// cluster transaction as the change they describe. Log is one. A
// Journaler is safe for concurrent use.
type Journaler interface {
	Recorder
	// Prepare returns e's journal record exactly as Record would append
	// it: validated, with ID, Time, Node and Source (from ctx) filled in
	// when empty, strings capped, in canonical form, keyed by its ID. A
	// PolicyVersion of TxnRevision is left for the transaction's revision.
	Prepare(ctx context.Context, e Event) (cluster.TxnRecord, error)
	// Committed reports the outcome of a transaction that carried n
	// prepared records: err is nil when they were stored (or the
	// transaction's compares failed and nothing was), else the error.
	Committed(n int, err error)
}

var _ Journaler = (*Log)(nil)

// Prepare implements Journaler. It fails with ErrClosed once the Log is
// closed, as Record does.
func (l *Log) Prepare(ctx context.Context, e Event) (cluster.TxnRecord, error) {
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return cluster.TxnRecord{}, ErrClosed
	}
	return prepare(ctx, &e, l.encode)
}

// Committed implements Journaler: it counts the records and failures.
func (l *Log) Committed(n int, err error) {
	if err != nil {
		l.metrics.appendErrors.Inc()
		return
	}
	l.metrics.txnRecords.Add(float64(n))
}

// revisionMark is how TxnRevision reads in a canonical record.
var revisionMark = []byte(`"policy_version":` + strconv.FormatUint(TxnRevision, 10))

func prepare(ctx context.Context, e *Event, encode func(context.Context, *Event, int) ([]byte, error)) (cluster.TxnRecord, error) {
	data, err := encode(ctx, e, cluster.MaxRecordLen)
	if err != nil {
		return cluster.TxnRecord{}, err
	}
	rec := cluster.TxnRecord{Key: []byte(e.ID), Data: data}
	if e.PolicyVersion == TxnRevision {
		// A quote inside a JSON string is escaped, so the mark occurs
		// only as the event's own field.
		i := bytes.Index(data, revisionMark)
		if i < 0 || bytes.Contains(data[i+1:], revisionMark) {
			return cluster.TxnRecord{}, fmt.Errorf("%w: policy version placeholder not found once", ErrInvalidEvent)
		}
		at := i + len(revisionMark) - len(strconv.FormatUint(TxnRevision, 10))
		rec.Data = append(data[:at:at], data[i+len(revisionMark):]...)
		rec.RevisionAt = at
	}
	if len(rec.Data)+20 > cluster.MaxRecordLen {
		return cluster.TxnRecord{}, fmt.Errorf("%w: %d bytes encoded, at most %d", ErrInvalidEvent, len(rec.Data), cluster.MaxRecordLen-20)
	}
	return rec, nil
}

// Commit applies t on store with the journal records of events, which
// are appended iff t's compares hold, in the same Raft entry as its ops:
// the change and its audit records commit together or not at all. When
// t's compares fail nothing is stored and nothing recorded; the result
// says so, as cluster.Node.Txn's does. An event whose PolicyVersion is
// TxnRevision names the transaction's revision.
//
// An error leaves the outcome as the cluster's error says
// (cluster.ErrOutcomeUnknown: maybe both, maybe neither; otherwise
// neither), never the change without its records.
//
// rec should be a Journaler (Log). A Recorder that is not (a test double
// that keeps events in memory) gets the old order instead: t, then each
// event recorded once t succeeded, which can leave a change unrecorded
// when recording fails; it exists for such doubles only.
func Commit(ctx context.Context, store *cluster.Node, rec Recorder, t cluster.Txn, events ...Event) (cluster.TxnResult, error) {
	j, ok := rec.(Journaler)
	if !ok {
		return commitThenRecord(ctx, store, rec, t, events)
	}
	for i := range events {
		r, err := j.Prepare(ctx, events[i])
		if err != nil {
			return cluster.TxnResult{}, fmt.Errorf("preparing audit event %s: %w", events[i].Type, err)
		}
		t.Journal = append(t.Journal, r)
	}
	res, err := store.Txn(ctx, t)
	switch {
	case len(events) == 0:
	case err != nil:
		j.Committed(len(events), err)
	case res.Succeeded:
		j.Committed(len(events)-res.Journal.Duplicates, nil)
	}
	return res, err
}

func commitThenRecord(ctx context.Context, store *cluster.Node, rec Recorder, t cluster.Txn, events []Event) (cluster.TxnResult, error) {
	if rec == nil {
		return cluster.TxnResult{}, errors.New("audit: no recorder")
	}
	res, err := store.Txn(ctx, t)
	if err != nil || !res.Succeeded {
		return res, err
	}
	for _, e := range events {
		if e.PolicyVersion == TxnRevision {
			e.PolicyVersion = res.Revision
		}
		if err := rec.Record(ctx, e); err != nil {
			return res, fmt.Errorf("recording audit event %s: %w", e.Type, err)
		}
	}
	return res, nil
}
