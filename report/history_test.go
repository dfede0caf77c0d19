package report

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// A profile changed before profile events carried its rules is named as
// unknown at a time it was in force, not silently left out; deleted, it
// is gone.
func TestEntitlementsAtUnknownProfile(t *testing.T) {
	j := &memJournal{}
	j.add(t, audit.Event{ID: "p1", Time: t0, Type: audit.TypeProfileChange, Action: "profile.put", Outcome: audit.Success,
		Target: audit.Target{Profile: "legacy"}, PolicyVersion: 3})
	j.add(t, audit.Event{ID: "p2", Time: t0.Add(2 * time.Hour), Type: audit.TypeProfileChange, Action: "profile.delete", Outcome: audit.Success,
		Target: audit.Target{Profile: "legacy"}, PolicyVersion: 4})
	r := openRollup(t, j, filepath.Join(t.TempDir(), "r.db"))
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	entitle := func(authn.User, *profiles.Profile) (bool, string, string) { return true, "user", "" }
	for _, tc := range []struct {
		at   time.Time
		want []string
	}{{t0.Add(time.Hour), []string{"legacy"}}, {t0.Add(3 * time.Hour), []string{}}} {
		rep, err := r.EntitlementsAt(context.Background(), tc.at, nil, entitle, time.Time{}, time.Time{}, false)
		if err != nil || !reflect.DeepEqual(rep.Unknown, tc.want) {
			t.Errorf("at %s: unknown %q, %v; want %q", tc.at, rep.Unknown, err, tc.want)
		}
	}
}

// provisioned returns the user.provision event authn records when a user
// record is created or regrouped without a sign-in (SCIM, revalidation).
func provisioned(id string, at time.Time, user, email string, groups ...string) audit.Event {
	b, _ := json.Marshal(append([]string{}, groups...))
	return audit.Event{ID: id, Time: at, Type: audit.TypeAdmin, Action: authn.ActionProvision, Outcome: audit.Success,
		Actor: audit.Actor{UserID: "identity provider https://idp.example.com", Role: "idp"}, Target: audit.Target{User: user},
		Details: map[string]string{"via": "SCIM", "email": email, "groups.00": string(b)}}
}

// historyFixture: a profile for group A, alice signed in with groups A,
// then the identity provider (SCIM) took A away at t1 without a sign-in.
func historyFixture(t *testing.T, extra ...audit.Event) (*Rollup, time.Time) {
	t.Helper()
	j := &memJournal{}
	prof := profiles.Profile{Name: "pa", Groups: []string{"A"}, Rules: []profiles.Rule{
		{CIDR: netip.MustParsePrefix("10.0.4.0/24"), Protocol: profiles.ProtoTCP, Ports: []profiles.PortRange{{From: 5432, To: 5432}}},
	}}
	j.add(t, profileEv(t, "p1", t0, prof))
	j.add(t, audit.Event{ID: "l1", Time: t0.Add(time.Minute), Type: audit.TypeLogin, Action: authn.ActionLoginOIDC, Outcome: audit.Success,
		Actor: audit.Actor{UserID: "alice", Email: "alice@example.com", Groups: []string{"A"}}, Target: audit.Target{User: "alice"}})
	t1 := t0.Add(time.Hour)
	j.add(t, provisioned("s1", t1, "alice", "alice@example.com"))
	j.add(t, audit.Event{ID: "s2", Time: t1.Add(time.Millisecond), Type: audit.TypeAdmin, Action: "scim.group.patch", Outcome: audit.Success,
		Actor: audit.Actor{UserID: "scim", Role: "provisioner"}})
	j.add(t, extra...)
	r := openRollup(t, j, filepath.Join(t.TempDir(), "r.db"))
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, t1
}

func profileEv(t testing.TB, id string, at time.Time, p profiles.Profile) audit.Event {
	t.Helper()
	spec, err := json.Marshal(struct {
		Rules  []profiles.Rule `json:"rules"`
		Groups []string        `json:"groups,omitempty"`
		Users  []string        `json:"users,omitempty"`
	}{p.Rules, p.Groups, p.Users})
	if err != nil {
		t.Fatal(err)
	}
	e := audit.Event{ID: id, Time: at, Type: audit.TypeProfileChange, Action: "profile.put", Outcome: audit.Success,
		Target: audit.Target{Profile: p.Name}, PolicyVersion: 1, Details: map[string]string{"spec.00": string(spec)}}
	if _, ok := profiles.ProfileFromChange(&e); !ok {
		t.Fatal("profile event not understood")
	}
	return e
}

func entitleByGroup(u authn.User, p *profiles.Profile) (bool, string, string) {
	if u.Disabled || u.Suspended != "" {
		return false, "", "disabled or suspended"
	}
	via, ok := p.AssignedTo(u.Identity(), false)
	return ok, via, ""
}

