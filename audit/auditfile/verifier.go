package auditfile

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"slices"
)

// ringSize bounds how far back a checkpoint may point and still be checked
// against the record it covers (a checkpoint covers the journal head when
// it was signed, a few batches before the checkpoint itself), and how far
// back a repeated record is compared with its first copy.
const ringSize = 1 << 17

type ringSlot struct {
	seq  uint64
	prev Hash
	h    Hash
}

// span is a run of sequence numbers, from..to inclusive.
type span struct {
	from, to uint64
	line     int // where record from was read
}

// Verifier checks a stream of records in journal order: each record
// against its hash (verbatim, or in canonical form when a receiver
// re-encoded it) and its neighbours, each checkpoint's signature and the
// hash it signs, and event IDs for repeats. It does not stop at the first
// problem: every problem is collected, with ranges and counts, in the
// Report. VerifyFile feeds it from a file; package audit feeds it from a
// node's journal. A Verifier is not safe for concurrent use.
type Verifier struct {
	opts      VerifyOptions
	rep       Report
	started   bool
	filtered  bool
	first     Hash      // prev hash of the first record
	anchor    *ringSlot // the export's first checkpoint: record seq has hash h
	prev      Hash      // hash of record rep.Last
	ring      []ringSlot
	seen      []span            // sequence numbers seen, sorted and merged
	unsigned  []span            // non-checkpoint records after rep.Signed
	ids       map[uint64]uint64 // FNV-64 of an event ID → its record
	digest    *Digest
	canon     []byte // scratch for canonical forms
	cz        canon
	mergeable []bool // per problem: a range that may grow
	// missingDone is the last sequence number up to which gaps were
	// reported.
	missingDone uint64
	// stubs are the runs of pruned records seen (sorted, merged), and
	// summaries the flow summaries that account for them (pruned.go).
	stubs     []span
	summaries []flowSummary
	finished  bool // Finish ran (it may run again)
	// bounded is set for an export whose filter ends at a record
	// ("seq<=N"): flow summaries after it are not in the file.
	bounded bool
}

// NewVerifier returns a Verifier. It fails with ErrNoKey when opts holds
// no key and does not skip signatures.
func NewVerifier(opts VerifyOptions) (*Verifier, error) {
	if !opts.SkipSignatures && len(opts.Keys) == 0 {
		return nil, fmt.Errorf("%w: verification needs the audit public key", ErrNoKey)
	}
	return &Verifier{opts: opts, ring: make([]ringSlot, ringSize), digest: NewDigest(), ids: make(map[uint64]uint64)}, nil
}

// Report returns what was verified so far.
func (v *Verifier) Report() Report { return v.rep }

// LastHash returns the hash of the last record added (Report().Last).
func (v *Verifier) LastHash() Hash { return v.prev }

// Add checks the next record, collecting any problem in the Report.
func (v *Verifier) Add(seq uint64, prev, h Hash, data []byte) {
	v.add(seq, prev, h, data, false, false, 0)
}

// AddStub checks the next entry when it is a stub: n records, first to
// first+n-1, whose data was pruned from the journal, the first of which
// followed prev and the last of which had hash h. The stub's own hash
// cannot be recomputed: it is taken as the chain's input for the next
// record, and a later checkpoint that signs a hash at or after the stub
// vouches for it (an edited stub breaks the link to the next record, or
// the checkpoint, or both).
func (v *Verifier) AddStub(first, n uint64, prev, h Hash) { v.addStub(first, n, prev, h, 0) }

// Problem records a problem found outside the stream of records (by the
// caller: a journal head that disagrees, a missing trailer).
func (v *Verifier) Problem(kind Tamper, seq uint64, format string, args ...any) {
	v.problem(kind, seq, 0, format, args...)
}

// Finish ends the stream: records never seen between the first and the
// last are reported missing, and the unsigned tail is counted. It returns
// nil when nothing is wrong; a *TamperError (wrapping ErrTampered) naming
// the first problem and counting the others when something was tampered
// with; or an error wrapping ErrUnsigned when only records after the last
// signature remain unproven and the options do not accept that.
func (v *Verifier) Finish() error {
	v.flushMissing()
	if !v.finished {
		v.finished = true
		v.checkStubs()
	}
	v.rep.Unsigned, v.rep.UnsignedFirst = 0, 0
	for _, s := range v.unsigned {
		v.rep.Unsigned += s.to - s.from + 1
	}
	if len(v.unsigned) > 0 {
		v.rep.UnsignedFirst = v.unsigned[0].from
	}
	return v.err()
}

