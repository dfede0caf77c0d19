package auditfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// VerifyOptions tune verification.
type VerifyOptions struct {
	// Keys verify checkpoint and trailer signatures. Required unless
	// SkipSignatures.
	Keys Keys
	// SkipSignatures checks the hash chain only. Without signatures an
	// attacker who rewrites a record and every hash after it goes
	// unnoticed; use it only to diagnose.
	SkipSignatures bool
	// RequireTrailer fails a file that does not end with a signed trailer,
	// as every pull export does. Files with a header always need one;
	// files written by sinks have neither.
	RequireTrailer bool
}

// Report summarises a successful (or partial) verification.
type Report struct {
	// Records counts distinct records checked; Events and Checkpoints
	// those of each kind.
	Records, Events, Checkpoints uint64
	// Duplicates counts records seen again with identical contents, as
	// at-least-once delivery to a sink may repeat them.
	Duplicates uint64
	// First and Last are the first and last sequence numbers seen.
	First, Last uint64
	// Signed is the highest sequence number vouched for by a valid
	// checkpoint or trailer: records after it are chained but unsigned.
	Signed uint64
	// Anchored reports whether the first record's predecessor is known:
	// the journal starts at 1, or a checkpoint signs the hash it follows.
	Anchored bool
	// Trailer reports whether a valid signed trailer closed the file.
	Trailer bool
	// Filtered reports a filtered export: its records are checked one by
	// one and as a set through the trailer, not link by link.
	Filtered bool
}

// Summary describes a successful verification for people: "12 records
// (1..12, 10 events, 2 checkpoints) verified; signed through 11".
func (r Report) Summary() string {
	s := fmt.Sprintf("%d records (%d..%d, %d events, %d checkpoints) verified; signed through %d",
		r.Records, r.First, r.Last, r.Events, r.Checkpoints, r.Signed)
	if r.Duplicates > 0 {
		s += fmt.Sprintf("; %d repeated deliveries", r.Duplicates)
	}
	return s
}

// ringSize bounds how far back a checkpoint may point and still be checked
// against the record it covers: a checkpoint covers the journal head when
// it was signed, a few batches before the checkpoint itself.
const ringSize = 1 << 17

type ringSlot struct {
	seq uint64
	h   Hash
}

// Verifier checks a stream of records in journal order: each record
// against its hash and its predecessor, and each checkpoint's signature
// and the hash it signs. VerifyFile feeds it from a file; package audit
// feeds it from a node's journal. A Verifier is not safe for concurrent
// use.
type Verifier struct {
	opts     VerifyOptions
	rep      Report
	started  bool
	filtered bool
	first    Hash // prev hash of the first record
	prev     Hash // hash of record rep.Last
	ring     []ringSlot
	gap      *gap
	digest   *Digest
}

type gap struct {
	expect, got uint64
	line        int
}

// NewVerifier returns a Verifier. It fails with ErrNoKey when opts holds
// no key and does not skip signatures.
func NewVerifier(opts VerifyOptions) (*Verifier, error) {
	if !opts.SkipSignatures && len(opts.Keys) == 0 {
		return nil, fmt.Errorf("%w: verification needs the audit public key", ErrNoKey)
	}
	return &Verifier{opts: opts, ring: make([]ringSlot, ringSize), digest: NewDigest()}, nil
}

// Report returns what was verified so far.
func (v *Verifier) Report() Report { return v.rep }

// LastHash returns the hash of the last record added (Report().Last).
func (v *Verifier) LastHash() Hash { return v.prev }

// Add checks the next record. At the first problem it returns a
// *TamperError naming the record; the Verifier must not be used after.
func (v *Verifier) Add(seq uint64, prev, h Hash, data []byte) error {
	return v.add(seq, prev, h, data, 0)
}

// Finish checks the end of the stream: a gap before the last record added
// is reported as missing records.
func (v *Verifier) Finish() error {
	if v.gap != nil {
		return missing(v.gap)
	}
	return nil
}

func (v *Verifier) lookup(seq uint64) (Hash, bool) {
	s := v.ring[seq%ringSize]
	return s.h, s.seq == seq && seq != 0
}

