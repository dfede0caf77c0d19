package authn_test

import (
	"crypto/rsa"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
)

// sessionToken signs user in through the browser flow and returns the
// session token the browser got.
func sessionToken(t *testing.T, e *flowtest.Env, user string) authn.SessionToken {
	t.Helper()
	res, err := e.NewBrowser().SignIn(e.URLOf(authn.PathLogin), user, user)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range (&http.Response{Header: res.Final.Header}).Cookies() {
		if c.Name == authn.SessionCookie {
			return authn.SessionToken(c.Value)
		}
	}
	t.Fatal("no session cookie")
	return ""
}

func revalidate(t *testing.T, e *flowtest.Env, node int) authn.RevalidateReport {
	t.Helper()
	rep, err := e.Revalidators[node].RunOnce(t.Context())
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	return rep
}

// The refresh token of a sign-in is kept and redeemed every interval: a
// group removed at the identity provider reaches the user record and the
// live session within one revalidation; a user disabled there
// (invalid_grant) is suspended, which ends their sessions.
func TestRevalidation(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{Revalidate: true})
	ctx := t.Context()
	tok := sessionToken(t, e, "demo")
	uid := e.UserID("devop-demo")
	if s, err := e.Sessions[0].Validate(ctx, tok); err != nil || s.Role != authn.RoleAdmin {
		t.Fatalf("session = %+v, %v", s, err)
	}
	// Not due yet: nothing happens.
	if rep := revalidate(t, e, 1); rep != (authn.RevalidateReport{}) {
		t.Fatalf("early round: %+v", rep)
	}

	// The OP drops the admin group; one interval later the user record,
	// and with it the live session, has lost it.
	if err := e.OP.SetGroups("demo", []string{"engineering"}); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(authn.DefaultRevalidateInterval)
	if rep := revalidate(t, e, 1); rep.OK != 1 {
		t.Fatalf("round: %+v", rep)
	}
	u, _, _ := e.Users[2].Get(ctx, uid)
	if strings.Join(u.Groups, ",") != "engineering" || u.Change == nil || !strings.Contains(u.Change.What, "removed: ferry-admins") {
		t.Fatalf("user after revalidation: %+v", u)
	}
	if s, err := e.Sessions[2].Validate(ctx, tok); err != nil || s.Role != authn.RoleUser {
		t.Fatalf("session after the admin group was removed: role %q, %v; want user", s.Role, err)
	}
	// A second node running the same round finds nothing due: no token is
	// redeemed twice (the OP rotates them).
	if rep := revalidate(t, e, 0); rep != (authn.RevalidateReport{}) {
		t.Fatalf("second node's round: %+v", rep)
	}

	// Disabled at the OP: invalid_grant suspends the user.
	if err := e.OP.SetDisabled("demo", true); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(authn.DefaultRevalidateInterval)
	if rep := revalidate(t, e, 2); rep.Refused != 1 || rep.Suspended != 1 {
		t.Fatalf("round: %+v", rep)
	}
	u, _, _ = e.Users[0].Get(ctx, uid)
	if u.Suspended == "" {
		t.Fatalf("user after invalid_grant: %+v", u)
	}
	if _, err := e.Sessions[1].Validate(ctx, tok); !errors.Is(err, authn.ErrSessionInvalid) {
		t.Fatalf("session after invalid_grant: %v", err)
	}
	if evs := e.Recorder.Filter(func(ev audit.Event) bool {
		return ev.Action == authn.ActionRevalidate && ev.Outcome == audit.Failure && strings.Contains(ev.Reason, "invalid_grant")
	}); len(evs) != 1 {
		t.Errorf("audited invalid_grant: %d events", len(evs))
	}
	// Enabled again at the OP, a fresh sign-in lifts the suspension.
	if err := e.OP.SetDisabled("demo", false); err != nil {
		t.Fatal(err)
	}
	tok2 := sessionToken(t, e, "demo")
	if _, err := e.Sessions[0].Validate(ctx, tok2); err != nil {
		t.Fatalf("session after signing in again: %v", err)
	}
}

