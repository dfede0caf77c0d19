package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"
)

// The native export format is JSON lines, one object per line:
//
//	{"export":{"version":1,"filter":"seq>=1","time":"..."}}       header (pull exports)
//	{"seq":1,"prev_hash":"<hex>","hash":"<hex>","record":{...}}   one per record
//	{"seq":7,"prev_hash":"<hex>","hash":"<hex>","data":"<b64>"}   a record that is not JSON
//	{"end":{"first":1,"last":900,"count":900,...,"sig":"<b64>"}}  trailer (pull exports)
//
// "record" holds the journal record verbatim: the bytes between `"record":`
// and the line's closing brace are exactly the bytes that were hashed, so a
// verifier recomputes the chain without re-encoding anything. Records that
// are not JSON, or hold a line break, travel base64-encoded in "data"
// instead. Checkpoints are records like any other ({"checkpoint":{...}}).
//
// A pull export starts with a header and ends with a trailer signed by the
// cluster audit key: the trailer names the range, the count and a digest of
// every exported (seq, hash) pair, so cutting the end off an export, or
// dropping records from a filtered export, is detected. Streams to sinks
// carry no header or trailer; there, checkpoints vouch for the records.

// JSONLines is the native format: the export line above, which carries the
// chain fields and the exact record, so files and streams in this format
// can be verified offline.
type JSONLines struct{}

// Name returns "json".
func (JSONLines) Name() string { return "json" }

// Append appends e's export line.
func (JSONLines) Append(dst []byte, e *Entry) ([]byte, error) { return appendLine(dst, e), nil }

func appendLine(dst []byte, e *Entry) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, e.Seq, 10)
	dst = append(dst, `,"prev_hash":"`...)
	dst = hex.AppendEncode(dst, e.PrevHash[:])
	dst = append(dst, `","hash":"`...)
	dst = hex.AppendEncode(dst, e.Hash[:])
	if e.rawJSON() {
		dst = append(dst, `","record":`...)
		dst = append(dst, e.Data...)
		return append(dst, '}')
	}
	dst = append(dst, `","data":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, e.Data)
	return append(dst, `"}`...)
}

// Header opens a pull export.
type Header struct {
	Version int       `json:"version"`
	Filter  string    `json:"filter"`
	Time    time.Time `json:"time"`
}

// Trailer closes a pull export. Its signature covers every field but Sig.
type Trailer struct {
	First    uint64    `json:"first"`
	Last     uint64    `json:"last"`
	Count    uint64    `json:"count"`
	Digest   Hash      `json:"digest"`
	LastHash Hash      `json:"last_hash"`
	Filter   string    `json:"filter"`
	Time     time.Time `json:"time"`
	KeyID    string    `json:"key_id"`
	Sig      []byte    `json:"sig"`
}

func (t *Trailer) signedBytes() []byte {
	return fmt.Appendf(nil, "ferry-audit-export/v1\nfirst=%d\nlast=%d\ncount=%d\ndigest=%s\nlast_hash=%s\nfilter=%q\ntime=%d\nkey=%s\n",
		t.First, t.Last, t.Count, t.Digest, t.LastHash, t.Filter, t.Time.UnixNano(), t.KeyID)
}

// digester accumulates a trailer's digest: SHA-256 over the big-endian seq
// and hash of every exported record, in order.
type digester struct {
	h     hash.Hash
	buf   [40]byte
	count uint64
}

func newDigester() *digester { return &digester{h: sha256.New()} }

func (d *digester) add(seq uint64, h Hash) {
	binary.BigEndian.PutUint64(d.buf[:8], seq)
	copy(d.buf[8:], h[:])
	d.h.Write(d.buf[:])
	d.count++
}

func (d *digester) sum() (out Hash) {
	d.h.Sum(out[:0])
	return out
}

// ExportOptions selects what Export writes.
type ExportOptions struct {
	// Filter selects records; the zero Filter selects all.
	Filter Filter
	// Format is the output format; default JSONLines. Only JSONLines
	// exports get a header and a signed trailer.
	Format Format
	// Signer signs the trailer. Without one a JSONLines export has no
	// trailer and verification cannot detect truncation.
	Signer *Signer
	// Now stamps the header and trailer; default time.Now.
	Now func() time.Time
}

// ExportStats reports what Export wrote.
type ExportStats struct {
	Records     uint64
	First, Last uint64
}

