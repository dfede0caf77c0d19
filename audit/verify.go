package audit

import (
	"context"
	"fmt"
	"io"

	"github.com/ferryvpn/ferry/audit/auditfile"
	"github.com/ferryvpn/ferry/cluster"
)

// VerifyOptions tune verification (auditfile.VerifyOptions): the keys,
// whether to skip signatures, whether a file must end with a trailer.
type VerifyOptions = auditfile.VerifyOptions

// Report summarises a successful (or partial) verification
// (auditfile.Report).
type Report = auditfile.Report

// VerifyFile checks an export or sink file in the native format; it is
// auditfile.VerifyFile, which names the first record that was edited,
// deleted, reordered or cut off as a *TamperError.
func VerifyFile(r io.Reader, opts VerifyOptions) (Report, error) {
	return auditfile.VerifyFile(r, opts)
}

// LiveStore is what live verification reads: the journal and the last
// checkpoint the leader recorded. *cluster.Node implements it.
type LiveStore interface {
	Journal
	Get(ctx context.Context, key string, c cluster.Consistency) (cluster.KV, bool, error)
}

// VerifyLive checks this node's journal the way VerifyFile checks a file,
// and then that nothing was cut from its end: the journal head and the last
// checkpoint recorded in the store must agree with the last record.
func VerifyLive(ctx context.Context, s LiveStore, opts VerifyOptions) (Report, error) {
	v, err := auditfile.NewVerifier(opts)
	if err != nil {
		return Report{}, err
	}
	head, headHash, err := s.JournalHead()
	if err != nil {
		return Report{}, fmt.Errorf("reading journal head: %w", err)
	}
	from := uint64(1)
	for {
		if err := ctx.Err(); err != nil {
			return v.Report(), err
		}
		recs, err := s.JournalRange(from, ^uint64(0), scanPage)
		if err != nil {
			return v.Report(), fmt.Errorf("reading journal from %d: %w", from, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if err := v.Add(r.Seq, r.PrevHash, r.Hash, r.Data); err != nil {
				return v.Report(), err
			}
		}
		from = recs[len(recs)-1].Seq + 1
	}
	if err := v.Finish(); err != nil {
		return v.Report(), err
	}
	rep := v.Report()
	if rep.Records > 0 && !rep.Anchored {
		return rep, tamper(Missing, 1, "records 1 to %d missing: no checkpoint anchors record %d", rep.First-1, rep.First)
	}
	switch {
	case head > rep.Last:
		return rep, tamper(Truncated, rep.Last, "journal truncated after record %d: its head is record %d", rep.Last, head)
	case head < rep.Last:
		return rep, tamper(Edited, head, "journal head says record %d, but records run to %d", head, rep.Last)
	case head > 0 && Hash(headHash) != v.LastHash():
		return rep, tamper(Edited, head, "record %d edited: the journal head holds a different hash", head)
	}
	last, ok, err := loadLastCheckpoint(ctx, s)
	if err != nil {
		return rep, err
	}
	if ok && last.Seq > rep.Last {
		return rep, tamper(Truncated, rep.Last, "journal truncated after record %d: the last checkpoint covers record %d", rep.Last, last.Seq)
	}
	if ok && last.Record > rep.Last {
		return rep, tamper(Truncated, rep.Last, "journal truncated after record %d: the last checkpoint was stored as record %d", rep.Last, last.Record)
	}
	return rep, nil
}

// tamper returns the *TamperError of a live verification, which has no
// file lines.
func tamper(kind Tamper, seq uint64, format string, args ...any) *TamperError {
	return &TamperError{Kind: kind, Seq: seq, Detail: fmt.Sprintf(format, args...)}
}