// With the provider unreachable, access is kept for the grace, then the
// user is suspended (fail closed); each round is audited.
func TestRevalidationUnreachable(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{Revalidate: true})
	ctx := t.Context()
	tok := sessionToken(t, e, "alice")
	e.SetOPDown(true)
	e.Clock.Advance(authn.DefaultRevalidateInterval)
	if rep := revalidate(t, e, 0); rep.Unreachable != 1 || rep.Suspended != 0 {
		t.Fatalf("first failing round: %+v", rep)
	}
	if _, err := e.Sessions[0].Validate(ctx, tok); err != nil {
		t.Fatalf("session within the grace: %v", err)
	}
	for elapsed := time.Duration(0); elapsed < authn.DefaultRevalidateGrace; elapsed += authn.DefaultRevalidateInterval {
		e.Clock.Advance(authn.DefaultRevalidateInterval)
		revalidate(t, e, 0)
	}
	if _, err := e.Sessions[1].Validate(ctx, tok); !errors.Is(err, authn.ErrSessionInvalid) {
		t.Fatalf("session past the grace: %v, want refused", err)
	}
	if evs := e.Recorder.Filter(func(ev audit.Event) bool {
		return ev.Action == authn.ActionRevalidate && strings.Contains(ev.Reason, "within the grace")
	}); len(evs) < 1 {
		t.Error("no audited round within the grace")
	}
	// The provider is back: the next round succeeds and lifts the
	// suspension it caused.
	e.SetOPDown(false)
	e.Clock.Advance(authn.DefaultRevalidateInterval)
	if rep := revalidate(t, e, 0); rep.OK != 1 {
		t.Fatalf("round after the provider came back: %+v", rep)
	}
	u, _, _ := e.Users[0].Get(ctx, e.UserID("devop-alice"))
	if u.Suspended != "" {
		t.Errorf("still suspended: %+v", u)
	}
}

// With required_groups, a user removed from them at the IdP is refused at
// the next sign-in; the refusal updates her stored groups, so her live
// session is refused too (and the entitlement watcher revokes her devices).
func TestRequiredGroupsRefusalUpdatesUser(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{RequiredGroups: []string{"engineering"}})
	ctx := t.Context()
	tok := sessionToken(t, e, "alice")
	if err := e.OP.SetGroups("alice", []string{"sales"}); err != nil {
		t.Fatal(err)
	}
	b := e.NewBrowser()
	authURL, err := b.StartLogin(e.URLOf(authn.PathLogin))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.IdPLogin(authURL, "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := b.Get(cb); err != nil || p.Status != http.StatusForbidden {
		t.Fatalf("sign-in outside the required groups: %v %+v", err, p)
	}
	u, _, _ := e.Users[1].Get(ctx, e.UserID("devop-alice"))
	if strings.Join(u.Groups, ",") != "sales" || u.Change == nil || !strings.Contains(u.Change.What, "refused sign-in") {
		t.Fatalf("stored user after the refusal: %+v", u)
	}
	if _, err := e.Sessions[2].Validate(ctx, tok); !errors.Is(err, authn.ErrSessionInvalid) {
		t.Fatalf("earlier session after the refusal: %v, want refused", err)
	}
}

// A provider that sends no ID token on refresh is asked at its userinfo
// endpoint; the groups there go through the same path.
func TestRevalidationByUserinfo(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{Revalidate: true})
	ctx := t.Context()
	tok := sessionToken(t, e, "demo")
	e.SetRewrite(func(map[string]any) (map[string]any, *rsa.PrivateKey, string) { return nil, nil, "" })
	if err := e.OP.SetGroups("demo", []string{"engineering"}); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(authn.DefaultRevalidateInterval)
	if rep := revalidate(t, e, 0); rep.OK != 1 {
		t.Fatalf("round: %+v", rep)
	}
	if s, err := e.Sessions[1].Validate(ctx, tok); err != nil || s.Role != authn.RoleUser {
		t.Fatalf("session after userinfo said the admin group is gone: role %q, %v", s.Role, err)
	}
}

// A revalidation records the groups the identity provider gave exactly,
// a group whose name holds a comma included (report's entitlements --at
// reads them back); they used to be comma-joined, which split that group
// in two.
func TestRevalidationRecordsGroupsExactly(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{Revalidate: true})
	sessionToken(t, e, "demo")
	want := []string{"engineering, emea", "ops"}
	if err := e.OP.SetGroups("demo", want); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(authn.DefaultRevalidateInterval)
	if rep := revalidate(t, e, 0); rep.OK != 1 {
		t.Fatalf("round: %+v", rep)
	}
	evs := e.Recorder.Filter(func(ev audit.Event) bool {
		return ev.Action == authn.ActionRevalidate && ev.Outcome == audit.Success
	})
	if len(evs) != 1 {
		t.Fatalf("%d successful revalidation events, want 1", len(evs))
	}
	if got, known := authn.RevalidatedGroups(&evs[0]); !known || !slices.Equal(got, want) {
		t.Errorf("recorded groups %q (known %v), want %q", got, known, want)
	}
	// A record of an earlier version, comma-joined, still reads.
	legacy := audit.Event{Action: authn.ActionRevalidate, Outcome: audit.Success, Details: map[string]string{"groups": "a,b"}}
	if got, known := authn.RevalidatedGroups(&legacy); !known || !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("legacy record: %q (known %v)", got, known)
	}
}