// Export writes the records opts.Filter selects from j to w, one per line,
// up to the journal head when it starts. It is what `ferryctl audit export`
// serves.
func Export(ctx context.Context, w io.Writer, j Journal, opts ExportOptions) (ExportStats, error) {
	f := opts.Format
	if f == nil {
		f = JSONLines{}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	_, native := f.(JSONLines)
	bw := bufio.NewWriterSize(w, 64<<10)
	filter := opts.Filter.String()
	if native {
		h, err := json.Marshal(map[string]*Header{"export": {Version: 1, Filter: filter, Time: now().UTC()}})
		if err != nil {
			return ExportStats{}, err
		}
		bw.Write(append(h, '\n'))
	}
	var st ExportStats
	d := newDigester()
	var lastHash Hash
	var buf []byte
	err := Scan(ctx, j, opts.Filter, func(e *Entry) error {
		var err error
		if buf, err = f.Append(buf[:0], e); err != nil {
			return fmt.Errorf("formatting record %d: %w", e.Seq, err)
		}
		if _, err := bw.Write(append(buf, '\n')); err != nil {
			return err
		}
		if st.Records == 0 {
			st.First = e.Seq
		}
		st.Records++
		st.Last = e.Seq
		d.add(e.Seq, e.Hash)
		lastHash = e.Hash
		return nil
	})
	if err != nil {
		return st, err
	}
	if native && opts.Signer != nil {
		t := &Trailer{First: st.First, Last: st.Last, Count: d.count, Digest: d.sum(), LastHash: lastHash,
			Filter: filter, Time: now().UTC(), KeyID: opts.Signer.KeyID()}
		t.Sig = opts.Signer.sign(t.signedBytes())
		b, err := json.Marshal(map[string]*Trailer{"end": t})
		if err != nil {
			return st, err
		}
		bw.Write(append(b, '\n'))
	}
	return st, bw.Flush()
}

// line is one parsed export line: a record, a header or a trailer.
type line struct {
	Seq      uint64          `json:"seq"`
	PrevHash Hash            `json:"prev_hash"`
	Hash     Hash            `json:"hash"`
	Record   json.RawMessage `json:"record,omitempty"`
	Data     []byte          `json:"data,omitempty"`
	Export   *Header         `json:"export,omitempty"`
	End      *Trailer        `json:"end,omitempty"`
}

// data returns the record bytes the line carries.
func (l *line) data() []byte {
	if l.Record != nil {
		return l.Record
	}
	return l.Data
}

// parseLine decodes one export line. Lines written by appendLine take a
// fast path that slices the record out without a JSON decode; anything
// else goes through encoding/json. The result may alias b.
func parseLine(b []byte) (line, error) {
	if l, ok := parseFast(b); ok {
		return l, nil
	}
	var l line
	if err := json.Unmarshal(b, &l); err != nil {
		return line{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch n := btoi(l.Export != nil) + btoi(l.End != nil) + btoi(l.Record != nil || l.Data != nil); {
	case n != 1:
		return line{}, fmt.Errorf("%w: want exactly one of record, data, export or end", ErrMalformed)
	case l.Record != nil || l.Data != nil:
		if l.Seq == 0 {
			return line{}, fmt.Errorf("%w: record without seq", ErrMalformed)
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

func parseFast(b []byte) (line, bool) {
	var l line
	if !bytes.HasPrefix(b, fastSeq) {
		return l, false
	}
	b = b[len(fastSeq):]
	i := 0
	for i < len(b) && i < 20 && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	seq, err := strconv.ParseUint(string(b[:i]), 10, 64)
	if err != nil || seq == 0 || (i > 1 && b[0] == '0') {
		return l, false
	}
	b = b[i:]
	if !bytes.HasPrefix(b, fastPrev) || len(b) < len(fastPrev)+64 {
		return l, false
	}
	b = b[len(fastPrev):]
	if _, err := hex.Decode(l.PrevHash[:], b[:64]); err != nil || !isLowerHex(b[:64]) {
		return l, false
	}
	b = b[64:]
	if !bytes.HasPrefix(b, fastHash) || len(b) < len(fastHash)+64 {
		return l, false
	}
	b = b[len(fastHash):]
	if _, err := hex.Decode(l.Hash[:], b[:64]); err != nil || !isLowerHex(b[:64]) {
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

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