// flushMissing reports the gaps between the records seen so far that
// were not reported yet.
func (v *Verifier) flushMissing() {
	if v.filtered || !v.started {
		return
	}
	at := max(v.rep.First, v.missingDone+1)
	for _, s := range v.seen {
		if s.to < at {
			continue
		}
		if s.from > at {
			v.missing(at, s.from-1, s.line)
		}
		at = s.to + 1
	}
	v.missingDone = at - 1
}

func (v *Verifier) err() error {
	var first *Problem
	more := int(v.rep.ProblemsOmitted)
	for i := range v.rep.Problems {
		p := &v.rep.Problems[i]
		if p.Kind == DuplicateID {
			continue
		}
		if first == nil {
			first = p
		} else {
			more++
		}
	}
	if first != nil {
		return &TamperError{Kind: first.Kind, Seq: first.First, Line: first.Line, Detail: first.Detail, More: more}
	}
	if v.rep.Unsigned > 0 && !v.opts.AcceptUnsignedTail {
		return fmt.Errorf("%w: %d records from record %d on are not covered by a signature (forgeable until the next checkpoint)",
			ErrUnsigned, v.rep.Unsigned, v.rep.UnsignedFirst)
	}
	return nil
}

func (v *Verifier) lookup(seq uint64) (ringSlot, bool) {
	s := v.ring[seq%ringSize]
	return s, s.seq == seq && seq != 0
}

// problem adds a problem that stands alone.
func (v *Verifier) problem(kind Tamper, seq uint64, ln int, format string, args ...any) {
	v.push(Problem{Kind: kind, First: seq, Last: seq, Count: 1, Line: ln, Detail: fmt.Sprintf(format, args...)}, false)
}

func (v *Verifier) push(p Problem, mergeable bool) {
	if len(v.rep.Problems) >= MaxProblems {
		v.rep.ProblemsOmitted++
		return
	}
	v.rep.Problems = append(v.rep.Problems, p)
	v.mergeable = append(v.mergeable, mergeable)
}

// rangeProblem adds a problem about record seq, merged with the previous
// problem when that is the same kind of problem about record seq-1.
func (v *Verifier) rangeProblem(kind Tamper, seq uint64, ln int) {
	v.rangeProblemDetail(kind, seq, ln, rangeDetail(kind, seq, seq))
}

// rangeProblemDetail is rangeProblem with the detail of a single record.
func (v *Verifier) rangeProblemDetail(kind Tamper, seq uint64, ln int, detail string) {
	if n := len(v.rep.Problems); n > 0 && v.mergeable[n-1] {
		p := &v.rep.Problems[n-1]
		if p.Kind == kind && p.Last+1 == seq {
			p.Last, p.Count = seq, p.Count+1
			p.Detail = rangeDetail(kind, p.First, p.Last)
			return
		}
	}
	v.push(Problem{Kind: kind, First: seq, Last: seq, Count: 1, Line: ln, Detail: detail}, true)
}

func rangeDetail(kind Tamper, first, last uint64) string {
	if first == last {
		switch kind {
		case Edited:
			return fmt.Sprintf("record %d edited: its contents do not match its hash", first)
		case Reordered:
			return fmt.Sprintf("records out of order at %d: it comes after a later record", first)
		case Missing:
			return fmt.Sprintf("record %d missing", first)
		}
	}
	n := last - first + 1
	switch kind {
	case Edited:
		return fmt.Sprintf("records %d to %d edited (%d records): their contents do not match their hashes", first, last, n)
	case Reordered:
		return fmt.Sprintf("records out of order from %d to %d (%d records): they come after later records", first, last, n)
	case Missing:
		return fmt.Sprintf("records %d to %d missing (%d records)", first, last, n)
	}
	return fmt.Sprintf("%s: records %d to %d (%d records)", kind, first, last, n)
}

