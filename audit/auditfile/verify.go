package auditfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
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
	// AcceptUnsignedTail accepts records after the last signature (the
	// newest records of a sink file, until the next checkpoint).
	// Otherwise they fail verification with ErrUnsigned.
	AcceptUnsignedTail bool
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
	// Reencoded counts records whose bytes differ from the hashed ones
	// but whose canonical form (RFC 8785) matches: copies re-encoded by a
	// receiver.
	Reencoded uint64
	// TestRecords counts the marked records of sink tests (sequence
	// number 0), which are no part of the journal.
	TestRecords uint64
	// HeaderSigned reports a pull export whose header is covered by a
	// valid signature: from header version 3 on, the export's first
	// checkpoint's; in version 2, the header's own.
	HeaderSigned bool
	// Unsigned counts the records after the last one a signature covers
	// (checkpoint records excluded); UnsignedFirst is the first of them.
	Unsigned, UnsignedFirst uint64
	// Stubs counts the stubs read, entries that stand for runs of records
	// pruned from the journal (their data is gone, their chain kept);
	// Pruned counts the records they stand for. Records counts each stub
	// once. PrunedUnchecked counts pruned records that no flow summary in
	// an export cut short before its summaries (a "seq<=" filter) could
	// account for.
	Stubs, Pruned, PrunedUnchecked uint64
	// DuplicateIDs counts event records whose event ID an earlier record
	// of the file already carries (a record stored twice in the journal).
	DuplicateIDs uint64
	// Problems lists every problem found, with ranges and counts, in the
	// order found (at most MaxProblems; ProblemsOmitted counts the rest).
	Problems        []Problem
	ProblemsOmitted uint64
}

// Summary describes a successful verification for people: "12 records
// (1..12, 10 events, 2 checkpoints) verified; signed through 11".
func (r Report) Summary() string {
	s := fmt.Sprintf("%d records (%d..%d, %d events, %d checkpoints) verified; signed through %d",
		r.Records, r.First, r.Last, r.Events, r.Checkpoints, r.Signed)
	if r.Stubs > 0 {
		s += fmt.Sprintf("; %d pruned records in %d stubs, chained", r.Pruned, r.Stubs)
	}
	if r.PrunedUnchecked > 0 {
		s += fmt.Sprintf(" (%d of them not accounted for: the export ends before their flow summaries)", r.PrunedUnchecked)
	}
	if r.Duplicates > 0 {
		s += fmt.Sprintf("; %d repeated deliveries", r.Duplicates)
	}
	if r.Reencoded > 0 {
		s += fmt.Sprintf("; %d re-encoded records matched in canonical form", r.Reencoded)
	}
	if r.Unsigned > 0 {
		s += fmt.Sprintf("; %d records from %d on not covered by a signature", r.Unsigned, r.UnsignedFirst)
	}
	return s
}

