package audit

import (
	"bytes"
	"encoding/json"

	"github.com/ferryvpn/ferry/audit/auditfile"
	"github.com/ferryvpn/ferry/cluster"
)

// Hash is a journal hash (auditfile.Hash): SHA-256(prev || big-endian seq
// || data), as computed by the cluster state machine. It encodes as
// lowercase hex.
type Hash = auditfile.Hash

// Checkpoint is a signed statement that the journal's record Seq has hash
// Hash (auditfile.Checkpoint). Because every hash commits to every record
// before it, one valid checkpoint vouches for the whole journal up to Seq.
// The leader appends checkpoints to the journal itself as records of their
// own, so exports carry them and verification needs nothing but the export
// and the public key.
type Checkpoint = auditfile.Checkpoint

// encodeEvent returns the journal record for e, in RFC 8785 canonical
// form (auditfile.Canonical): what is hashed is what any receiver's
// re-encoding canonicalizes back to.
func encodeEvent(e *Event) ([]byte, error) { return encodeCanonical(e) }

// Entry is one journal record as audit reads it back: the chain fields, the
// exact bytes that were hashed, and their decoded content. For records
// written by this package exactly one of Event and Checkpoint is set;
// a record it cannot decode has neither and is still chained, verified and
// exported byte for byte.
//
// An Entry whose Pruned is not 0 is a stub (cluster.Record): it stands for
// the Pruned records Seq..LastSeq() whose data was pruned from the journal
// (flow records past their window); it has no Data, Event or Checkpoint,
// PrevHash is the first record's and Hash the last one's.
type Entry struct {
	Seq        uint64
	PrevHash   Hash
	Hash       Hash
	Data       []byte
	Event      *Event
	Checkpoint *Checkpoint
	Pruned     uint64
}

// LastSeq returns the last sequence number e covers: Seq, or for a stub
// the last record it stands for.
func (e *Entry) LastSeq() uint64 {
	if e.Pruned == 0 {
		return e.Seq
	}
	return e.Seq + e.Pruned - 1
}

// entryFromRecord decodes a cluster journal record.
func entryFromRecord(r cluster.Record) Entry {
	e := Entry{Seq: r.Seq, PrevHash: r.PrevHash, Hash: r.Hash, Data: r.Data, Pruned: r.Pruned}
	if e.Pruned == 0 {
		e.decode()
	}
	return e
}

// decode fills Event or Checkpoint from Data, leaving both nil when Data is
// not a record this package wrote.
func (e *Entry) decode() {
	switch {
	case auditfile.IsCheckpoint(e.Data):
		if c, err := auditfile.DecodeCheckpoint(e.Data); err == nil {
			e.Checkpoint = c
		}
	case auditfile.IsEvent(e.Data):
		var ev Event
		if json.Unmarshal(e.Data, &ev) == nil {
			e.Event = &ev
		}
	}
}

// Kind returns "event", "checkpoint", "pruned" or "unknown".
func (e *Entry) Kind() string {
	switch {
	case e.Pruned > 0:
		return "pruned"
	case e.Event != nil:
		return "event"
	case e.Checkpoint != nil:
		return "checkpoint"
	}
	return "unknown"
}

// rawJSON reports whether the record may be embedded in an export line as
// raw JSON: it decoded (so it is valid JSON) and holds no line break.
func (e *Entry) rawJSON() bool {
	return (e.Event != nil || e.Checkpoint != nil) && bytes.IndexByte(e.Data, '\n') < 0
}
