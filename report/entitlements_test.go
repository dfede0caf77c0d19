package report

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// TestEntitlementsAndUnused: who can reach what (user → group → profile →
// rule), and which of it went unused in the window.
func TestEntitlementsAndUnused(t *testing.T) {
	j := &memJournal{}
	for h := range 10 {
		at := t0.Add(time.Duration(h) * time.Hour)
		j.add(t, flowEv(at, "alice", "laptop", "eng", "10.0.4.17", 5432, false, 2, 100, 1000))
		j.add(t, flowEv(at, "bob", "phone", "eng", "10.0.4.17", 443, false, 1, 10, 20))
		j.add(t, flowEv(at, "bob", "phone", "eng", "10.0.9.1", 22, true, 2, 0, 0))
	}
	r := openRollup(t, j, filepath.Join(t.TempDir(), "r.db"))
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	eng := profiles.Profile{Name: "eng", Version: 7, Groups: []string{"engineering"}, Rules: []profiles.Rule{
		{CIDR: netip.MustParsePrefix("10.0.4.0/24"), Protocol: profiles.ProtoTCP, Ports: []profiles.PortRange{{From: 5432, To: 5432}}},
		{CIDR: netip.MustParsePrefix("10.0.4.0/24"), Protocol: profiles.ProtoTCP, Ports: []profiles.PortRange{{From: 443, To: 443}}},
		{CIDR: netip.MustParsePrefix("10.0.8.0/24"), Protocol: profiles.ProtoAny},
	}}
	ops := profiles.Profile{Name: "ops", Version: 3, Users: []string{"carol"}, Rules: []profiles.Rule{
		{CIDR: netip.MustParsePrefix("10.1.0.0/16"), Protocol: profiles.ProtoTCP},
	}}
	users := []authn.User{
		{ID: "alice", Email: "alice@example.com", Groups: []string{"engineering"}},
		{ID: "bob", Email: "bob@example.com", Groups: []string{"engineering"}},
		{ID: "carol", Email: "carol@example.com"},
		{ID: "dave", Email: "dave@example.com", Groups: []string{"sales"}},
	}
	entitle := func(u authn.User, p *profiles.Profile) (bool, string, string) {
		via, ok := p.AssignedTo(u.Identity(), false)
		return ok, via, ""
	}
	rep, err := r.Entitlements(context.Background(), users, []profiles.Profile{eng, ops}, entitle, t0.Add(-time.Hour), t0.Add(24*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, row := range rep.Rows {
		got = append(got, fmt.Sprintf("%s via %s: %s#%d %d", row.User, row.Via, row.Profile, row.Rule, row.Flows))
	}
	want := []string{
		"alice via group engineering: eng#0 20", "alice via group engineering: eng#1 0", "alice via group engineering: eng#2 0",
		"bob via group engineering: eng#0 0", "bob via group engineering: eng#1 10", "bob via group engineering: eng#2 0",
		"carol via user: ops#0 0",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entitlements:\n got %q\nwant %q", got, want)
	}
	var unusedRules []string
	for _, row := range rep.UnusedRules {
		unusedRules = append(unusedRules, fmt.Sprintf("%s#%d %s", row.Profile, row.Rule, row.RuleText))
	}
	if want := []string{"eng#2 any 10.0.8.0/24", "ops#0 tcp 10.1.0.0/16"}; !reflect.DeepEqual(unusedRules, want) {
		t.Errorf("unused rules: %q, want %q", unusedRules, want)
	}
	rep, err = r.Entitlements(context.Background(), users, []profiles.Profile{eng, ops}, entitle, t0.Add(-time.Hour), t0.Add(24*time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(rep.Rows, func(r EntitlementRow) bool { return r.Flows > 0 }) || len(rep.Rows) != 5 {
		t.Errorf("unused: %+v", rep.Rows)
	}
}
