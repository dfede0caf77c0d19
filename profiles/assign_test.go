package profiles_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// An email in a profile's users list is a claim any IdP account can make:
// a second account claiming alice's email must not be given her profile.
// It assigns only when the IdP verified the email and the operator opted
// in; otherwise only user IDs and groups assign.
func TestEmailAssignmentTakeover(t *testing.T) {
	p := profiles.Profile{Name: "alice-only", Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.9.0.0/16")}},
		Users: []string{"alice@example.com", "https://idp.example.com#bob-sub"}}
	p.Normalize()
	alice := authn.Identity{UserID: authn.UserKey("https://idp.example.com", "alice-sub"), Email: "alice@example.com", EmailVerified: true}
	mallory := authn.Identity{UserID: authn.UserKey("https://idp.example.com", "mallory-sub"), Email: "Alice@Example.com"}
	bob := authn.Identity{UserID: authn.UserKey("https://idp.example.com", "bob-sub")}
	tests := []struct {
		name    string
		id      authn.Identity
		byEmail bool
		want    bool
	}{
		{"unverified email claim, opted in", mallory, true, false},
		{"unverified email claim, not opted in", mallory, false, false},
		{"verified email, not opted in", alice, false, false},
		{"verified email, opted in", alice, true, true},
		{"by user key", bob, false, true},
		{"the subject alone is not the key", authn.Identity{UserID: "bob-sub"}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, got := p.AssignedTo(tc.id, tc.byEmail); got != tc.want {
				t.Errorf("AssignedTo = %v, want %v", got, tc.want)
			}
		})
	}
}

// Through the store: an issuance by the claiming account is refused.
func TestIssueRefusesEmailClaim(t *testing.T) {
	e := newEnv(t, 1, "100.64.0.0/24")
	s := e.stores[0]
	if _, err := s.Put(ctx(t), profiles.Profile{Name: "alice-only", Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.9.0.0/16")}},
		Users: []string{"alice@example.com"}}, nil, admin); err != nil {
		t.Fatal(err)
	}
	mallory := authn.Session{ID: "s-mallory", Role: authn.RoleUser, Identity: authn.Identity{
		UserID: authn.UserKey("https://idp.example.com", "mallory-sub"), Email: "alice@example.com"}}
	if _, _, err := s.Issue(ctx(t), mallory, profiles.IssueRequest{PublicKey: pubkey(t), Device: "laptop"}); err == nil {
		t.Fatal("an account claiming alice's email was issued alice's profile")
	}
}

// People see email and name, never the opaque subject: not in the refusal
// of an issuance, not in the configuration's header.
func TestNoSubjectShownToPeople(t *testing.T) {
	e := newEnv(t, 1, "100.64.0.0/24")
	s := e.stores[0]
	const sub = "CiQwOGE4Njg0Yi1kYjg4"
	id := authn.Identity{UserID: authn.UserKey("https://dex.example.com", sub), Issuer: "https://dex.example.com", Subject: sub,
		Email: "alice@example.com", Name: "Alice"}
	_, _, err := s.Issue(ctx(t), authn.Session{ID: "s1", Role: authn.RoleUser, Identity: id}, profiles.IssueRequest{PublicKey: pubkey(t), Device: "laptop"})
	if err == nil || strings.Contains(err.Error(), sub) || !strings.Contains(err.Error(), "alice@example.com") {
		t.Errorf("no-profile refusal %q: want the email, not the subject", err)
	}
	e.putProfile(t, "eng", "engineering")
	id.Groups = []string{"engineering"}
	p, prof, err := s.Issue(ctx(t), authn.Session{ID: "s1", Role: authn.RoleUser, Identity: id}, profiles.IssueRequest{PublicKey: pubkey(t), Device: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	conf := profiles.RenderConfig(p, prof, profiles.Server{PublicKey: pubkey(t), Endpoint: "vpn.example.com:51820"}, "")
	if strings.Contains(conf, sub) || !strings.Contains(conf, "alice@example.com") {
		t.Errorf("config header shows the subject or not the email:\n%s", conf)
	}
}
