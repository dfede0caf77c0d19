package authn_test

import (
	"testing"

	"github.com/ferryvpn/ferry/authn"
)

func TestUserKey(t *testing.T) {
	k := authn.UserKey("https://idp.example.com/oauth2", "00u1#x")
	iss, sub, ok := authn.SplitUserKey(k)
	if !ok || iss != "https://idp.example.com/oauth2" || sub != "00u1#x" {
		t.Errorf("SplitUserKey(%q) = %q, %q, %v", k, iss, sub, ok)
	}
	if _, _, ok := authn.SplitUserKey("CiQwOGE4"); ok {
		t.Error("a bare subject split as a key")
	}
}

// Users are keyed by (issuer, subject); a record stored under the bare
// subject before is claimed, keeping its ID, by the first sign-in of that
// subject, and by no other issuer afterwards.
func TestUsersKeyedByIssuerSubject(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	const iss, other = "https://idp.example.com", "https://other.example.com"

	u, err := e.users[0].Upsert(ctx, authn.Identity{Issuer: iss, Subject: "alice-sub", Email: "alice@example.com", EmailVerified: true})
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != authn.UserKey(iss, "alice-sub") || u.Issuer != iss || u.Subject != "alice-sub" || !u.EmailVerified {
		t.Errorf("new user = %+v", u)
	}
	// The same subject at another issuer is another person.
	u2, err := e.users[1].Upsert(ctx, authn.Identity{Issuer: other, Subject: "alice-sub", Email: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if u2.ID == u.ID {
		t.Errorf("two issuers' subjects share the user %q", u.ID)
	}

	// A legacy record (ID = bare subject, no issuer) stays readable...
	if _, err := e.users[0].Upsert(ctx, authn.Identity{UserID: "bob-sub", Email: "bob@example.com"}); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := e.users[2].Get(ctx, "bob-sub"); err != nil || !ok || got.Email != "bob@example.com" {
		t.Fatalf("legacy Get = %+v, %v, %v", got, ok, err)
	}
	// ...and is claimed by the configured issuer's sign-in, keeping its ID.
	b, err := e.users[1].Upsert(ctx, authn.Identity{Issuer: iss, Subject: "bob-sub", Email: "bob@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if b.ID != "bob-sub" || b.Issuer != iss {
		t.Errorf("claimed legacy user = %+v", b)
	}
	// Once claimed, another issuer's same subject does not reach it.
	b2, err := e.users[0].Upsert(ctx, authn.Identity{Issuer: other, Subject: "bob-sub"})
	if err != nil {
		t.Fatal(err)
	}
	if b2.ID == "bob-sub" {
		t.Error("another issuer's subject took over a claimed legacy record")
	}
}
