package report

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// BenchmarkEntitlementsAt: who could reach what at a past time, replayed
// from the rollup's history: 1,000 users who each sign in every day of 90
// days and whose groups the identity provider changes (SCIM) every week,
// 20 profiles edited weekly: about 106,000 history entries, all read by
// one report as of the last day. One iteration is one report.
func BenchmarkEntitlementsAt(b *testing.B) {
	const users, days, profs = 1000, 90, 20
	j := &memJournal{}
	n := 0
	add := func(e audit.Event) {
		n++
		e.ID = fmt.Sprintf("h%d", n)
		if err := j.Add(e); err != nil {
			b.Fatal(err)
		}
	}
	for d := range days {
		day := t0.Add(time.Duration(d) * 24 * time.Hour)
		if d%7 == 0 {
			for p := range profs {
				e := profileEv(b, "", day, profiles.Profile{Name: fmt.Sprintf("p%d", p), Groups: []string{fmt.Sprintf("g%d", p)}, Rules: []profiles.Rule{
					{CIDR: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", p)), Protocol: profiles.ProtoTCP, Ports: []profiles.PortRange{{From: 443, To: 443}}},
				}})
				e.PolicyVersion = uint64(d + 1)
				add(e)
			}
		}
		for u := range users {
			id := fmt.Sprintf("u%04d", u)
			groups := []string{fmt.Sprintf("g%d", (u+d/7)%profs), fmt.Sprintf("g%d", (u+d/7+1)%profs)}
			add(audit.Event{Time: day.Add(9*time.Hour + time.Duration(u)*time.Second), Type: audit.TypeLogin, Action: authn.ActionLoginOIDC,
				Outcome: audit.Success, Actor: audit.Actor{UserID: id, Email: id + "@example.com", Groups: groups}, Target: audit.Target{User: id},
				Details: map[string]string{"email_verified": "true"}})
			if d%7 == 6 {
				add(provisioned("", day.Add(20*time.Hour), id, id+"@example.com", groups[0]))
			}
		}
	}
	r, err := Open(Config{Path: filepath.Join(b.TempDir(), "r.db"), Journal: j})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Sync(context.Background()); err != nil {
		b.Fatal(err)
	}
	entitle := func(u authn.User, p *profiles.Profile) (bool, string, string) {
		via, ok := p.AssignedTo(u.Identity(), false)
		return ok, via, ""
	}
	at := t0.Add(time.Duration(days) * 24 * time.Hour)
	var rows int
	b.ResetTimer()
	for b.Loop() {
		rep, err := r.EntitlementsAt(context.Background(), at, nil, entitle, time.Time{}, time.Time{}, false)
		if err != nil {
			b.Fatal(err)
		}
		rows = len(rep.Rows)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/report")
	b.ReportMetric(float64(n), "history-entries")
	b.ReportMetric(float64(rows), "rows")
}
