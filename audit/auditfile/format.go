package auditfile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"
)

// Header opens a pull export. From version 3 on it is covered by the
// signature of the export's first checkpoint, the line right after it
// (Line.Checkpoint), whose Export field is the header's digest
// (HeaderDigest): the filter cannot be changed to pass gaps off as
// filtering, nor any other field edited, even in an export without a
// trailer. Version 2 headers carried a signature of their own (KeyID,
// Sig) and still verify; version 1 headers were not signed.
type Header struct {
	Version int       `json:"version"`
	Filter  string    `json:"filter"`
	Time    time.Time `json:"time"`
	KeyID   string    `json:"key_id,omitempty"` // version 2 only
	Sig     []byte    `json:"sig,omitempty"`    // version 2 only
}

// HeaderVersion is the version of the header a signed export carries.
const HeaderVersion = 3

// headerDomain separates header digests from every other hash.
const headerDomain = "ferry-audit-export-header/v3\n"

// HeaderDigest returns the digest an export's first checkpoint signs for
// the header whose JSON object (the value of the line's "export" member)
// is raw: SHA-256 over a domain string and the object's RFC 8785
// canonical form, so a receiver's re-encoding of the line does not change
// it and any edit of any field does.
func HeaderDigest(raw []byte) (Hash, error) {
	c, err := Canonical(raw)
	if err != nil {
		return Hash{}, fmt.Errorf("%w: export header: %v", ErrMalformed, err)
	}
	h := sha256.New()
	h.Write([]byte(headerDomain))
	h.Write(c)
	var out Hash
	h.Sum(out[:0])
	return out, nil
}

// EncodeHeader returns the JSON object of h as AppendLine writes it in a
// header line, for HeaderDigest.
func EncodeHeader(h *Header) ([]byte, error) { return json.Marshal(h) }

// signedBytes is what a version 2 header's own signature covers.
func (h *Header) signedBytes() []byte {
	return fmt.Appendf(nil, "ferry-audit-export-header/v2\nversion=%d\nfilter=%q\ntime=%d\nkey=%s\n",
		h.Version, h.Filter, h.Time.UnixNano(), h.KeyID)
}

// Trailer closes a pull export. Its signature (Signer.SignTrailer) covers
// every field but Sig. From header version 3 on it also signs the header's
// digest (Header), so no edit of the header — not even a downgrade to an
// unsigned version 1 header with the first checkpoint removed — passes
// while the trailer stands.
type Trailer struct {
	First    uint64    `json:"first"`
	Last     uint64    `json:"last"`
	Count    uint64    `json:"count"`
	Digest   Hash      `json:"digest"`
	LastHash Hash      `json:"last_hash"`
	Filter   string    `json:"filter"`
	Time     time.Time `json:"time"`
	Header   Hash      `json:"header,omitzero"` // HeaderDigest
	KeyID    string    `json:"key_id"`
	Sig      []byte    `json:"sig"`
}

func (t *Trailer) signedBytes() []byte {
	if t.Header == (Hash{}) {
		return fmt.Appendf(nil, "ferry-audit-export/v1\nfirst=%d\nlast=%d\ncount=%d\ndigest=%s\nlast_hash=%s\nfilter=%q\ntime=%d\nkey=%s\n",
			t.First, t.Last, t.Count, t.Digest, t.LastHash, t.Filter, t.Time.UnixNano(), t.KeyID)
	}
	return fmt.Appendf(nil, "ferry-audit-export/v2\nfirst=%d\nlast=%d\ncount=%d\ndigest=%s\nlast_hash=%s\nfilter=%q\ntime=%d\nheader=%s\nkey=%s\n",
		t.First, t.Last, t.Count, t.Digest, t.LastHash, t.Filter, t.Time.UnixNano(), t.Header, t.KeyID)
}

// Digest accumulates a trailer's digest: SHA-256 over the big-endian seq
// and hash of every exported record, in order.
type Digest struct {
	h     hash.Hash
	buf   [40]byte
	count uint64
}

// NewDigest returns an empty digest.
func NewDigest() *Digest { return &Digest{h: sha256.New()} }

// Add adds one exported record.
func (d *Digest) Add(seq uint64, h Hash) {
	binary.BigEndian.PutUint64(d.buf[:8], seq)
	copy(d.buf[8:], h[:])
	d.h.Write(d.buf[:])
	d.count++
}

