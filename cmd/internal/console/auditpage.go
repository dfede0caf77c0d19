package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

// auditShown is how many matching records the audit search shows, the
// newest first.
const auditShown = 100

var auditRanges = []trafficRange{
	{"24h", "Last 24 hours", 24 * time.Hour, true},
	{"7d", "Last 7 days", 7 * 24 * time.Hour, true},
	{"30d", "Last 30 days", 30 * 24 * time.Hour, false},
	{"all", "All records", 0, false},
}

type auditData struct {
	User, Type, Outcome, Range string
	Ranges, Outcomes           []option
	Rows                       []auditRow
	Matched                    int
	Verified                   string
	VerifyOK                   bool
	Cut                        bool
}

type auditRow struct {
	Seq                                           uint64
	Hash, Time, Type, Actor, Target, Outcome, Why string
	From                                          string
}

// auditSearch finds journal records by user, type, outcome and time,
// shows the newest with their chain position (sequence number and hash),
// and verifies the range shown: the chain from its first record to the
// journal's head and the checkpoint signatures in it (audit.VerifyRange).
func (c *Console) auditSearch(w http.ResponseWriter, r *http.Request, k call) {
	ctx := r.Context()
	v := r.URL.Query()
	d := auditData{User: strings.TrimSpace(v.Get("user")), Type: strings.TrimSpace(v.Get("type")), Outcome: v.Get("outcome"), Range: v.Get("range")}
	rg := auditRanges[1]
	for _, o := range auditRanges {
		if o.Value == d.Range {
			rg = o
		}
	}
	d.Range = rg.Value
	for _, o := range auditRanges {
		d.Ranges = append(d.Ranges, option{Value: o.Value, Label: o.Label, Selected: o.Value == rg.Value})
	}
	if d.Outcome != string(audit.Success) && d.Outcome != string(audit.Failure) {
		d.Outcome = ""
	}
	for _, o := range []option{{Value: "", Label: "Any"}, {Value: string(audit.Success), Label: "Success"}, {Value: string(audit.Failure), Label: "Failure"}} {
		o.Selected = o.Value == d.Outcome
		d.Outcomes = append(d.Outcomes, o)
	}
	f := audit.Filter{User: d.User, NoCheckpoints: true}
	if d.Type != "" {
		f.Types = strings.Split(d.Type, ",")
	}
	if rg.Span > 0 {
		f.Since = c.cfg.Now().Add(-rg.Span)
	}
	ring := make([]*audit.Entry, 0, auditShown)
	err := audit.Scan(ctx, c.cfg.Node, f, func(e *audit.Entry) error {
		if e.Event == nil || (d.Outcome != "" && string(e.Event.Outcome) != d.Outcome) {
			return nil
		}
		d.Matched++
		if len(ring) == auditShown {
			copy(ring, ring[1:])
			ring = ring[:auditShown-1]
		}
		ring = append(ring, e)
		return nil
	})
	if err != nil {
		c.fail(w, "audit search", err)
		return
	}
	d.Cut = d.Matched > len(ring)
	for i := len(ring) - 1; i >= 0; i-- {
		e := ring[i]
		ev := e.Event
		row := auditRow{Seq: e.Seq, Hash: e.Hash.String()[:16], Time: ev.Time.UTC().Format("2 Jan 2006 15:04:05 UTC"), Type: ev.FullType(),
			Actor: actorText(ev.Actor), Target: targetText(ev.Target), Outcome: string(ev.Outcome), Why: ev.Reason, From: ev.Source.Addr}
		d.Rows = append(d.Rows, row)
	}
	if len(ring) > 0 {
		first, last := ring[0].Seq, ring[len(ring)-1].Seq
		keys, err := audit.LoadKeys(ctx, c.cfg.Node)
		if err != nil {
			c.fail(w, "audit keys", err)
			return
		}
		rep, err := audit.VerifyRange(ctx, c.cfg.Node, first, audit.VerifyOptions{Keys: keys})
		switch {
		case err != nil && (errors.Is(err, audit.ErrTampered) || isTamper(err)):
			d.Verified = fmt.Sprintf("Verification FAILED for records %d to %d: %v", first, last, err)
		case err != nil:
			c.fail(w, "audit verification", err)
			return
		case rep.Signed >= last:
			d.VerifyOK = true
			d.Verified = fmt.Sprintf("Records %d to %d verified: the hash chain is intact and a signed checkpoint (record %d) covers them all.", first, last, rep.Signed)
		default:
			d.VerifyOK = true
			d.Verified = fmt.Sprintf("Records %d to %d verified: the hash chain is intact; records after %d are not covered by a signed checkpoint yet (one is written periodically).", first, last, rep.Signed)
		}
	}
	c.render(w, http.StatusOK, "audit", k, page{Title: "Audit", Nav: "audit", D: d})
}

func isTamper(err error) bool {
	var te *audit.TamperError
	return errors.As(err, &te)
}

func actorText(a audit.Actor) string {
	s := a.Email
	if s == "" {
		s = a.UserID
	}
	return s
}

func targetText(t audit.Target) string {
	var parts []string
	for _, p := range [][2]string{{"user ", t.User}, {"node ", t.Node}, {"device ", t.Device}, {"profile ", t.Profile}, {"", t.DstAddr}} {
		if p[1] != "" {
			parts = append(parts, p[0]+p[1])
		}
	}
	return strings.Join(parts, ", ")
}