func (v *Verifier) missing(from, to uint64, ln int) {
	v.push(Problem{Kind: Missing, First: from, Last: to, Count: to - from + 1, Line: ln, Detail: rangeDetail(Missing, from, to)}, false)
}

// matches reports whether data, verbatim or in canonical form when
// canonical may be tried, hashes to h as record seq after prev. It returns
// the bytes that matched.
//
// A line a receiver re-encoded (reencoded: it did not take the fast
// path) is tried in canonical form first.
func (v *Verifier) matches(seq uint64, prev, h Hash, data []byte, canonical, reencoded bool) ([]byte, bool) {
	var m matcher
	m.cz, m.buf = v.cz, v.canon
	out, ok, reenc := m.match(seq, prev, h, data, canonical, reencoded)
	v.cz, v.canon = m.cz, m.buf
	if reenc {
		v.rep.Reencoded++
	}
	return out, ok
}

// matcher checks records against their hashes, verbatim or canonicalized;
// each goroutine of a parallel verification has its own.
type matcher struct {
	cz  canon
	buf []byte
}

// match is Verifier.matches; reenc reports a match in canonical form
// only. The returned bytes may be m's buffer: copy them to keep them.
func (m *matcher) match(seq uint64, prev, h Hash, data []byte, canonical, reencoded bool) (out []byte, ok, reenc bool) {
	if !reencoded && ChainHash(prev, seq, data) == h {
		return data, true, false
	}
	if canonical {
		c, err := m.cz.append(m.buf[:0], data)
		if err == nil {
			m.buf = c
			if ChainHash(prev, seq, c) == h {
				return c, true, !bytes.Equal(c, data)
			}
		}
	}
	if reencoded && ChainHash(prev, seq, data) == h {
		return data, true, false
	}
	return data, false, false
}

// add checks one record read from line ln (0: not from a file); canonical
// reports that data is JSON that a receiver may have re-encoded.
func (v *Verifier) add(seq uint64, prev, h Hash, data []byte, canonical, reencoded bool, ln int) {
	data, ok := v.matches(seq, prev, h, data, canonical, reencoded)
	v.addMatched(seq, prev, h, data, ok, ln)
}

// addMatched is add once the record's contents were checked against its
// hash (ok), data being the bytes that matched.
func (v *Verifier) addMatched(seq uint64, prev, h Hash, data []byte, ok bool, ln int) {
	if !ok {
		// A record moved from elsewhere still matches its hash under its
		// own sequence number.
		moved := uint64(0)
		for d := uint64(1); d <= 16 && moved == 0; d++ {
			for _, other := range []uint64{seq + d, seq - d} {
				if other != 0 && other < seq+17 && ChainHash(prev, other, data) == h {
					moved = other
					break
				}
			}
		}
		if moved != 0 {
			v.problem(Reordered, seq, ln, "records out of order at %d: record %d is in its place", seq, moved)
		} else {
			v.rangeProblem(Edited, seq, ln)
		}
	}
	if v.started && v.contains(seq) {
		if old, inRing := v.lookup(seq); inRing && old.h != h {
			v.problem(Edited, seq, ln, "record %d edited: it appears twice with different contents", seq)
		} else {
			v.rep.Duplicates++
		}
		return
	}
	v.place(seq, prev, ln)
	if !v.filtered && ok {
		if p, known := v.lookup(seq - 1); known && p.h != prev {
			v.problem(Edited, seq-1, ln, "record %d edited: record %d no longer follows it", seq-1, seq)
		}
		if n, known := v.lookup(seq + 1); known && n.prev != h {
			v.problem(Edited, seq, ln, "record %d edited: record %d no longer follows it", seq, seq+1)
		}
	}
	if seq > v.rep.Last {
		v.rep.Last, v.prev = seq, h
	}
	v.ring[seq%ringSize] = ringSlot{seq: seq, prev: prev, h: h}
	v.seen = addSpan(v.seen, seq, ln)
	v.rep.Records++
	v.digest.Add(seq, h)
	switch {
	case IsCheckpoint(data):
		v.rep.Checkpoints++
		c, err := DecodeCheckpoint(data)
		if err != nil {
			v.problem(Malformed, seq, ln, "record %d: undecodable checkpoint", seq)
			return
		}
		v.checkpoint(seq, c, ln)
		return
	case IsEvent(data):
		v.rep.Events++
		v.noteSummary(seq, data, ln)
		if id := eventID(data); len(id) > 0 {
			f := fnv.New64a()
			f.Write(id)
			k := f.Sum64()
			if other, dup := v.ids[k]; dup {
				v.rep.DuplicateIDs++
				v.problem(DuplicateID, seq, ln, "event %s stored twice: records %d and %d", id, other, seq)
			} else {
				v.ids[k] = seq
			}
		}
	}
	if seq > v.rep.Signed {
		v.unsigned = addSpan(v.unsigned, seq, ln)
	}
}