// trailer checks a pull export's trailer against what was read.
func (v *Verifier) trailer(t *Trailer, hdr *Header, digest Hash, ln int) {
	if !v.opts.SkipSignatures {
		ok, err := v.opts.Keys.verify(t.KeyID, t.signedBytes(), t.Sig)
		if err != nil {
			v.problem(Forged, 0, ln, "trailer signed by unknown key %q", t.KeyID)
			return
		}
		if !ok {
			v.problem(Forged, 0, ln, "trailer: invalid signature")
			return
		}
	}
	headerEdited := t.Header != (Hash{}) && (hdr == nil || t.Header != digest)
	if headerEdited {
		// Reported once here; the filter checks below would only say it
		// again. The records are still checked against the trailer.
		v.problem(Forged, 0, ln, "export header edited: the trailer signs a different header")
	}
	if !headerEdited && hdr != nil && hdr.Filter != t.Filter {
		v.problem(Forged, 0, ln, "header filter %q differs from the signed trailer's %q", hdr.Filter, t.Filter)
		return
	}
	if !headerEdited && filterContiguous(t.Filter) == v.filtered {
		v.problem(Forged, 0, ln, "header does not match the export's filter %q", t.Filter)
		return
	}
	v.flushMissing()
	bad := len(v.rep.Problems)
	reported := false
	for _, p := range v.rep.Problems {
		reported = reported || p.Kind == Missing
	}
	switch {
	case v.rep.Last < t.Last && v.rep.Records > 0:
		v.problem(Truncated, v.rep.Last, ln, "export truncated after record %d: the trailer covers records up to %d", v.rep.Last, t.Last)
	case v.rep.Records == 0 && t.Count > 0:
		v.problem(Truncated, 0, ln, "export truncated: no records, the trailer covers %d to %d", t.First, t.Last)
	case v.rep.Last > t.Last:
		v.problem(Forged, v.rep.Last, ln, "record %d follows the trailer's last record %d", v.rep.Last, t.Last)
	case v.rep.First != t.First && t.Count > 0 && !reported:
		v.problem(Missing, t.First, ln, "export starts at record %d: the trailer says it starts at %d", v.rep.First, t.First)
	case v.digest.Count() != t.Count && !reported:
		v.problem(Missing, 0, ln, "%d records missing: the trailer counts %d, the export holds %d", int64(t.Count)-int64(v.digest.Count()), t.Count, v.digest.Count())
	case v.digest.Count() != t.Count:
	case v.prev != t.LastHash:
		v.problem(Edited, v.rep.Last, ln, "record %d edited: the trailer signs a different hash", v.rep.Last)
	case v.digest.Sum() != t.Digest:
		v.problem(Edited, 0, ln, "records edited or reordered: the trailer's digest does not match the export")
	}
	if len(v.rep.Problems) > bad {
		return
	}
	if !v.opts.SkipSignatures {
		v.sign(t.Last)
	}
	v.rep.Trailer = true
}

// header checks a version 2 header's own signature. Version 3 headers are
// covered by the export's first checkpoint (exportCheckpoint); version 1
// headers were not signed.
func (v *Verifier) header(h *Header, ln int) {
	if h.Version != 2 || v.opts.SkipSignatures {
		return
	}
	ok, err := v.opts.Keys.verify(h.KeyID, h.signedBytes(), h.Sig)
	switch {
	case err != nil:
		v.problem(Forged, 0, ln, "export header signed by unknown key %q", h.KeyID)
	case !ok:
		v.problem(Forged, 0, ln, "export header: invalid signature")
	default:
		v.rep.HeaderSigned = true
	}
}

// exportCheckpoint checks an export's first checkpoint, read right after
// the header whose digest is digest: its signature, that it signs that
// header, and it notes the record it anchors the export's start to.
func (v *Verifier) exportCheckpoint(c *Checkpoint, digest Hash, ln int) {
	if !v.opts.SkipSignatures {
		ok, err := v.opts.Keys.verify(c.KeyID, c.signedBytes(), c.Sig)
		if err != nil {
			v.problem(Forged, 0, ln, "the export's first checkpoint is signed by unknown key %q", c.KeyID)
			return
		}
		if !ok {
			v.problem(Forged, 0, ln, "the export's first checkpoint: invalid signature")
			return
		}
	}
	if c.Export != digest {
		v.problem(Forged, 0, ln, "export header edited: the export's first checkpoint signs a different header")
		return
	}
	if !v.opts.SkipSignatures {
		v.rep.HeaderSigned = true
	}
	v.anchor = &ringSlot{seq: c.Seq, h: c.Hash}
}

