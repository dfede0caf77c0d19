package main

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// TestReportEntitlementsAt: `report entitlements --at TIME` answers from
// the journal's history, not the current state: a profile edited (a rule
// added, a group removed), a user disabled, and the report asked for a
// time before and after each change. Users come from their sign-ins'
// audit records (recorded here as the sign-in flow records them).
func TestReportEntitlementsAt(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	ctx := t.Context()
	signedIn := func(user string, groups ...string) {
		t.Helper()
		if _, err := srv.Users.Upsert(ctx, authn.Identity{UserID: user, Email: user + "@example.com", Groups: groups}); err != nil {
			t.Fatal(err)
		}
		if err := srv.Audit.Record(ctx, audit.Event{Type: audit.TypeLogin, Action: "login.code", Outcome: audit.Success,
			Actor: audit.Actor{UserID: user, Email: user + "@example.com", Groups: groups}}); err != nil {
			t.Fatal(err)
		}
	}
	signedIn("alice", "engineering")
	signedIn("bob", "engineering", "ops")
	mustCtl(t, "profile", "create", "eng", "--rule", "10.0.4.0/24 tcp 5432", "--group", "engineering")
	mustCtl(t, "profile", "create", "ops", "--rule", "10.9.0.0/16 tcp 22", "--group", "ops")
	t1 := time.Now()
	mustCtl(t, "profile", "edit", "eng", "--add-rule", "10.0.8.0/24 tcp 22")
	mustCtl(t, "profile", "edit", "ops", "--group", "sre")
	t2 := time.Now()
	mustCtl(t, "user", "disable", "alice")
	t3 := time.Now()

	rows := func(at time.Time) []string {
		t.Helper()
		var rep wire.EntitlementsReport
		ctlJSON(t, &rep, "report", "entitlements", "--at", at.UTC().Format(time.RFC3339Nano))
		if !rep.At.Equal(at.UTC()) {
			t.Errorf("report at %s names %s", at, rep.At)
		}
		var out []string
		for _, r := range rep.Rows {
			out = append(out, fmt.Sprintf("%s %s#%d %s", r.User, r.Profile, r.Rule, r.RuleText))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		at   time.Time
		want []string
	}{
		{"before the edits", t1, []string{"alice eng#0 tcp 10.0.4.0/24 5432", "bob eng#0 tcp 10.0.4.0/24 5432", "bob ops#0 tcp 10.9.0.0/16 22"}},
		{"after the edits", t2, []string{"alice eng#0 tcp 10.0.4.0/24 5432", "alice eng#1 tcp 10.0.8.0/24 22",
			"bob eng#0 tcp 10.0.4.0/24 5432", "bob eng#1 tcp 10.0.8.0/24 22"}},
		{"after alice was disabled", t3, []string{"bob eng#0 tcp 10.0.4.0/24 5432", "bob eng#1 tcp 10.0.8.0/24 22"}},
	} {
		if got := rows(tc.at); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
	// Before anything was recorded: nobody could reach anything.
	if got := rows(t1.Add(-time.Hour)); len(got) != 0 {
		t.Errorf("an hour before: %q", got)
	}
}