// place notes a record (or a stub's first record) seq, whose prev hash is
// prev, read from line ln: the start of the verified range, a record out
// of order, or one before the range read so far.
func (v *Verifier) place(seq uint64, prev Hash, ln int) {
	switch {
	case !v.started:
		v.started = true
		v.rep.First, v.first = seq, prev
		if seq == 1 && prev != (Hash{}) {
			v.problem(Edited, seq, ln, "record 1 edited: it does not start the chain")
		}
		v.rep.Anchored = seq == 1
		if v.anchor != nil {
			v.checkAnchor(seq, prev, ln)
		}
	case seq < v.rep.Last && !v.filtered:
		v.rangeProblemDetail(Reordered, seq, ln, fmt.Sprintf("records out of order at %d: record %d comes before it", seq, v.rep.Last))
	case seq < v.rep.First:
		v.rep.First, v.first = seq, prev
	}
}

// addStub is AddStub for a stub read from line ln.
func (v *Verifier) addStub(first, n uint64, prev, h Hash, ln int) {
	last := first + n - 1
	if n == 0 || first == 0 || last < first {
		v.problem(Malformed, first, ln, "record %d: malformed stub of %d pruned records", first, n)
		return
	}
	if v.started && (v.contains(first) || v.contains(last)) {
		if old, inRing := v.lookup(last); inRing && old.h != h {
			v.problem(Edited, last, ln, "record %d edited: it appears twice with different contents", last)
		} else {
			v.rep.Duplicates++
		}
		return
	}
	v.place(first, prev, ln)
	if !v.filtered {
		if p, known := v.lookup(first - 1); known && p.h != prev {
			v.problem(Edited, first-1, ln, "record %d edited: pruned record %d no longer follows it", first-1, first)
		}
		if nx, known := v.lookup(last + 1); known && nx.prev != h {
			v.problem(Edited, last, ln, "pruned record %d edited: record %d no longer follows it", last, last+1)
		}
	}
	if last > v.rep.Last {
		v.rep.Last, v.prev = last, h
	}
	// Only the last record's hash is known (a checkpoint may sign it);
	// the first's is known too when the stub stands for one record.
	v.ring[last%ringSize] = ringSlot{seq: last, h: h}
	if n == 1 {
		v.ring[last%ringSize].prev = prev
	}
	v.seen = addSpanRange(v.seen, first, last, ln)
	v.stubs = addSpanRange(v.stubs, first, last, ln)
	v.rep.Records++
	v.rep.Stubs++
	v.rep.Pruned += n
	v.digest.Add(first, h)
	if last > v.rep.Signed {
		v.unsigned = addSpanRange(v.unsigned, max(first, v.rep.Signed+1), last, ln)
	}
}

// checkAnchor checks the first record of an export, seq following prev,
// against the record its first checkpoint signs: records cut from the
// start of an export are reported even without a trailer.
func (v *Verifier) checkAnchor(seq uint64, prev Hash, ln int) {
	a := v.anchor
	switch {
	case seq == a.seq+1 && prev == a.h:
		v.rep.Anchored = true
	case seq == a.seq+1:
		v.problem(Edited, seq, ln, "record %d edited: the export's first checkpoint signs a different predecessor", seq)
	case seq > a.seq+1 && !v.filtered:
		v.missing(a.seq+1, seq-1, ln)
	case seq > a.seq+1:
		v.problem(Missing, a.seq+1, ln, "record %d missing: the export's first checkpoint says the export starts with it", a.seq+1)
	default:
		v.problem(Forged, seq, ln, "record %d precedes the export's start: its first checkpoint signs record %d", seq, a.seq)
	}
}

