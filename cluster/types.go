package cluster

import (
	"errors"
	"fmt"
	"strconv"
)

// Errors returned by Node. Callers compare them with errors.Is.
var (
	// ErrNoQuorum is returned when a write or linearizable read could not
	// reach a leader backed by a quorum within the configured wait.
	ErrNoQuorum = errors.New("cluster: no leader with quorum reachable")
	// ErrNotLeader is returned by operations that must run on the leader
	// when this node is not the leader and cannot forward.
	ErrNotLeader = errors.New("cluster: not the leader")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("cluster: node closed")
	// ErrInvalid is returned when a transaction or record is malformed; it
	// wraps a message naming the field.
	ErrInvalid = errors.New("cluster: invalid request")
	// ErrMixedVersions is returned for a command some member of the
	// cluster has not advertised that it applies (a rolling upgrade in
	// progress): proposing it would stop that member.
	ErrMixedVersions = errors.New("cluster: not every member applies this command yet")
	// ErrOutcomeUnknown is returned when a forwarded write was sent but the
	// connection failed before its answer arrived: it may or may not have
	// been committed.
	ErrOutcomeUnknown = errors.New("cluster: write outcome unknown")
	// ErrJournalCorrupt is returned by VerifyJournal when a record does not
	// match the hash chain.
	ErrJournalCorrupt = errors.New("cluster: journal hash chain broken")
	// ErrNotMember is returned by Leave when the node is not in the
	// cluster configuration (never added, or already removed).
	ErrNotMember = errors.New("cluster: not a member of the cluster")
	// ErrWouldLoseQuorum is returned by Leave when removing the node would
	// leave voters without a live majority, or no voter at all.
	ErrWouldLoseQuorum = errors.New("cluster: leaving would lose quorum")
	// ErrForbidden is returned when a node asks for what it may not: Leave
	// with a certificate that is not the leaving node's, or a forwarded
	// membership change or restore whose proof the leader does not accept.
	ErrForbidden = errors.New("cluster: not allowed for this node")
	// ErrPeerRefused is returned to a peer whose certificate does not
	// speak for the cluster: its node is not a current member, or the
	// certificate expired or was revoked.
	ErrPeerRefused = errors.New("cluster: refused: not a current member with a valid certificate")
	// ErrWrongPeer is returned by AddVoter when the address does not answer
	// with the node's certificate.
	ErrWrongPeer = errors.New("cluster: the address does not answer as that node")
)

// Limits on what a single write may carry; they keep one request from
// monopolising the log and bound what a decoder allocates.
const (
	MaxKeyLen     = 1 << 10
	MaxValueLen   = 1 << 20
	MaxTxnOps     = 1 << 12
	MaxRecordLen  = 1 << 20
	MaxAppendRecs = 1 << 14
)

// CompareKind selects what a Compare checks.
type CompareKind uint8

// Compare kinds.
const (
	// CompareAbsent succeeds when the key does not exist.
	CompareAbsent CompareKind = iota + 1
	// CompareVersion succeeds when the key's version equals Version
	// (a version of 0 means absent).
	CompareVersion
	// CompareValue succeeds when the key exists and its value equals Value.
	CompareValue
)

// Compare is one guard of a transaction.
type Compare struct {
	Kind    CompareKind
	Key     string
	Version uint64
	Value   []byte
}

// OpKind selects what an Op does.
type OpKind uint8

// Operation kinds.
const (
	OpPut OpKind = iota + 1
	OpDelete
	// OpDeletePrefix deletes every key that starts with Key.
	OpDeletePrefix
)

// Op is one operation of a transaction.
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte
}

// Txn is an atomic transaction: if every compare holds, every op is applied
// and every journal record appended; otherwise nothing is.
type Txn struct {
	Compares []Compare
	Ops      []Op
	// Journal holds records appended to the journal iff every compare
	// holds, in the same state-machine step as the ops, chained exactly as
	// Append chains them. A record whose non-empty Key the journal already
	// holds among its last JournalKeyWindow records is not stored again
	// (as with AppendKeyed); the ops still apply. This is how a change and
	// the audit record that describes it commit together or not at all.
	Journal []TxnRecord
}

// TxnRecord is a journal record carried by a Txn.
type TxnRecord struct {
	// Key is the record's idempotency key (see KeyedRecord); empty: none.
	Key  []byte
	Data []byte
	// RevisionAt, when positive, is a byte offset in Data: the state
	// machine inserts the transaction's resulting revision (TxnResult.
	// Revision), in decimal, before that byte, so a record can name the
	// version its own transaction gives the keys it writes. 0: nothing is
	// inserted (a revision can never open a record).
	RevisionAt int
}

// IfAbsent returns a compare that holds when key does not exist.
func IfAbsent(key string) Compare { return Compare{Kind: CompareAbsent, Key: key} }

// IfVersion returns a compare that holds when key is at version v (0: absent).
func IfVersion(key string, v uint64) Compare {
	return Compare{Kind: CompareVersion, Key: key, Version: v}
}

// IfValue returns a compare that holds when key holds exactly value.
func IfValue(key string, value []byte) Compare {
	return Compare{Kind: CompareValue, Key: key, Value: value}
}

// Put returns an op that writes value at key.
func Put(key string, value []byte) Op { return Op{Kind: OpPut, Key: key, Value: value} }

// Delete returns an op that removes key.
func Delete(key string) Op { return Op{Kind: OpDelete, Key: key} }

// DeletePrefix returns an op that removes every key starting with prefix.
func DeletePrefix(prefix string) Op { return Op{Kind: OpDeletePrefix, Key: prefix} }