func rowsAt(t *testing.T, r *Rollup, at time.Time, current ...authn.User) (rows []string, unknownUsers []string) {
	t.Helper()
	rep, err := r.EntitlementsAt(context.Background(), at, current, entitleByGroup, time.Time{}, time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rep.Rows {
		rows = append(rows, fmt.Sprintf("%s %s via %s", row.User, row.Profile, row.Via))
	}
	return rows, rep.UnknownUsers
}

// TestEntitlementsAtSCIMGroupChange: a group the identity provider took
// away between two sign-ins (SCIM) is gone from the entitlements after
// the push, and there before it.
func TestEntitlementsAtSCIMGroupChange(t *testing.T) {
	r, t1 := historyFixture(t)
	if got, _ := rowsAt(t, r, t1.Add(-time.Second)); !reflect.DeepEqual(got, []string{"alice pa via group A"}) {
		t.Errorf("before the SCIM change: %q, want alice via group A", got)
	}
	if got, _ := rowsAt(t, r, t1.Add(time.Second)); len(got) != 0 {
		t.Errorf("after SCIM removed group A: %q, want nothing", got)
	}
}

// TestEntitlementsAtNeverSignedIn: a user the identity provider
// provisioned (SCIM) who never signed in holds what their groups give
// from their provisioning on; one the journal shows to exist without
// their groups, or a user record the journal does not show at all, is
// named unknown, not silently left out; a user deactivated at
// provisioning holds nothing.
func TestEntitlementsAtNeverSignedIn(t *testing.T) {
	t2 := t0.Add(2 * time.Hour)
	r, _ := historyFixture(t,
		provisioned("c1", t2, "carol", "carol@example.com", "A"),
		// dave: a SCIM create recorded before user.provision events.
		audit.Event{ID: "d1", Time: t2, Type: audit.TypeAdmin, Action: "scim.user.create", Outcome: audit.Success,
			Actor: audit.Actor{UserID: "scim", Role: "provisioner"}, Target: audit.Target{User: "dave"}},
		// erin: provisioned inactive (disabled), then her record.
		audit.Event{ID: "e1", Time: t2, Type: audit.TypeUserDisable, Outcome: audit.Success, Target: audit.Target{User: "erin"}},
		provisioned("e2", t2.Add(time.Millisecond), "erin", "erin@example.com", "A"),
	)
	frank := authn.User{ID: "frank", Groups: []string{"A"}, Created: t0.Add(-24 * time.Hour)}
	late := authn.User{ID: "gina", Groups: []string{"A"}, Created: t2.Add(time.Hour)}
	rows, unknown := rowsAt(t, r, t2.Add(time.Second), frank, late)
	if want := []string{"carol pa via group A"}; !reflect.DeepEqual(rows, want) {
		t.Errorf("after provisioning: %q, want %q", rows, want)
	}
	if want := []string{"dave", "frank"}; !reflect.DeepEqual(unknown, want) {
		t.Errorf("unknown users %q, want %q", unknown, want)
	}
	rows, unknown = rowsAt(t, r, t2.Add(-time.Second), frank, late)
	if len(rows) != 0 || !reflect.DeepEqual(unknown, []string{"frank"}) {
		t.Errorf("before provisioning: rows %q, unknown %q; want none, [frank]", rows, unknown)
	}
}

// TestEntitlementsAtIgnoresOtherActors: events whose actor is not the
// user signing in (a lockout cleared by an administrator, a logout) and
// a revalidation say nothing that wipes a user's groups; a revalidation's
// groups count.
func TestEntitlementsAtIgnoresOtherActors(t *testing.T) {
	t2 := t0.Add(2 * time.Hour)
	r, _ := historyFixture(t,
		audit.Event{ID: "b1", Time: t2, Type: audit.TypeLogin, Action: authn.ActionLoginOIDC, Outcome: audit.Success,
			Actor: audit.Actor{UserID: "bob", Groups: []string{"A"}}, Target: audit.Target{User: "bob"}},
		audit.Event{ID: "b2", Time: t2.Add(time.Second), Type: audit.TypeLockout, Action: authn.ActionUnlock, Outcome: audit.Success,
			Actor: audit.Actor{UserID: "bob"}, Target: audit.Target{User: "mallory"}},
		audit.Event{ID: "b3", Time: t2.Add(2 * time.Second), Type: audit.TypeLogout, Outcome: audit.Success,
			Actor: audit.Actor{UserID: "bob"}, Target: audit.Target{User: "bob"}},
		audit.Event{ID: "a1", Time: t2.Add(3 * time.Second), Type: audit.TypeLogin, Action: authn.ActionRevalidate, Outcome: audit.Success,
			Actor: audit.Actor{UserID: "alice", Email: "alice@example.com"}, Target: audit.Target{User: "alice"}, Details: map[string]string{"groups": "B,A"}},
	)
	if got, _ := rowsAt(t, r, t2.Add(time.Minute)); !reflect.DeepEqual(got, []string{"alice pa via group A", "bob pa via group A"}) {
		t.Errorf("rows %q, want alice (revalidated into A) and bob", got)
	}
}

// TestEntitlementsAtRevalidationSuspends: a revalidation the identity
// provider refused (invalid_grant) suspends the user without a sign-in —
// they hold nothing from then — until they sign in again; one that found
// the provider unreachable past the grace, until a revalidation succeeds.
func TestEntitlementsAtRevalidationSuspends(t *testing.T) {
	t2 := t0.Add(2 * time.Hour)
	reval := func(id string, at time.Time, outcome audit.Outcome, reason string) audit.Event {
		e := audit.Event{ID: id, Time: at, Type: audit.TypeLogin, Action: authn.ActionRevalidate, Outcome: outcome, Reason: reason,
			Actor: audit.Actor{UserID: "bob"}, Target: audit.Target{User: "bob"}}
		if outcome == audit.Success {
			e.Details = map[string]string{"groups": "A"}
		}
		return e
	}
	r, _ := historyFixture(t,
		audit.Event{ID: "b1", Time: t2, Type: audit.TypeLogin, Action: authn.ActionLoginOIDC, Outcome: audit.Success,
			Actor: audit.Actor{UserID: "bob", Groups: []string{"A"}}, Target: audit.Target{User: "bob"}},
		reval("b2", t2.Add(time.Hour), audit.Failure, authn.ReasonRevalidateRevoked),
		reval("b3", t2.Add(90*time.Minute), audit.Failure, "identity provider unreachable: access kept within the grace"),
		audit.Event{ID: "b4", Time: t2.Add(2 * time.Hour), Type: audit.TypeLogin, Action: authn.ActionLoginOIDC, Outcome: audit.Success,
			Actor: audit.Actor{UserID: "bob", Groups: []string{"A"}}, Target: audit.Target{User: "bob"}},
		reval("b5", t2.Add(3*time.Hour), audit.Failure, authn.ReasonRevalidateFailClosed),
		reval("b6", t2.Add(4*time.Hour), audit.Success, ""),
	)
	bob := []string{"bob pa via group A"}
	for _, tc := range []struct {
		name string
		at   time.Time
		want []string
	}{
		{"signed in", t2.Add(time.Minute), bob},
		{"refused by the provider", t2.Add(61 * time.Minute), nil},
		{"still refused (a failure within the grace changes nothing)", t2.Add(91 * time.Minute), nil},
		{"signed in again", t2.Add(121 * time.Minute), bob},
		{"provider unreachable past the grace", t2.Add(181 * time.Minute), nil},
		{"revalidated", t2.Add(241 * time.Minute), bob},
	} {
		if got, unknown := rowsAt(t, r, tc.at); !reflect.DeepEqual(got, tc.want) || len(unknown) != 0 {
			t.Errorf("%s: %q (unknown %q), want %q", tc.name, got, unknown, tc.want)
		}
	}
}

// TestEntitlementsAtVerifiedEmail: a profile assigned by email holds at a
// past time only for a user whose email the identity provider had
// verified then (as issuance decides), whether the user was provisioned
// or signed in; sign-in steps that do not say keep it verified.
func TestEntitlementsAtVerifiedEmail(t *testing.T) {
	t2 := t0.Add(2 * time.Hour)
	pe := profiles.Profile{Name: "pe", Users: []string{"carol@example.com", "dave@example.com", "erin@example.com"}, Rules: []profiles.Rule{
		{CIDR: netip.MustParsePrefix("10.0.5.0/24"), Protocol: profiles.ProtoTCP},
	}}
	verified := func(e audit.Event, v string) audit.Event {
		e.Details["email_verified"] = v
		return e
	}
	signin := func(id string, at time.Time, action string, details map[string]string) audit.Event {
		return audit.Event{ID: id, Time: at, Type: audit.TypeLogin, Action: action, Outcome: audit.Success,
			Actor: audit.Actor{UserID: "erin", Email: "erin@example.com"}, Target: audit.Target{User: "erin"}, Details: details}
	}
	r, _ := historyFixture(t,
		profileEv(t, "pe1", t2, pe),
		verified(provisioned("c1", t2, "carol", "carol@example.com"), "true"),
		verified(provisioned("d1", t2, "dave", "dave@example.com"), "false"),
		signin("e1", t2, authn.ActionLoginOIDC, map[string]string{"email_verified": "true"}),
		signin("e2", t2.Add(time.Second), authn.ActionLoginCode, nil),
	)
	rep, err := r.EntitlementsAt(context.Background(), t2.Add(time.Minute), nil, func(u authn.User, p *profiles.Profile) (bool, string, string) {
		via, ok := p.AssignedTo(u.Identity(), true)
		return ok, via, ""
	}, time.Time{}, time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, row := range rep.Rows {
		if row.Profile == "pe" {
			got = append(got, row.User+" via "+row.Via)
		}
	}
	if want := []string{"carol via email", "erin via email"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
}