// add checks one record read from line ln (0: not from a file).
func (v *Verifier) add(seq uint64, prev, h Hash, data []byte, ln int) error {
	if g := v.gap; g != nil {
		v.gap = nil
		if seq >= g.expect && seq < g.got {
			return tamper(Reordered, seq, ln, "records out of order at %d: record %d comes before it", seq, g.got)
		}
		return missing(g)
	}
	if ChainHash(prev, seq, data) != h {
		// A record moved from elsewhere still matches its hash under its
		// own sequence number.
		for d := uint64(1); d <= 16; d++ {
			for _, other := range []uint64{seq + d, seq - d} {
				if other != 0 && other < seq+17 && ChainHash(prev, other, data) == h {
					return tamper(Reordered, seq, ln, "records out of order at %d: record %d is in its place", seq, other)
				}
			}
		}
		return tamper(Edited, seq, ln, "record %d edited: its contents do not match its hash", seq)
	}
	switch {
	case !v.started:
		v.started = true
		v.rep.First, v.first = seq, prev
		if seq == 1 && prev != (Hash{}) {
			return tamper(Edited, seq, ln, "record 1 edited: it does not start the chain")
		}
		v.rep.Anchored = seq == 1
	case seq <= v.rep.Last:
		if old, ok := v.lookup(seq); ok && old == h {
			v.rep.Duplicates++
			return nil
		} else if ok {
			return tamper(Edited, seq, ln, "record %d edited: it appears twice with different contents", seq)
		}
		return tamper(Reordered, seq, ln, "records out of order at %d: it comes after record %d", seq, v.rep.Last)
	case v.filtered:
	case seq > v.rep.Last+1:
		v.gap = &gap{expect: v.rep.Last + 1, got: seq, line: ln}
	case prev != v.prev:
		return tamper(Edited, seq-1, ln, "record %d edited: record %d no longer follows it", seq-1, seq)
	}
	v.rep.Last, v.prev = seq, h
	v.ring[seq%ringSize] = ringSlot{seq: seq, h: h}
	v.rep.Records++
	v.digest.Add(seq, h)
	switch {
	case IsCheckpoint(data):
		v.rep.Checkpoints++
		c, err := DecodeCheckpoint(data)
		if err != nil {
			return tamper(Malformed, seq, ln, "record %d: undecodable checkpoint", seq)
		}
		return v.checkpoint(seq, c, ln)
	case IsEvent(data):
		v.rep.Events++
	}
	return nil
}

func missing(g *gap) error {
	if g.got-g.expect == 1 {
		return tamper(Missing, g.expect, g.line, "record %d missing", g.expect)
	}
	return tamper(Missing, g.expect, g.line, "records %d to %d missing", g.expect, g.got-1)
}

// checkpoint checks a checkpoint stored as record seq.
func (v *Verifier) checkpoint(seq uint64, c *Checkpoint, ln int) error {
	if !v.opts.SkipSignatures {
		ok, err := v.opts.Keys.verify(c.KeyID, c.signedBytes(), c.Sig)
		if err != nil {
			return tamper(Forged, seq, ln, "checkpoint at %d: signed by unknown key %q", seq, c.KeyID)
		}
		if !ok {
			return tamper(Forged, seq, ln, "checkpoint at %d: invalid signature", seq)
		}
	}
	switch h, ok := v.lookup(c.Seq); {
	case c.Seq >= seq:
		return tamper(Forged, seq, ln, "checkpoint at %d covers later record %d", seq, c.Seq)
	case c.Seq+1 == v.rep.First && c.Hash == v.first:
		v.rep.Anchored = true
	case ok && h != c.Hash:
		return tamper(Edited, c.Seq, ln, "record %d edited: checkpoint at %d signs a different hash", c.Seq, seq)
	case ok && !v.opts.SkipSignatures:
		v.rep.Signed = max(v.rep.Signed, c.Seq)
	}
	return nil
}