// TxnResult reports how a transaction went.
type TxnResult struct {
	// Succeeded reports whether every compare held and the ops were applied.
	Succeeded bool
	// Revision is the store revision after the transaction. Keys written by a
	// successful transaction carry it as their version.
	Revision uint64
	// FailedCompare is the index of the first compare that did not hold,
	// or -1.
	FailedCompare int
	// Journal is the range the transaction's journal records received
	// (Txn.Journal), with each record's sequence number in Seqs (a
	// repeated key: the one already holding it). Zero when the
	// transaction carried none or did not succeed.
	Journal AppendResult
}

// KV is one stored key with its value and version (the revision that last
// wrote it).
type KV struct {
	Key     string
	Value   []byte
	Version uint64
}

// EventType says what a watch Event reports.
type EventType uint8

// Event types.
const (
	EventPut EventType = iota + 1
	EventDelete
	// EventReset means the state was replaced by a snapshot: the watcher must
	// list its prefix again and continue from the event's revision.
	EventReset
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	case EventReset:
		return "reset"
	}
	return fmt.Sprintf("event(%d)", uint8(t))
}

// Event is one committed change seen by a Watcher.
type Event struct {
	Type     EventType
	Key      string
	Value    []byte
	Revision uint64
}

// Record is one journal entry. Hash is SHA-256(PrevHash || Seq || Data), so
// every record commits to all records before it.
//
// A Record whose Pruned is not 0 is a stub (Node.PruneJournal): it stands
// for the Pruned records Seq..LastSeq(), whose data is gone. PrevHash is
// the first one's and Hash the last one's, so the chain links across it;
// Data is nil.
type Record struct {
	Seq      uint64
	Data     []byte
	PrevHash [32]byte
	Hash     [32]byte
	Pruned   uint64
}

// LastSeq returns the last sequence number r covers: Seq, or for a stub
// the last record it stands for.
func (r *Record) LastSeq() uint64 {
	if r.Pruned == 0 {
		return r.Seq
	}
	return r.Seq + r.Pruned - 1
}

// Consistency selects how fresh a read must be.
type Consistency uint8

// Read consistency modes.
const (
	// Local reads this node's applied state: fast, possibly stale.
	Local Consistency = iota
	// Linearizable reads state that includes every write acknowledged before
	// the read began, confirmed with the leader.
	Linearizable
)

// validate checks a transaction's shape before it is proposed.
func (t *Txn) validate() error {
	if len(t.Ops) == 0 && len(t.Compares) == 0 && len(t.Journal) == 0 {
		return fmt.Errorf("%w: empty transaction", ErrInvalid)
	}
	if len(t.Ops) > MaxTxnOps || len(t.Compares) > MaxTxnOps || len(t.Journal) > MaxTxnOps {
		return fmt.Errorf("%w: more than %d compares, ops or journal records", ErrInvalid, MaxTxnOps)
	}
	for i, r := range t.Journal {
		switch {
		case len(r.Key) > MaxJournalKeyLen:
			return fmt.Errorf("%w: journal record %d: key longer than %d bytes", ErrInvalid, i, MaxJournalKeyLen)
		case len(r.Data)+maxRevisionDigits > MaxRecordLen:
			return fmt.Errorf("%w: journal record %d: longer than %d bytes", ErrInvalid, i, MaxRecordLen-maxRevisionDigits)
		case r.RevisionAt < 0 || r.RevisionAt > len(r.Data):
			return fmt.Errorf("%w: journal record %d: revision offset %d outside its %d bytes", ErrInvalid, i, r.RevisionAt, len(r.Data))
		}
	}
	for i, c := range t.Compares {
		if err := checkKey(c.Key); err != nil {
			return fmt.Errorf("%w: compare %d: %v", ErrInvalid, i, err)
		}
		if c.Kind < CompareAbsent || c.Kind > CompareValue {
			return fmt.Errorf("%w: compare %d: unknown kind %d", ErrInvalid, i, c.Kind)
		}
		if len(c.Value) > MaxValueLen {
			return fmt.Errorf("%w: compare %d: value longer than %d bytes", ErrInvalid, i, MaxValueLen)
		}
	}
	for i, o := range t.Ops {
		if err := checkKey(o.Key); err != nil {
			return fmt.Errorf("%w: op %d: %v", ErrInvalid, i, err)
		}
		if o.Kind < OpPut || o.Kind > OpDeletePrefix {
			return fmt.Errorf("%w: op %d: unknown kind %d", ErrInvalid, i, o.Kind)
		}
		if len(o.Value) > MaxValueLen {
			return fmt.Errorf("%w: op %d: value longer than %d bytes", ErrInvalid, i, MaxValueLen)
		}
	}
	return nil
}

// maxRevisionDigits is the longest decimal revision (a uint64).
const maxRevisionDigits = 20

// withRevision returns r's data with rev inserted as TxnRecord.RevisionAt
// says.
func (r *TxnRecord) withRevision(rev uint64) []byte {
	if r.RevisionAt <= 0 {
		return r.Data
	}
	out := make([]byte, 0, len(r.Data)+maxRevisionDigits)
	out = append(out, r.Data[:r.RevisionAt]...)
	out = strconv.AppendUint(out, rev, 10)
	return append(out, r.Data[r.RevisionAt:]...)
}

func checkKey(k string) error {
	switch {
	case k == "":
		return errors.New("empty key")
	case len(k) > MaxKeyLen:
		return fmt.Errorf("key longer than %d bytes", MaxKeyLen)
	}
	return nil
}
