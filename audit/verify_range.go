package audit

import (
	"context"
	"fmt"

	"github.com/ferryvpn/ferry/audit/auditfile"
)

// VerifyRange checks the journal from record from to its head, the way
// VerifyLive checks it whole: every record's hash, the chain between
// them, and the signatures of the checkpoints among them. Report.Signed
// is the last record a valid signature vouches for, so a range [from,
// to] is covered when Signed >= to; Report.Anchored says whether a
// checkpoint also signs what record from follows. It costs a read of the
// journal from record from on, not the whole journal: the admin console
// shows it next to a search's results.
func VerifyRange(ctx context.Context, j Journal, from uint64, opts VerifyOptions) (Report, error) {
	opts.AcceptUnsignedTail = true
	v, err := auditfile.NewVerifier(opts)
	if err != nil {
		return Report{}, err
	}
	from = max(from, 1)
	for {
		if err := ctx.Err(); err != nil {
			return v.Report(), err
		}
		recs, err := j.JournalRange(from, ^uint64(0), scanPage)
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
	err = v.Finish()
	return v.Report(), err
}
