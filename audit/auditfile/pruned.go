package auditfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// Stubs and flow summaries.
//
// A stub stands for records pruned from the journal; its own hash cannot
// be recomputed, so the chain alone cannot tell a stub of flow records
// from a stub that hides any other record. What tells them apart is the
// flow.summary events the leader records before every prune: each names
// the prune's range (details "from" and "to") and the SHA-256 of its runs
// (details "runs_sha256", RunsDigest). The verifier checks that the stubs
// inside each summarized range are exactly those runs, and that no stub
// lies outside every summarized range.

// summaryType marks the records the verifier decodes as flow summaries.
var summaryType = []byte(`"type":"flow.summary"`)

const runsDomain = "ferry-pruned-runs/v1\n"

// RunsDigest returns the digest a flow summary names for the runs (first
// and last sequence numbers, in increasing order, none adjacent to the
// next) of the flow records a prune removes: SHA-256 over a domain string
// and each run's big-endian first and last.
func RunsDigest(runs [][2]uint64) Hash {
	h := sha256.New()
	h.Write([]byte(runsDomain))
	var b [16]byte
	for _, r := range runs {
		binary.BigEndian.PutUint64(b[:8], r[0])
		binary.BigEndian.PutUint64(b[8:], r[1])
		h.Write(b[:])
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

// flowSummary is what the verifier keeps of a flow summary.
type flowSummary struct {
	from, to uint64
	digest   Hash
	seq      uint64
	ln       int
}

// noteSummary keeps the range and runs digest of a flow summary event.
func (v *Verifier) noteSummary(seq uint64, data []byte, ln int) {
	if !bytes.Contains(data, summaryType) {
		return
	}
	var ev struct {
		Type    string            `json:"type"`
		Details map[string]string `json:"details"`
	}
	if json.Unmarshal(data, &ev) != nil || ev.Type != "flow.summary" {
		return
	}
	from, err1 := strconv.ParseUint(ev.Details["from"], 10, 64)
	to, err2 := strconv.ParseUint(ev.Details["to"], 10, 64)
	d, err3 := hex.DecodeString(ev.Details["runs_sha256"])
	if err1 != nil || err2 != nil || err3 != nil || len(d) != len(Hash{}) || to < from {
		v.problem(Malformed, seq, ln, "record %d: flow summary without a valid range and runs digest", seq)
		return
	}
	s := flowSummary{from: from, to: to, digest: Hash(d), seq: seq, ln: ln}
	for _, o := range v.summaries {
		if o.from == s.from && o.to == s.to && o.digest == s.digest {
			return // a repeated summary part
		}
	}
	v.summaries = append(v.summaries, s)
}

// checkStubs checks the stubs seen against the flow summaries seen (see
// above). Filtered streams hold no stubs.
func (v *Verifier) checkStubs() {
	if len(v.stubs) == 0 || v.filtered {
		return
	}
	var covered []span
	for _, s := range v.summaries {
		var runs [][2]uint64
		for _, st := range v.stubs {
			if st.to < s.from || st.from > s.to {
				continue
			}
			r := [2]uint64{max(st.from, s.from), min(st.to, s.to)}
			if n := len(runs); n > 0 && runs[n-1][1]+1 == r[0] {
				runs[n-1][1] = r[1]
			} else {
				runs = append(runs, r)
			}
		}
		if len(runs) == 0 {
			continue // the prune it announced never happened
		}
		if RunsDigest(runs) != s.digest {
			v.problem(Edited, runs[0][0], s.ln, "records pruned between %d and %d are not the flow records the summary at %d names: a record other than a flow record was replaced by a stub", s.from, s.to, s.seq)
		}
		covered = addSpanRange(covered, s.from, s.to, 0)
	}
	for _, st := range v.stubs {
		for seq := st.from; seq <= st.to; {
			c, ok := spanAt(covered, seq)
			if ok {
				seq = c.to + 1
				continue
			}
			end := st.to
			if i := nextSpan(covered, seq); i < len(covered) && covered[i].from <= st.to {
				end = covered[i].from - 1
			}
			if v.bounded {
				// The summary comes after the stubs: past the export's end.
				v.rep.PrunedUnchecked += end - seq + 1
				seq = end + 1
				continue
			}
			v.problem(Edited, seq, st.line, "records %d to %d pruned without a flow summary: a stub replaced records that were not flow records past their window", seq, end)
			seq = end + 1
		}
	}
}

// spanAt returns the span holding seq.
func spanAt(spans []span, seq uint64) (span, bool) {
	i := nextSpan(spans, seq)
	if i < len(spans) && spans[i].from <= seq {
		return spans[i], true
	}
	return span{}, false
}

// nextSpan returns the index of the first span ending at or after seq.
func nextSpan(spans []span, seq uint64) int {
	lo, hi := 0, len(spans)
	for lo < hi {
		m := (lo + hi) / 2
		if spans[m].to < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
