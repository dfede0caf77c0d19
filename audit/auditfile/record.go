package auditfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// MaxRecordLen is the largest journal record, in bytes. It equals
// cluster.MaxRecordLen (a test in package audit checks that they agree);
// it is repeated here so that verifying a file needs no cluster code.
const MaxRecordLen = 1 << 20

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

// ChainHash returns the hash of record seq holding data after a record
// whose hash is prev: SHA-256(prev || big-endian seq || data). It is the
// same function as cluster.ChainHash (a test in package audit checks that
// they agree).
func ChainHash(prev Hash, seq uint64, data []byte) Hash {
	h := sha256.New()
	h.Write(prev[:])
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	h.Write(s[:])
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// Checkpoint is a signed statement that the journal's record Seq has hash
// Hash. Because every hash commits to every record before it, one valid
// checkpoint vouches for the whole journal up to Seq. The leader appends
// checkpoints to the journal itself as records of their own, so exports
// carry them and verification needs nothing but the export and the public
// key.
//
// An export's first checkpoint (Line.Checkpoint) also signs the digest of
// the export's header (Export), so the header is covered by it.
type Checkpoint struct {
	Seq    uint64    `json:"seq"`
	Hash   Hash      `json:"hash"`
	Time   time.Time `json:"time"`
	Node   string    `json:"node,omitempty"`
	Export Hash      `json:"export,omitzero"` // HeaderDigest; an export's first checkpoint only
	KeyID  string    `json:"key_id"`
	Sig    []byte    `json:"sig"`
}

// signedBytes is what a checkpoint's signature covers. The domain string
// keeps a checkpoint signature from being replayed as an export seal;
// journal checkpoints (no Export) keep the first version's form.
func (c *Checkpoint) signedBytes() []byte {
	if c.Export == (Hash{}) {
		return fmt.Appendf(nil, "ferry-audit-checkpoint/v1\nseq=%d\nhash=%s\ntime=%d\nnode=%q\nkey=%s\n",
			c.Seq, c.Hash, c.Time.UnixNano(), c.Node, c.KeyID)
	}
	return fmt.Appendf(nil, "ferry-audit-checkpoint/v2\nseq=%d\nhash=%s\ntime=%d\nnode=%q\nexport=%s\nkey=%s\n",
		c.Seq, c.Hash, c.Time.UnixNano(), c.Node, c.Export, c.KeyID)
}

// checkpointRecord is how a checkpoint is stored in the journal.
type checkpointRecord struct {
	Checkpoint *Checkpoint `json:"checkpoint"`
}

// Record prefixes: checkpoints are objects whose only field is
// "checkpoint"; events (audit.Event) are other JSON objects. Records are
// stored in RFC 8785 canonical form (Canonical) since format 2; older
// events were written by encoding/json with "id" as their first field.
var (
	checkpointPrefix = []byte(`{"checkpoint":`)
)

// IsEvent reports whether the journal record data is stored as an audit
// event: a JSON object that is not a checkpoint.
func IsEvent(data []byte) bool {
	return len(data) > 1 && data[0] == '{' && data[1] == '"' && !IsCheckpoint(data)
}

// IsCheckpoint reports whether the journal record data is stored as a
// checkpoint. Such a record that DecodeCheckpoint rejects is malformed.
func IsCheckpoint(data []byte) bool { return bytes.HasPrefix(data, checkpointPrefix) }

// EncodeCheckpoint returns the journal record for c, in canonical form.
func EncodeCheckpoint(c *Checkpoint) ([]byte, error) {
	b, err := json.Marshal(checkpointRecord{Checkpoint: c})
	if err != nil {
		return nil, err
	}
	return Canonical(b)
}

// DecodeCheckpoint decodes a checkpoint record, returning an error wrapping
// ErrMalformed when data is not one.
func DecodeCheckpoint(data []byte) (*Checkpoint, error) {
	if !IsCheckpoint(data) {
		return nil, fmt.Errorf("%w: not a checkpoint record", ErrMalformed)
	}
	var cr checkpointRecord
	if err := json.Unmarshal(data, &cr); err != nil {
		return nil, fmt.Errorf("%w: checkpoint: %v", ErrMalformed, err)
	}
	if cr.Checkpoint == nil {
		return nil, fmt.Errorf("%w: checkpoint: null", ErrMalformed)
	}
	return cr.Checkpoint, nil
}