// checkpoint checks a checkpoint stored as record seq.
func (v *Verifier) checkpoint(seq uint64, c *Checkpoint, ln int) {
	if !v.opts.SkipSignatures {
		ok, err := v.opts.Keys.verify(c.KeyID, c.signedBytes(), c.Sig)
		if err != nil {
			v.problem(Forged, seq, ln, "checkpoint at %d: signed by unknown key %q", seq, c.KeyID)
			return
		}
		if !ok {
			v.problem(Forged, seq, ln, "checkpoint at %d: invalid signature", seq)
			return
		}
	}
	if c.Seq >= seq {
		v.problem(Forged, seq, ln, "checkpoint at %d covers later record %d", seq, c.Seq)
		return
	}
	if c.Seq+1 == v.rep.First && c.Hash == v.first {
		v.rep.Anchored = true
	}
	switch s, ok := v.lookup(c.Seq); {
	case ok && s.h != c.Hash:
		v.problem(Edited, c.Seq, ln, "record %d edited: checkpoint at %d signs a different hash", c.Seq, seq)
	case ok && !v.opts.SkipSignatures:
		v.sign(c.Seq)
	}
}

// sign notes that a signature covers every record up to seq.
func (v *Verifier) sign(seq uint64) {
	if seq <= v.rep.Signed {
		return
	}
	v.rep.Signed = seq
	i := 0
	for i < len(v.unsigned) && v.unsigned[i].to <= seq {
		i++
	}
	v.unsigned = v.unsigned[i:]
	if len(v.unsigned) > 0 && v.unsigned[0].from <= seq {
		v.unsigned[0].from = seq + 1
	}
}

// contains reports whether seq was seen.
func (v *Verifier) contains(seq uint64) bool {
	i, _ := slices.BinarySearchFunc(v.seen, seq, func(s span, x uint64) int {
		switch {
		case s.to < x:
			return -1
		case s.from > x:
			return 1
		}
		return 0
	})
	return i < len(v.seen) && v.seen[i].from <= seq && seq <= v.seen[i].to
}

// addSpanRange adds from..to (none of them in spans) to the sorted spans.
// Appending in order is O(1).
func addSpanRange(spans []span, from, to uint64, ln int) []span {
	n := len(spans)
	switch {
	case n > 0 && spans[n-1].to+1 == from:
		spans[n-1].to = to
		return spans
	case n == 0 || spans[n-1].to < from:
		return append(spans, span{from, to, ln})
	}
	i, _ := slices.BinarySearchFunc(spans, from, func(s span, x uint64) int {
		if s.to < x {
			return -1
		}
		return 1
	})
	spans = slices.Insert(spans, i, span{from, to, ln})
	// Merge with neighbours that touch it.
	if i+1 < len(spans) && spans[i].to+1 >= spans[i+1].from {
		spans[i].to = max(spans[i].to, spans[i+1].to)
		spans = slices.Delete(spans, i+1, i+2)
	}
	if i > 0 && spans[i-1].to+1 >= spans[i].from {
		spans[i-1].to = max(spans[i-1].to, spans[i].to)
		spans = slices.Delete(spans, i, i+1)
	}
	return spans
}

// addSpan adds seq (not yet in spans) to the sorted spans, merging
// neighbours. Appending in order is O(1).
func addSpan(spans []span, seq uint64, ln int) []span {
	n := len(spans)
	if n > 0 && spans[n-1].to+1 == seq {
		spans[n-1].to = seq
		return spans
	}
	if n == 0 || spans[n-1].to < seq {
		return append(spans, span{seq, seq, ln})
	}
	i, _ := slices.BinarySearchFunc(spans, seq, func(s span, x uint64) int {
		if s.to < x {
			return -1
		}
		return 1
	})
	// spans[i] is the first span after seq.
	switch {
	case i > 0 && spans[i-1].to+1 == seq && spans[i].from == seq+1:
		spans[i-1].to = spans[i].to
		return slices.Delete(spans, i, i+1)
	case i > 0 && spans[i-1].to+1 == seq:
		spans[i-1].to = seq
	case spans[i].from == seq+1:
		spans[i].from, spans[i].line = seq, ln
	default:
		spans = slices.Insert(spans, i, span{seq, seq, ln})
	}
	return spans
}