// headerDigestOf returns the digest of the header on line b: of its
// "export" object as written, or when that cannot be found, of h encoded.
func headerDigestOf(b []byte, h *Header) Hash {
	var raw []byte
	objectMembers(b, func(k, val []byte) bool {
		if string(k) == "export" {
			raw = val
			return false
		}
		return true
	})
	if raw == nil {
		raw, _ = EncodeHeader(h)
	}
	d, _ := HeaderDigest(raw) // a header that parsed canonicalizes
	return d
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
// record against its hash (verbatim, or in RFC 8785 canonical form when a
// receiver re-encoded the line) and its neighbours, every checkpoint's
// signature and the hash it signs, the header's signature, event IDs for
// repeats, and the trailer if there is one. It does not stop at the first
// problem: the report lists every one, with ranges and counts. The error
// is nil, a *TamperError (wrapping ErrTampered) naming the first problem
// and counting the rest — "record 1234 edited", "records 1235 to 1240
// missing", "export truncated after record 900" — or, when nothing was
// tampered with but records after the last signature remain, an error
// wrapping ErrUnsigned (unless opts.AcceptUnsignedTail).
func VerifyFile(r io.Reader, opts VerifyOptions) (Report, error) {
	v, err := NewVerifier(opts)
	if err != nil {
		return Report{}, err
	}
	// Reading, parsing and hashing (and canonicalizing re-encoded
	// records) run in parallel over batches of lines; the verifier takes
	// the results in file order, then hands each batch back for reuse, so
	// that lines are read into a few long-lived buffers.
	workers := max(1, runtime.GOMAXPROCS(0))
	work := make(chan *lineBatch, workers)
	order := make(chan *lineBatch, workers*2)
	free := make(chan *lineBatch, workers*3+2)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var m matcher
			for b := range work {
				b.prepare(&m)
				close(b.done)
			}
		}()
	}
	result := make(chan error, 1)
	go func() {
		result <- v.consume(order, opts, func(b *lineBatch) {
			select {
			case free <- b:
			default:
			}
		})
	}()

	br := bufio.NewReaderSize(r, 256<<10)
	batch := newLineBatch()
	var readErr error
	send := func() {
		work <- batch
		order <- batch
		select {
		case batch = <-free:
			batch.reset()
		default:
			batch = newLineBatch()
		}
	}
	for ln := 1; ; ln++ {
		b, err := readLine(br)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, ErrMalformed) {
				batch.lines = append(batch.lines, fileLine{ln: ln, perr: err, tooLong: true})
				break
			}
			readErr = fmt.Errorf("reading line %d: %w", ln, err)
			break
		}
		complete := len(b) > 0 && b[len(b)-1] == '\n'
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			continue
		}
		// b is the reader's buffer: keep a copy in the batch's.
		start := len(batch.buf)
		batch.buf = append(batch.buf, b...)
		batch.lines = append(batch.lines, fileLine{ln: ln, complete: complete, b: batch.buf[start:len(batch.buf):len(batch.buf)]})
		if len(batch.lines) == cap(batch.lines) || len(batch.buf) >= batchBytes {
			send()
		}
	}
	if len(batch.lines) > 0 {
		send()
	}
	close(work)
	close(order)
	wg.Wait()
	cerr := <-result
	if readErr != nil {
		return v.rep, readErr
	}
	return v.rep, cerr
}

// batchLines and batchBytes bound a batch of lines.
const (
	batchLines = 512
	batchBytes = 256 << 10
)

// lineBatch is a run of lines verified together; done closes once a
// worker has prepared them. Its lines' bytes live in buf, the canonical
// forms of re-encoded records in canon; the slices stay valid until the
// batch is reset for reuse, even where an append moved a buffer.
type lineBatch struct {
	lines []fileLine
	buf   []byte
	canon []byte
	done  chan struct{}
}

func newLineBatch() *lineBatch {
	return &lineBatch{lines: make([]fileLine, 0, batchLines), buf: make([]byte, 0, batchBytes+4096), done: make(chan struct{})}
}

// reset empties a batch the verifier is done with, for the next lines.
func (b *lineBatch) reset() {
	clear(b.lines) // drop references into old buffers
	b.lines, b.buf, b.canon = b.lines[:0], b.buf[:0], b.canon[:0]
	b.done = make(chan struct{})
}

// fileLine is one line, parsed and (for a record) checked against its
// hash by a worker.
type fileLine struct {
	ln       int
	complete bool
	tooLong  bool
	b        []byte
	l        Line
	fast     bool
	perr     error
	data     []byte // the record bytes that matched, or the record's
	ok       bool
	reenc    bool
}

