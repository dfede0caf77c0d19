package api_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

func clientFor(t *testing.T, s *apitest.Server, token string) *client.Client {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := client.New(client.Config{BaseURL: s.URL, TLS: &tls.Config{RootCAs: pool}, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func status(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func bg(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var engProfile = wire.Profile{
	Name:   "eng",
	Rules:  []wire.Rule{{CIDR: "10.20.0.0/16", Protocol: "tcp", Ports: []string{"22", "8000-8080"}}},
	Groups: []string{"engineering"},
}

func TestUserAPIAuthorization(t *testing.T) {
	s := apitest.Start(t)
	admin := clientFor(t, s, s.Admin(t))
	alice := clientFor(t, s, s.Token(t, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"engineering"}}))
	bob := clientFor(t, s, s.Token(t, authn.Identity{UserID: "bob", Groups: []string{"sales"}}))
	anon := clientFor(t, s, "")
	forged := clientFor(t, s, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")

	if _, err := admin.CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateProfile(bg(t), wire.Profile{Name: "sales", Rules: []wire.Rule{{CIDR: "10.99.0.0/16", Protocol: "any"}}, Groups: []string{"sales"}}); err != nil {
		t.Fatal(err)
	}
	// Unauthenticated and forged callers get 401 everywhere.
	for name, c := range map[string]*client.Client{"anonymous": anon, "forged token": forged} {
		if _, err := c.Me(bg(t)); status(err) != http.StatusUnauthorized {
			t.Fatalf("%s: Me: %v", name, err)
		}
		if _, err := c.Profiles(bg(t), false); status(err) != http.StatusUnauthorized {
			t.Fatalf("%s: Profiles: %v", name, err)
		}
	}
	// Every admin call refuses a non-admin session.
	adminCalls := map[string]func(*client.Client) error{
		"create profile": func(c *client.Client) error { _, err := c.CreateProfile(bg(t), wire.Profile{Name: "x"}); return err },
		"update profile": func(c *client.Client) error { _, err := c.UpdateProfile(bg(t), engProfile, 1); return err },
		"delete profile": func(c *client.Client) error { return c.DeleteProfile(bg(t), "eng") },
		"apply":          func(c *client.Client) error { _, err := c.ApplyProfiles(bg(t), "profiles: []", true); return err },
		"all profiles":   func(c *client.Client) error { _, err := c.Profiles(bg(t), true); return err },
		"users":          func(c *client.Client) error { _, err := c.Users(bg(t)); return err },
		"user":           func(c *client.Client) error { _, err := c.User(bg(t), "bob"); return err },
		"disable":        func(c *client.Client) error { _, err := c.DisableUser(bg(t), "bob"); return err },
		"enable":         func(c *client.Client) error { _, err := c.EnableUser(bg(t), "bob"); return err },
		"reset mfa":      func(c *client.Client) error { _, err := c.ResetMFA(bg(t), "bob"); return err },
		"sessions":       func(c *client.Client) error { _, err := c.Sessions(bg(t), ""); return err },
		"kill session":   func(c *client.Client) error { return c.KillSession(bg(t), "whatever") },
		"others' peers":  func(c *client.Client) error { _, err := c.Peers(bg(t), client.PeerFilter{User: "bob"}); return err },
	}
	for name, call := range adminCalls {
		if err := call(alice); status(err) != http.StatusForbidden {
			t.Errorf("%s as a non-admin: got %v, want 403", name, err)
		}
	}

	// Alice sees only her profiles and cannot obtain another group's.
	ps, err := alice.Profiles(bg(t), false)
	if err != nil || len(ps) != 1 || ps[0].Name != "eng" {
		t.Fatalf("alice's profiles: %+v %v", ps, err)
	}
	if _, err := alice.Profile(bg(t), "sales"); status(err) != http.StatusNotFound {
		t.Fatalf("another group's profile: %v", err)
	}
	if _, err := alice.Issue(bg(t), wire.IssueRequest{PublicKey: "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=", Device: "laptop", Profile: "sales"}); status(err) != http.StatusForbidden {
		t.Fatalf("issuing another group's profile: %v", err)
	}
	// Issue, list and revoke her own device; bob cannot see or revoke it.
	res, err := alice.Issue(bg(t), wire.IssueRequest{PublicKey: "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=", Device: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Config, "PersistentKeepalive = 25") || strings.Contains(res.Config, "PrivateKey") || res.Peer.State != "active" {
		t.Fatalf("issued %+v with config:\n%s", res.Peer, res.Config)
	}
	if _, err := bob.Peer(bg(t), res.Peer.ID); status(err) != http.StatusNotFound {
		t.Fatalf("bob reading alice's peer: %v", err)
	}
	if err := bob.RevokePeer(bg(t), res.Peer.ID, ""); status(err) != http.StatusNotFound {
		t.Fatalf("bob revoking alice's peer: %v", err)
	}
	if peers, err := bob.Peers(bg(t), client.PeerFilter{}); err != nil || len(peers) != 0 {
		t.Fatalf("bob's peer list: %+v %v", peers, err)
	}
	if peers, err := alice.Peers(bg(t), client.PeerFilter{}); err != nil || len(peers) != 1 {
		t.Fatalf("alice's peer list: %+v %v", peers, err)
	}
	if err := alice.RevokePeer(bg(t), res.Peer.ID, "lost"); err != nil {
		t.Fatal(err)
	}
	if err := alice.RevokePeer(bg(t), res.Peer.ID, "again"); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	if p, err := alice.Peer(bg(t), res.Peer.ID); err != nil || p.State != "revoked" {
		t.Fatalf("after revoke: %+v %v", p, err)
	}
}

func TestDisableUserEndsEverything(t *testing.T) {
	s := apitest.Start(t)
	admin := clientFor(t, s, s.Admin(t))
	aliceTok := s.Token(t, authn.Identity{UserID: "alice", Groups: []string{"engineering"}})
	alice := clientFor(t, s, aliceTok)
	if _, err := admin.CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	res, err := alice.Issue(bg(t), wire.IssueRequest{PublicKey: "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=", Device: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := admin.DisableUser(bg(t), "alice")
	if err != nil || !u.Disabled {
		t.Fatalf("disable: %+v %v", u, err)
	}
	if _, err := alice.Me(bg(t)); status(err) != http.StatusUnauthorized {
		t.Fatalf("disabled user's session: %v", err)
	}
	if p, err := admin.Peer(bg(t), res.Peer.ID); err != nil || p.State != "revoked" {
		t.Fatalf("disabled user's peer: %+v %v", p, err)
	}
	// Revoking by profile and by user reaches every matching device.
	bobTok := s.Token(t, authn.Identity{UserID: "bob", Groups: []string{"engineering"}})
	bob := clientFor(t, s, bobTok)
	for _, dev := range []string{"a", "b"} {
		if _, err := bob.Issue(bg(t), wire.IssueRequest{PublicKey: fakeKey(dev), Device: dev}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.RevokeAll(bg(t), "bob", "", ""); status(err) != http.StatusForbidden {
		t.Fatalf("bulk revoke as a non-admin: %v", err)
	}
	if _, err := admin.RevokeAll(bg(t), "", "", ""); status(err) != http.StatusBadRequest {
		t.Fatalf("bulk revoke without a selector: %v", err)
	}
	if n, err := admin.RevokeAll(bg(t), "", "eng", "profile retired"); err != nil || n != 2 {
		t.Fatalf("revoke by profile: %d %v", n, err)
	}
	if _, err := bob.Issue(bg(t), wire.IssueRequest{PublicKey: fakeKey("c"), Device: "c"}); err != nil {
		t.Fatal(err)
	}
	if n, err := admin.RevokeAll(bg(t), "bob", "", ""); err != nil || n != 1 {
		t.Fatalf("revoke by user: %d %v", n, err)
	}
	// Administrators may name a user by email address, as ferryctl's help
	// shows; a name that matches nobody is an error, not "0 revoked".
	carol := clientFor(t, s, s.Token(t, authn.Identity{UserID: "carol-id", Email: "Carol@Example.com", Groups: []string{"engineering"}}))
	if _, err := carol.Issue(bg(t), wire.IssueRequest{PublicKey: fakeKey("d"), Device: "d"}); err != nil {
		t.Fatal(err)
	}
	if u, err := admin.User(bg(t), "carol@example.com"); err != nil || u.ID != "carol-id" {
		t.Fatalf("user by email: %+v %v", u, err)
	}
	if ps, err := admin.Peers(bg(t), client.PeerFilter{User: "carol@example.com"}); err != nil || len(ps) != 1 {
		t.Fatalf("peers by email: %+v %v", ps, err)
	}
	if n, err := admin.RevokeAll(bg(t), "carol@example.com", "", ""); err != nil || n != 1 {
		t.Fatalf("revoke by email: %d %v", n, err)
	}
	if _, err := admin.RevokeAll(bg(t), "nobody@example.com", "", ""); status(err) != http.StatusNotFound {
		t.Fatalf("revoke of an unknown user: %v, want 404", err)
	}
	if err := carol.Logout(bg(t)); err != nil {
		t.Fatal(err)
	}
	if u, err := admin.EnableUser(bg(t), "alice"); err != nil || u.Disabled {
		t.Fatalf("enable: %+v %v", u, err)
	}
	if _, err := admin.ResetMFA(bg(t), "alice"); status(err) != http.StatusConflict {
		t.Fatalf("resetting MFA that was never enrolled: %v", err)
	}
	// A user signs out: their session ends.
	bob = clientFor(t, s, bobTok)
	if err := bob.Logout(bg(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Me(bg(t)); status(err) != http.StatusUnauthorized {
		t.Fatalf("after logout: %v", err)
	}
	sessions, err := admin.Sessions(bg(t), "")
	if err != nil || len(sessions) != 1 || sessions[0].UserID != "admin" {
		t.Fatalf("sessions after disabling alice: %+v %v", sessions, err)
	}
}

func TestProfileAPI(t *testing.T) {
	s := apitest.Start(t)
	admin := clientFor(t, s, s.Admin(t))
	p, err := admin.CreateProfile(bg(t), engProfile)
	if err != nil || p.Version == 0 || p.MaxSession != "12h0m0s" {
		t.Fatalf("create: %+v %v", p, err)
	}
	if _, err := admin.CreateProfile(bg(t), engProfile); status(err) != http.StatusConflict {
		t.Fatalf("creating twice: %v", err)
	}
	edited := p
	edited.MaxDevices = 2
	p2, err := admin.UpdateProfile(bg(t), edited, p.Version)
	if err != nil || p2.Version <= p.Version || p2.MaxDevices != 2 {
		t.Fatalf("update: %+v %v", p2, err)
	}
	if _, err := admin.UpdateProfile(bg(t), edited, p.Version); status(err) != http.StatusConflict {
		t.Fatalf("update with a stale version: %v", err)
	}
	bad := []struct {
		name string
		edit func(*wire.Profile)
		want string
	}{
		{"bad cidr", func(p *wire.Profile) { p.Rules[0].CIDR = "10.0.0.0/33" }, "rules[0].cidr"},
		{"bad port", func(p *wire.Profile) { p.Rules[0].Ports = []string{"70000"} }, "rules[0].ports[0]"},
		{"bad protocol", func(p *wire.Profile) { p.Rules[0].Protocol = "gre" }, "rules[0].protocol"},
		{"pool overlap", func(p *wire.Profile) { p.Rules[0].CIDR = "100.64.0.0/10" }, "overlaps the client address pool"},
		{"no rules", func(p *wire.Profile) { p.Rules = nil }, "at least one rule"},
		{"bad duration", func(p *wire.Profile) { p.MaxSession = "forever" }, "max_session"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			q := engProfile
			q.Name = "new"
			q.Rules = append([]wire.Rule(nil), engProfile.Rules...)
			b.edit(&q)
			_, err := admin.CreateProfile(bg(t), q)
			if status(err) != http.StatusBadRequest || !strings.Contains(err.Error(), b.want) {
				t.Fatalf("got %v, want 400 naming %q", err, b.want)
			}
		})
	}
	plan, err := admin.ApplyProfiles(bg(t), "profiles:\n  - name: eng\n    rules: [{cidr: 10.20.0.0/16, protocol: tcp, ports: [22]}]\n    groups: [engineering]\n", true)
	if err != nil || plan.Diff != "~ profile eng: rules, max_devices\n" {
		t.Fatalf("dry run: %+v %v", plan, err)
	}
	if _, err := admin.ApplyProfiles(bg(t), "profiles:\n  - name: eng\n    rules: [{cidr: 10.20.0.0/16, protocol: tcp, ports: [99999]}]\n", false); status(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("bad apply: %v", err)
	}
	if err := admin.DeleteProfile(bg(t), "eng"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Profile(bg(t), "eng"); status(err) != http.StatusNotFound {
		t.Fatalf("deleted profile: %v", err)
	}
}

// fakeKey is a distinct, well-formed WireGuard public key per name.
func fakeKey(name string) string {
	var b [32]byte
	copy(b[:], name)
	b[31] = 1
	return base64.StdEncoding.EncodeToString(b[:])
}
