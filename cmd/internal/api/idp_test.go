package api_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ferryvpn/ferry/audit"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/signals"
	"github.com/ferryvpn/ferry/cmd/internal/api"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/profiles"
)

func TestIdPAdministration(t *testing.T) {
	s := apitest.Start(t)
	admin := clientFor(t, s, s.Admin(t))
	user := clientFor(t, s, s.Token(t, authn.Identity{UserID: "bob", Email: "bob@example.com"}))

	info, err := admin.IdP(bg(t))
	if err != nil || info.SCIMBaseURL != "/scim/v2" || info.SCIMTokenSet || info.Issuer != apitest.Issuer || info.BackChannelURL != "" {
		t.Fatalf("IdP = %+v, %v", info, err)
	}
	tok, err := admin.RotateSCIMToken(bg(t))
	if err != nil || !strings.HasPrefix(tok.Token, "ferry-scim-") {
		t.Fatalf("RotateSCIMToken = %+v, %v", tok, err)
	}
	if info, _ := admin.IdP(bg(t)); !info.SCIMTokenSet || info.SCIMRotatedBy != "admin" {
		t.Errorf("after rotation: %+v", info)
	}
	if _, err := user.RotateSCIMToken(bg(t)); status(err) != http.StatusForbidden {
		t.Errorf("a user rotated the SCIM token: %v", err)
	}
	if _, err := user.IdP(bg(t)); status(err) != http.StatusForbidden {
		t.Errorf("a user read the IdP settings: %v", err)
	}
}

// TestSignalsMounted: the receiver's endpoints answer through the API,
// POST only, without a session.
func TestSignalsMounted(t *testing.T) {
	s := apitest.Start(t)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"keys":[]}`)) }))
	t.Cleanup(jwks.Close)
	rcv, err := signals.New(signals.Config{
		Store: s.Cluster.Node(0), Users: s.Users, Sessions: s.Sessions, Revoker: s.Profiles, Recorder: s.Audit,
		Transmitter: &signals.Transmitter{Issuer: "https://ssf.example.com", JWKSURL: jwks.URL, Audience: "https://vpn.example.com", SubjectIssuer: apitest.Issuer},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Node: s.Cluster.Node(0), MasterKey: s.MasterKey, Users: &api.Users{
		Sessions: s.Sessions, Users: s.Users, MFA: s.MFA, Profiles: s.Profiles,
	}, IdP: &api.IdP{Signals: rcv, PublicURL: "https://vpn.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL+signals.PathSSFEvents, "application/secevent+jwt", strings.NewReader("not.a.set"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST %s: %d, want 400 from the receiver", signals.PathSSFEvents, resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + signals.PathSSFEvents)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", signals.PathSSFEvents, resp.StatusCode)
	}
	if resp, err := http.Post(srv.URL+signals.PathBackChannelLogout, "application/x-www-form-urlencoded", nil); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusNotFound {
		t.Errorf("back-channel logout served though not configured: %d", resp.StatusCode)
	}
}

// TestSETEndsRealAccess: Security Event Tokens through the API, with
// profiles as the revoker: session-revoked revokes the user's devices and
// ends their sessions; account-disabled disables the user.
func TestSETEndsRealAccess(t *testing.T) {
	s := apitest.Start(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	}))
	t.Cleanup(jwks.Close)
	const txIssuer, aud = "https://ssf.example.com", "https://vpn.example.com"
	rcv, err := signals.New(signals.Config{
		Store: s.Cluster.Node(0), Users: s.Users, Sessions: s.Sessions, Revoker: s.Profiles, Recorder: s.Audit,
		Transmitter: &signals.Transmitter{Issuer: txIssuer, JWKSURL: jwks.URL, Audience: aud, SubjectIssuer: apitest.Issuer},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Node: s.Cluster.Node(0), MasterKey: s.MasterKey, Users: &api.Users{
		Sessions: s.Sessions, Users: s.Users, MFA: s.MFA, Profiles: s.Profiles,
	}, IdP: &api.IdP{Signals: rcv}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if _, err := s.Profiles.Put(bg(t), profiles.Profile{Name: "eng", Groups: []string{"eng"},
		Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.20.0.0/16")}}}, nil, audit.Actor{UserID: "admin"}); err != nil {
		t.Fatal(err)
	}
	// Two people signed in, each with a device.
	type person struct {
		id   string
		tok  string
		peer string
	}
	var people []person
	for _, sub := range []string{"alice", "bob"} {
		id := authn.Identity{UserID: authn.UserKey(apitest.Issuer, sub), Issuer: apitest.Issuer, Subject: sub, Email: sub + "@example.com", Groups: []string{"eng"}}
		tok := s.Token(t, id)
		sess, err := s.Sessions.Validate(bg(t), authn.SessionToken(tok))
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := s.Profiles.Issue(bg(t), sess, profiles.IssueRequest{PublicKey: fakeKey(sub), Device: "laptop", Profile: "eng"})
		if err != nil {
			t.Fatal(err)
		}
		people = append(people, person{id: id.UserID, tok: tok, peer: p.ID})
	}
	push := func(event, sub string) {
		t.Helper()
		claims, _ := json.Marshal(map[string]any{
			"iss": txIssuer, "aud": aud, "iat": time.Now().Unix(), "jti": event + sub,
			"sub_id": map[string]any{"format": "iss_sub", "iss": apitest.Issuer, "sub": sub},
			"events": map[string]any{event: map[string]any{}},
		})
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("secevent+jwt").WithHeader("kid", "k1"))
		obj, _ := signer.Sign(claims)
		raw, _ := obj.CompactSerialize()
		resp, err := http.Post(srv.URL+signals.PathSSFEvents, "application/secevent+jwt", strings.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s for %s: %d", event, sub, resp.StatusCode)
		}
	}
	revoked := func(p person) bool {
		peer, err := s.Profiles.Peer(bg(t), p.peer)
		return err == nil && peer.Revoked != nil
	}
	sessionValid := func(p person) bool {
		_, err := s.Sessions.Validate(bg(t), authn.SessionToken(p.tok))
		return err == nil
	}

	push(signals.EventSessionRevoked, "alice")
	if !revoked(people[0]) || sessionValid(people[0]) {
		t.Error("session-revoked left alice's device or session")
	}
	if revoked(people[1]) || !sessionValid(people[1]) {
		t.Error("session-revoked for alice touched bob")
	}
	if u, _, _ := s.Users.Get(bg(t), people[0].id); u.Disabled {
		t.Error("session-revoked disabled alice")
	}

	push(signals.EventAccountDisabled, "bob")
	if !revoked(people[1]) || sessionValid(people[1]) {
		t.Error("account-disabled left bob's device or session")
	}
	if u, _, _ := s.Users.Get(bg(t), people[1].id); !u.Disabled {
		t.Error("account-disabled did not disable bob")
	}
}
