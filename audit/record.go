package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ferryvpn/ferry/cluster"
)

// Hash is a journal hash: SHA-256(prev || big-endian seq || data), as
// computed by the cluster state machine. It encodes as lowercase hex.
type Hash [32]byte

// String returns the hash in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return hex.AppendEncode(nil, h[:]), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("%w: hash: want 64 hex digits, got %d bytes", ErrMalformed, len(b))
	}
	if _, err := hex.Decode(h[:], b); err != nil {
		return fmt.Errorf("%w: hash: not hex", ErrMalformed)
	}
	return nil
}

// chainHash is cluster.ChainHash with this package's type.
func chainHash(prev Hash, seq uint64, data []byte) Hash {
	return Hash(cluster.ChainHash(prev, seq, data))
}

// Checkpoint is a signed statement that the journal's record Seq has hash
// Hash. Because every hash commits to every record before it, one valid
// checkpoint vouches for the whole journal up to Seq. The leader appends
// checkpoints to the journal itself as records of their own, so exports
// carry them and verification needs nothing but the export and the public
// key.
type Checkpoint struct {
	Seq   uint64    `json:"seq"`
	Hash  Hash      `json:"hash"`
	Time  time.Time `json:"time"`
	Node  string    `json:"node,omitempty"`
	KeyID string    `json:"key_id"`
	Sig   []byte    `json:"sig"`
}

// signedBytes is what a checkpoint's signature covers. The domain string
// keeps a checkpoint signature from being replayed as an export seal.
func (c *Checkpoint) signedBytes() []byte {
	return fmt.Appendf(nil, "ferry-audit-checkpoint/v1\nseq=%d\nhash=%s\ntime=%d\nnode=%q\nkey=%s\n",
		c.Seq, c.Hash, c.Time.UnixNano(), c.Node, c.KeyID)
}

// checkpointRecord is how a checkpoint is stored in the journal.
type checkpointRecord struct {
	Checkpoint *Checkpoint `json:"checkpoint"`
}

// Record prefixes: events are JSON objects whose first field is "id";
// checkpoints are objects whose only field is "checkpoint". Both are
// produced by encoding/json from fixed structs, so the encoding of a value
// is deterministic.
var (
	eventPrefix      = []byte(`{"id":`)
	checkpointPrefix = []byte(`{"checkpoint":`)
)

// encodeEvent returns the journal record for e.
func encodeEvent(e *Event) ([]byte, error) { return json.Marshal(e) }

// encodeCheckpoint returns the journal record for c.
func encodeCheckpoint(c *Checkpoint) ([]byte, error) {
	return json.Marshal(checkpointRecord{Checkpoint: c})
}

// Entry is one journal record as audit reads it back: the chain fields, the
// exact bytes that were hashed, and their decoded content. For records
// written by this package exactly one of Event and Checkpoint is set;
// a record it cannot decode has neither and is still chained, verified and
// exported byte for byte.
type Entry struct {
	Seq        uint64
	PrevHash   Hash
	Hash       Hash
	Data       []byte
	Event      *Event
	Checkpoint *Checkpoint
}

// entryFromRecord decodes a cluster journal record.
func entryFromRecord(r cluster.Record) Entry {
	e := Entry{Seq: r.Seq, PrevHash: r.PrevHash, Hash: r.Hash, Data: r.Data}
	e.decode()
	return e
}

// decode fills Event or Checkpoint from Data, leaving both nil when Data is
// not a record this package wrote.
func (e *Entry) decode() {
	switch {
	case bytes.HasPrefix(e.Data, checkpointPrefix):
		var cr checkpointRecord
		if json.Unmarshal(e.Data, &cr) == nil && cr.Checkpoint != nil {
			e.Checkpoint = cr.Checkpoint
		}
	case bytes.HasPrefix(e.Data, eventPrefix):
		var ev Event
		if json.Unmarshal(e.Data, &ev) == nil {
			e.Event = &ev
		}
	}
}

// Kind returns "event", "checkpoint" or "unknown".
func (e *Entry) Kind() string {
	switch {
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
