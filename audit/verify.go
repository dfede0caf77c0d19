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
//
// The newest records of a live journal are always unsigned until the next
// checkpoint, so live verification accepts an unsigned tail (the report
// counts it).
func VerifyLive(ctx context.Context, s LiveStore, opts VerifyOptions) (Report, error) {
	opts.AcceptUnsignedTail = true
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
			if r.Pruned > 0 {
				v.AddStub(r.Seq, r.Pruned, r.PrevHash, r.Hash)
			} else {
				v.Add(r.Seq, r.PrevHash, r.Hash, r.Data)
			}
		}
		from = recs[len(recs)-1].LastSeq() + 1
	}
	rep := v.Report()
	if rep.Records > 0 && !rep.Anchored {
		v.Problem(Missing, 1, "records 1 to %d missing: no checkpoint anchors record %d", rep.First-1, rep.First)
	}
	switch {
	case head > rep.Last:
		v.Problem(Truncated, rep.Last, "journal truncated after record %d: its head is record %d", rep.Last, head)
	case head < rep.Last:
		v.Problem(Edited, head, "journal head says record %d, but records run to %d", head, rep.Last)
	case head > 0 && Hash(headHash) != v.LastHash():
		v.Problem(Edited, head, "record %d edited: the journal head holds a different hash", head)
	}
	last, ok, err := loadLastCheckpoint(ctx, s)
	if err != nil {
		return rep, err
	}
	if ok && last.Seq > rep.Last {
		v.Problem(Truncated, rep.Last, "journal truncated after record %d: the last checkpoint covers record %d", rep.Last, last.Seq)
	} else if ok && last.Record > rep.Last {
		v.Problem(Truncated, rep.Last, "journal truncated after record %d: the last checkpoint was stored as record %d", rep.Last, last.Record)
	}
	err = v.Finish()
	return v.Report(), err
}