// Count returns the number of records added.
func (d *Digest) Count() uint64 { return d.count }

// Sum returns the digest of the records added so far.
func (d *Digest) Sum() (out Hash) {
	d.h.Sum(out[:0])
	return out
}

// Line is one line of the format: a header (Export set), the export's
// first checkpoint (Checkpoint set, right after a version 3 header), a
// trailer (End set), a record (Seq, PrevHash, Hash and either Record or
// Data) or a stub (Seq, PrevHash, Hash and Pruned).
type Line struct {
	Seq      uint64   `json:"seq"`
	PrevHash Hash     `json:"prev_hash"`
	Hash     Hash     `json:"hash"`
	Export   *Header  `json:"export,omitempty"`
	End      *Trailer `json:"end,omitempty"`
	// Checkpoint is the export's first checkpoint: it signs the header's
	// digest (its Export field) and the hash of the record before the
	// first exported one (Seq, Hash), which anchors the export's start.
	// It is no journal record.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// Record is the record verbatim, when it is JSON without a line
	// break; Data is the record otherwise (base64 in the line).
	Record json.RawMessage `json:"record,omitempty"`
	Data   []byte          `json:"data,omitempty"`
	// Pruned, when not 0, makes the line a stub: it stands for Pruned
	// records from Seq on whose data was pruned from the journal (flow
	// records past their window); PrevHash is the first one's and Hash
	// the last one's, so the chain links across it.
	Pruned uint64 `json:"pruned,omitempty"`
}

// Bytes returns the record bytes a record line carries: what was hashed.
func (l *Line) Bytes() []byte {
	if l.Record != nil {
		return l.Record
	}
	return l.Data
}

// AppendLine appends l's encoding, without the newline, to dst. A header
// or trailer line is written when Export or End is set; otherwise a record
// line, carrying Record verbatim when it is set (the caller vouches that it
// is JSON without a line break) and Data base64-encoded otherwise.
func AppendLine(dst []byte, l *Line) ([]byte, error) {
	switch {
	case l.Export != nil:
		return appendObject(dst, `{"export":`, l.Export)
	case l.End != nil:
		return appendObject(dst, `{"end":`, l.End)
	case l.Checkpoint != nil:
		return appendObject(dst, `{"checkpoint":`, l.Checkpoint)
	}
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, l.Seq, 10)
	dst = append(dst, `,"prev_hash":"`...)
	dst = hex.AppendEncode(dst, l.PrevHash[:])
	dst = append(dst, `","hash":"`...)
	dst = hex.AppendEncode(dst, l.Hash[:])
	if l.Pruned > 0 {
		dst = append(dst, `","pruned":`...)
		dst = strconv.AppendUint(dst, l.Pruned, 10)
		return append(dst, '}'), nil
	}
	if l.Record != nil {
		dst = append(dst, `","record":`...)
		dst = append(dst, l.Record...)
		return append(dst, '}'), nil
	}
	dst = append(dst, `","data":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, l.Data)
	return append(dst, `"}`...), nil
}

func appendObject(dst []byte, open string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	dst = append(dst, open...)
	dst = append(dst, b...)
	return append(dst, '}'), nil
}

// parseAnyLine decodes one line, taking the fast path for lines as
// AppendLine writes them, a loose scan for record lines a receiver
// re-encoded (other key order, whitespace, escapes), and encoding/json for
// the rest.
// fast reports that the line is as AppendLine writes it.
func parseAnyLine(b []byte) (l Line, fast bool, err error) {
	if l, ok := parseFast(b); ok {
		return l, true, nil
	}
	if l, ok := parseLoose(b); ok {
		return l, false, nil
	}
	l, err = ParseLine(b)
	return l, false, err
}

// parseLoose reads a record line in any key order and spacing. The record
// value is kept as it stands: the verifier canonicalizes it when needed.
func parseLoose(b []byte) (Line, bool) {
	var l Line
	var have [4]bool
	ok := objectMembers(b, func(k, v []byte) bool {
		switch string(k) {
		case "seq":
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil || n == 0 {
				return false
			}
			l.Seq, have[0] = n, true
		case "prev_hash", "hash":
			if len(v) != 66 || v[0] != '"' || v[65] != '"' {
				return false
			}
			dst := &l.Hash
			if string(k) == "prev_hash" {
				dst, have[1] = &l.PrevHash, true
			} else {
				have[2] = true
			}
			if !decodeLowerHex(dst, v[1:65]) {
				return false
			}
		case "record":
			if len(v) == 0 || v[0] != '{' {
				return false
			}
			l.Record, have[3] = v, true
		default:
			return false
		}
		return true
	})
	return l, ok && have[0] && have[1] && have[2] && have[3]
}