func (b *lineBatch) prepare(m *matcher) {
	for i := range b.lines {
		fl := &b.lines[i]
		if fl.tooLong {
			continue
		}
		fl.l, fl.fast, fl.perr = parseAnyLine(fl.b)
		if fl.perr != nil || fl.l.Export != nil || fl.l.End != nil || fl.l.Checkpoint != nil || fl.l.Pruned > 0 {
			continue
		}
		data := fl.l.Bytes()
		out, ok, reenc := m.match(fl.l.Seq, fl.l.PrevHash, fl.l.Hash, data, fl.l.Record != nil, !fl.fast)
		if reenc {
			// m's buffer is reused: keep a copy in the batch's.
			start := len(b.canon)
			b.canon = append(b.canon, out...)
			out = b.canon[start:len(b.canon):len(b.canon)]
		}
		fl.data, fl.ok, fl.reenc = out, ok, reenc
	}
}

// consume feeds the prepared lines, in file order, to the verifier.
func (v *Verifier) consume(order <-chan *lineBatch, opts VerifyOptions, release func(*lineBatch)) error {
	var hdr *Header
	var done bool
	var digest Hash      // the header's (HeaderDigest)
	var afterHeader bool // the previous line was the header
	var wantCP bool      // a version 3 header awaits its checkpoint
	noCheckpoint := func(ln int) {
		if wantCP {
			v.problem(Forged, 0, ln, "export header not covered by a signature: the export's first checkpoint is missing")
			wantCP = false
		}
	}
	for b := range order {
		<-b.done
		for i := range b.lines {
			fl := &b.lines[i]
			ln := fl.ln
			switch {
			case fl.tooLong:
				v.problem(Malformed, 0, ln, "line %d: %v", ln, fl.perr)
				continue
			case done:
				v.problem(Malformed, 0, ln, "data after the export's trailer")
				continue
			case fl.perr != nil && bytes.Contains(fl.b, []byte(`"audit.sink_test"`)):
				v.rep.TestRecords++ // a sink test's marked record: no part of the journal
				continue
			case fl.perr != nil && !fl.complete:
				v.problem(Truncated, v.rep.Last, ln, "export truncated after record %d: the last line is cut off", v.rep.Last)
				continue
			case fl.perr != nil:
				v.problem(Malformed, 0, ln, "not an audit export line: %v", fl.perr)
				continue
			}
			l := &fl.l
			if l.Checkpoint != nil {
				if !afterHeader {
					v.problem(Malformed, 0, ln, "an export's first checkpoint out of place: it must follow the header")
					continue
				}
				afterHeader, wantCP = false, false
				v.exportCheckpoint(l.Checkpoint, digest, ln)
				continue
			}
			noCheckpoint(ln)
			afterHeader = false
			switch {
			case l.Export != nil:
				if ln != 1 || v.started {
					v.problem(Malformed, 0, ln, "export header in the middle of the file")
					continue
				}
				hdr = l.Export
				v.filtered = !filterContiguous(hdr.Filter)
				v.bounded = strings.Contains(hdr.Filter, "seq<=")
				v.rep.Filtered = v.filtered
				v.header(hdr, ln)
				digest = headerDigestOf(fl.b, hdr)
				afterHeader, wantCP = true, hdr.Version >= 3
			case l.End != nil:
				v.trailer(l.End, hdr, digest, ln)
				done = true
			case l.Pruned > 0:
				v.addStub(l.Seq, l.Pruned, l.PrevHash, l.Hash, ln)
			default:
				if fl.reenc {
					v.rep.Reencoded++
				}
				v.addMatched(l.Seq, l.PrevHash, l.Hash, fl.data, fl.ok, ln)
			}
		}
		release(b) // nothing of b is kept
	}
	noCheckpoint(0)
	if !done && (opts.RequireTrailer || hdr != nil) {
		v.problem(Truncated, v.rep.Last, 0, "export truncated after record %d: its signed trailer is missing", v.rep.Last)
	}
	return v.Finish()
}