// trailer checks a pull export's trailer against what was read.
func (v *Verifier) trailer(t *Trailer, hdr *Header, ln int) error {
	if !v.opts.SkipSignatures {
		ok, err := v.opts.Keys.verify(t.KeyID, t.signedBytes(), t.Sig)
		if err != nil {
			return tamper(Forged, 0, ln, "trailer signed by unknown key %q", t.KeyID)
		}
		if !ok {
			return tamper(Forged, 0, ln, "trailer: invalid signature")
		}
	}
	if hdr != nil && hdr.Filter != t.Filter {
		return tamper(Forged, 0, ln, "header filter %q differs from the signed trailer's %q", hdr.Filter, t.Filter)
	}
	if filterContiguous(t.Filter) == v.filtered {
		return tamper(Forged, 0, ln, "header does not match the export's filter %q", t.Filter)
	}
	switch {
	case v.rep.Last < t.Last && v.rep.Records > 0:
		return tamper(Truncated, v.rep.Last, ln, "export truncated after record %d: the trailer covers records up to %d", v.rep.Last, t.Last)
	case v.rep.Records == 0 && t.Count > 0:
		return tamper(Truncated, 0, ln, "export truncated: no records, the trailer covers %d to %d", t.First, t.Last)
	case v.rep.Last > t.Last:
		return tamper(Forged, v.rep.Last, ln, "record %d follows the trailer's last record %d", v.rep.Last, t.Last)
	case v.rep.First != t.First && t.Count > 0:
		return tamper(Missing, t.First, ln, "export starts at record %d: the trailer says it starts at %d", v.rep.First, t.First)
	case v.digest.Count() != t.Count:
		return tamper(Missing, 0, ln, "%d records missing: the trailer counts %d, the export holds %d", int64(t.Count)-int64(v.digest.Count()), t.Count, v.digest.Count())
	case v.prev != t.LastHash:
		return tamper(Edited, v.rep.Last, ln, "record %d edited: the trailer signs a different hash", v.rep.Last)
	case v.digest.Sum() != t.Digest:
		return tamper(Edited, 0, ln, "records edited or reordered: the trailer's digest does not match the export")
	}
	if !v.opts.SkipSignatures {
		v.rep.Signed = t.Last
	}
	v.rep.Trailer = true
	return nil
}

// filterContiguous reports whether a filter's canonical string (the
// header's and trailer's Filter, audit.Filter.String) selects whole
// ranges.
func filterContiguous(s string) bool {
	for _, p := range strings.Fields(s) {
		if p != "all" && !strings.HasPrefix(p, "seq") {
			return false
		}
	}
	return true
}

// VerifyFile checks an export or sink file in the native format: every
// record against its hash and its predecessor, every checkpoint's signature
// and the hash it signs, and the trailer if there is one. It returns the
// report and, at the first problem, a *TamperError (wrapping ErrTampered)
// that names the record: "record 1234 edited", "record 1235 missing",
// "records out of order at 77", "export truncated after record 900: the
// trailer covers records up to 950".
func VerifyFile(r io.Reader, opts VerifyOptions) (Report, error) {
	v, err := NewVerifier(opts)
	if err != nil {
		return Report{}, err
	}
	br := bufio.NewReaderSize(r, 256<<10)
	var hdr *Header
	var done bool
	for ln := 1; ; ln++ {
		b, err := readLine(br)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return v.rep, fmt.Errorf("reading line %d: %w", ln, err)
		}
		complete := len(b) > 0 && b[len(b)-1] == '\n'
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			continue
		}
		if done {
			return v.rep, tamper(Malformed, 0, ln, "data after the export's trailer")
		}
		l, perr := ParseLine(b)
		if perr != nil {
			if !complete {
				return v.rep, tamper(Truncated, v.rep.Last, ln, "export truncated after record %d: the last line is cut off", v.rep.Last)
			}
			return v.rep, tamper(Malformed, 0, ln, "not an audit export line: %v", perr)
		}
		switch {
		case l.Export != nil:
			if ln != 1 || v.started {
				return v.rep, tamper(Malformed, 0, ln, "export header in the middle of the file")
			}
			hdr = l.Export
			v.filtered = !filterContiguous(hdr.Filter)
			v.rep.Filtered = v.filtered
		case l.End != nil:
			if err := v.Finish(); err != nil {
				return v.rep, err
			}
			if err := v.trailer(l.End, hdr, ln); err != nil {
				return v.rep, err
			}
			done = true
		default:
			if err := v.add(l.Seq, l.PrevHash, l.Hash, l.Bytes(), ln); err != nil {
				return v.rep, err
			}
		}
	}
	if err := v.Finish(); err != nil {
		return v.rep, err
	}
	if !done && (opts.RequireTrailer || hdr != nil) {
		return v.rep, tamper(Truncated, v.rep.Last, 0, "export truncated after record %d: its signed trailer is missing", v.rep.Last)
	}
	return v.rep, nil
}