// ParseLine decodes one line (without its newline). Record lines as
// AppendLine writes them take a fast path that slices the record out
// without a JSON decode; anything else goes through encoding/json. The
// result may alias b. Errors wrap ErrMalformed.
func ParseLine(b []byte) (Line, error) {
	if l, ok := parseFast(b); ok {
		return l, nil
	}
	var l Line
	if err := json.Unmarshal(b, &l); err != nil {
		return Line{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch n := btoi(l.Export != nil) + btoi(l.End != nil) + btoi(l.Checkpoint != nil) + btoi(l.Record != nil || l.Data != nil) + btoi(l.Pruned > 0); {
	case n != 1:
		return Line{}, fmt.Errorf("%w: want exactly one of record, data, pruned, export, checkpoint or end", ErrMalformed)
	case l.Record != nil || l.Data != nil || l.Pruned > 0:
		if l.Seq == 0 {
			return Line{}, fmt.Errorf("%w: record without seq", ErrMalformed)
		}
	}
	return l, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

var (
	fastSeq    = []byte(`{"seq":`)
	fastPrev   = []byte(`,"prev_hash":"`)
	fastHash   = []byte(`","hash":"`)
	fastRecord = []byte(`","record":`)
)

func parseFast(b []byte) (Line, bool) {
	var l Line
	if !bytes.HasPrefix(b, fastSeq) {
		return l, false
	}
	b = b[len(fastSeq):]
	i := 0
	for i < len(b) && i < 20 && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || (i > 1 && b[0] == '0') {
		return l, false // not as AppendLine writes it (and no error to allocate)
	}
	seq, err := strconv.ParseUint(string(b[:i]), 10, 64)
	if err != nil || seq == 0 {
		return l, false
	}
	b = b[i:]
	if !bytes.HasPrefix(b, fastPrev) || len(b) < len(fastPrev)+64 {
		return l, false
	}
	b = b[len(fastPrev):]
	if !decodeLowerHex(&l.PrevHash, b[:64]) {
		return l, false
	}
	b = b[64:]
	if !bytes.HasPrefix(b, fastHash) || len(b) < len(fastHash)+64 {
		return l, false
	}
	b = b[len(fastHash):]
	if !decodeLowerHex(&l.Hash, b[:64]) {
		return l, false
	}
	b = b[64:]
	if !bytes.HasPrefix(b, fastRecord) || len(b) < len(fastRecord)+2 || b[len(b)-1] != '}' {
		return l, false
	}
	l.Seq = seq
	l.Record = b[len(fastRecord) : len(b)-1]
	return l, true
}

// lowerHex maps a byte to its value as a lowercase hex digit, or 0xff.
var lowerHex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

// decodeLowerHex decodes the 64 lowercase hex digits of src into h, and
// reports whether they were that (hashes are written in lowercase only).
func decodeLowerHex(h *Hash, src []byte) bool {
	if len(src) != 2*len(h) {
		return false
	}
	var bad byte
	for i := range h {
		hi, lo := lowerHex[src[2*i]], lowerHex[src[2*i+1]]
		bad |= hi | lo
		h[i] = hi<<4 | lo
	}
	return bad&0xf0 == 0
}

// maxLine bounds one line: a record of MaxRecordLen bytes, base64-encoded,
// plus the chain fields.
const maxLine = MaxRecordLen*4/3 + 4096

// readLine returns the next line including its newline (absent at EOF),
// failing on lines longer than maxLine.
func readLine(br *bufio.Reader) ([]byte, error) {
	b, err := br.ReadSlice('\n')
	if err == nil || (errors.Is(err, io.EOF) && len(b) > 0) {
		return b, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	long := append([]byte(nil), b...)
	for errors.Is(err, bufio.ErrBufferFull) {
		if len(long) > maxLine {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, maxLine)
		}
		b, err = br.ReadSlice('\n')
		long = append(long, b...)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return long, nil
}
