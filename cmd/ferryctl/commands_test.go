package main

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/ferryvpn/ferry/profiles"
)

// TestCommands runs every command against a real API, as an
// administrator, in table and JSON output.
func TestCommands(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	aliceTok := srv.Token(t, alice)

	t.Run("profile create", func(t *testing.T) {
		out := mustCtl(t, "profile", "create", "eng",
			"--rule", "10.0.0.0/16 tcp 22,443,8000-8080", "--rule", "10.1.0.0/16 icmp",
			"--dns", "10.0.0.2", "--search", "corp.example.com", "--group", "engineering",
			"--user", "bob@example.com", "--max-session", "8h", "--max-devices", "3", "--description", "Engineers")
		if !strings.HasPrefix(out, "Created profile eng (version ") {
			t.Errorf("output %q", out)
		}
		var p wire.Profile
		ctlJSON(t, &p, "profile", "create", "ops", "--rule", "10.2.0.0/16", "--full-tunnel", "--user", "alice")
		if p.Name != "ops" || !p.FullTunnel || len(p.Rules) != 1 || p.Rules[0].Protocol != "any" || p.Version == 0 {
			t.Errorf("created %+v", p)
		}
	})

	t.Run("profile show", func(t *testing.T) {
		out := mustCtl(t, "profile", "show", "eng")
		for _, want := range []string{"Name:", "eng", "10.0.0.0/16 tcp 22,443,8000-8080", "10.1.0.0/16 icmp", "Max session:", "8h", "engineering", "bob@example.com", "split"} {
			if !strings.Contains(out, want) {
				t.Errorf("show lacks %q:\n%s", want, out)
			}
		}
		var p wire.Profile
		ctlJSON(t, &p, "profile", "show", "eng")
		want := []wire.Rule{{CIDR: "10.0.0.0/16", Protocol: "tcp", Ports: []string{"22", "443", "8000-8080"}}, {CIDR: "10.1.0.0/16", Protocol: "icmp"}}
		if !slices.EqualFunc(p.Rules, want, sameRule) || p.MaxDevices != 3 || p.MaxSession != "8h0m0s" || !slices.Equal(p.DNS, []string{"10.0.0.2"}) {
			t.Errorf("show -o json: %+v", p)
		}
	})

	t.Run("profile list", func(t *testing.T) {
		out := mustCtl(t, "profile", "list")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "eng ") || !strings.HasPrefix(lines[2], "ops ") {
			t.Errorf("list:\n%s", out)
		}
		var l wire.ProfileList
		ctlJSON(t, &l, "profile", "list")
		if len(l.Profiles) != 2 {
			t.Errorf("list -o json: %+v", l)
		}
	})

	t.Run("profile edit", func(t *testing.T) {
		var before wire.Profile
		ctlJSON(t, &before, "profile", "show", "eng")
		out := mustCtl(t, "profile", "edit", "eng", "--max-session", "4h", "--add-rule", "10.3.0.0/16 udp 53", "--remove-rule", "10.1.0.0/16 icmp", "--dns", "")
		if !strings.HasPrefix(out, "Updated profile eng (version ") {
			t.Errorf("output %q", out)
		}
		var after wire.Profile
		ctlJSON(t, &after, "profile", "show", "eng")
		wantRules := []wire.Rule{{CIDR: "10.0.0.0/16", Protocol: "tcp", Ports: []string{"22", "443", "8000-8080"}}, {CIDR: "10.3.0.0/16", Protocol: "udp", Ports: []string{"53"}}}
		if after.Version <= before.Version || after.MaxSession != "4h0m0s" || len(after.DNS) != 0 || !slices.EqualFunc(after.Rules, wantRules, sameRule) {
			t.Errorf("after edit: %+v", after)
		}
		// Unchanged settings are kept.
		if after.Description != "Engineers" || after.MaxDevices != 3 || !slices.Equal(after.Groups, []string{"engineering"}) || !slices.Equal(after.SearchDomains, before.SearchDomains) {
			t.Errorf("edit changed settings it was not given: %+v", after)
		}
		var p wire.Profile
		ctlJSON(t, &p, "profile", "edit", "eng", "--add-group", "sre", "--remove-user", "bob@example.com")
		if !slices.Equal(p.Groups, []string{"engineering", "sre"}) || len(p.Users) != 0 {
			t.Errorf("edit -o json: %+v", p)
		}
	})

	var peer wire.Peer
	t.Run("peer list", func(t *testing.T) {
		peer = issue(t, srv, aliceTok, "laptop", "eng")
		issue(t, srv, aliceTok, "desktop", "ops")
		out := mustCtl(t, "peer", "list", "--profile", "eng")
		if !strings.Contains(out, peer.ID) || !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "laptop") || strings.Contains(out, "desktop") {
			t.Errorf("peer list --profile eng:\n%s", out)
		}
		var l wire.PeerList
		ctlJSON(t, &l, "peer", "list", "--user", "alice")
		if len(l.Peers) != 2 {
			t.Errorf("peer list --user alice: %+v", l)
		}
		ctlJSON(t, &l, "peer", "list", "--user", "alice@example.com")
		if len(l.Peers) != 2 {
			t.Errorf("peer list --user alice@example.com: %+v", l)
		}
		ctlJSON(t, &l, "peer", "list", "--node", "nowhere")
		if l.Peers == nil || len(l.Peers) != 0 {
			t.Errorf("an empty list must be [] for scripts: %+v", l)
		}
		if _, err := ctl(t, "", "peer", "list", "--user", "nobody"); err == nil || !strings.HasPrefix(err.Error(), `no user "nobody"`) {
			t.Errorf("peer list --user nobody: %v", err)
		}
	})

	t.Run("peer revoke", func(t *testing.T) {
		out := mustCtl(t, "peer", "revoke", peer.ID, "--reason", "laptop stolen")
		if !strings.Contains(out, "Revoked peer "+peer.ID) {
			t.Errorf("output %q", out)
		}
		p, err := srv.Profiles.Peer(t.Context(), peer.ID)
		if err != nil || p.Revoked == nil || p.RevokedReason != "laptop stolen" {
			t.Errorf("revoked peer: %+v %v", p, err)
		}
		other := issue(t, srv, aliceTok, "laptop2", "eng")
		var wp wire.Peer
		ctlJSON(t, &wp, "peer", "revoke", other.ID)
		if wp.ID != other.ID || wp.State != "revoked" || wp.RevokedReason != "revoked by admin@example.com" {
			t.Errorf("revoke -o json: %+v", wp)
		}
		// Every device of a user at once, and the selector is checked.
		issue(t, srv, aliceTok, "laptop3", "eng")
		issue(t, srv, aliceTok, "laptop4", "eng")
		if out := mustCtl(t, "peer", "revoke", "--user", "alice", "--reason", "offboarding"); !strings.HasPrefix(out, "Revoked ") {
			t.Errorf("revoke --user: %q", out)
		}
		left, err := srv.Profiles.Peers(t.Context(), profiles.PeerFilter{UserID: "alice"})
		for _, p := range left {
			if p.Revoked == nil {
				t.Errorf("alice's %s survived revoke --user (%v)", p.Device, err)
			}
		}
		if _, err := ctl(t, "", "peer", "revoke", "x", "--profile", "eng"); err == nil || !strings.Contains(err.Error(), "exactly one") {
			t.Errorf("two selectors: %v", err)
		}
	})

	t.Run("user list and show", func(t *testing.T) {
		out := mustCtl(t, "user", "list")
		if !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "admin@example.com") {
			t.Errorf("user list:\n%s", out)
		}
		var l wire.UserList
		ctlJSON(t, &l, "user", "list")
		if len(l.Users) != 2 {
			t.Errorf("user list -o json: %+v", l)
		}
		if out := mustCtl(t, "user", "show", "alice"); !strings.Contains(out, "Alice") || !strings.Contains(out, "engineering") {
			t.Errorf("user show:\n%s", out)
		}
		var u wire.User
		ctlJSON(t, &u, "user", "show", "alice")
		if u.ID != "alice" || u.Email != "alice@example.com" || u.Disabled {
			t.Errorf("user show -o json: %+v", u)
		}
		if _, err := ctl(t, "", "user", "show", "nobody"); err == nil || !strings.HasPrefix(err.Error(), `no user "nobody"`) {
			t.Errorf("user show nobody: %v", err)
		}
	})

	t.Run("session list", func(t *testing.T) {
		out := mustCtl(t, "session", "list", "--user", "alice")
		if !strings.Contains(out, "alice@example.com") || strings.Contains(out, "admin@example.com") {
			t.Errorf("session list --user alice:\n%s", out)
		}
		var l wire.SessionList
		ctlJSON(t, &l, "session", "list")
		if len(l.Sessions) < 2 {
			t.Errorf("session list -o json: %+v", l)
		}
	})

	t.Run("session kill", func(t *testing.T) {
		tok := srv.Token(t, alice)
		me, err := userClient(t, srv, tok).Me(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if out := mustCtl(t, "session", "kill", me.SessionID); out != "Ended session "+me.SessionID+".\n" {
			t.Errorf("output %q", out)
		}
		if _, err := userClient(t, srv, tok).Me(t.Context()); client.StatusOf(err) != http.StatusUnauthorized {
			t.Errorf("killed session still works: %v", err)
		}
		tok = srv.Token(t, alice)
		me, _ = userClient(t, srv, tok).Me(t.Context())
		var k killed
		ctlJSON(t, &k, "session", "kill", me.SessionID)
		if k != (killed{ID: me.SessionID, Killed: true}) {
			t.Errorf("kill -o json: %+v", k)
		}
	})

	t.Run("user disable and enable", func(t *testing.T) {
		live := issue(t, srv, aliceTok, "phone", "eng")
		if out := mustCtl(t, "user", "disable", "alice"); !strings.HasPrefix(out, "Disabled user alice@example.com") {
			t.Errorf("output %q", out)
		}
		p, err := srv.Profiles.Peer(t.Context(), live.ID)
		if err != nil || p.Revoked == nil {
			t.Errorf("disabling left the peer unrevoked: %+v %v", p, err)
		}
		var u wire.User
		ctlJSON(t, &u, "user", "enable", "alice")
		if u.Disabled {
			t.Errorf("enable -o json: %+v", u)
		}
		ctlJSON(t, &u, "user", "disable", "alice")
		if !u.Disabled {
			t.Errorf("disable -o json: %+v", u)
		}
		if out := mustCtl(t, "user", "enable", "alice"); !strings.HasPrefix(out, "Enabled user alice@example.com") {
			t.Errorf("output %q", out)
		}
	})

	t.Run("user reset-mfa", func(t *testing.T) {
		enrollTOTP(t, srv, alice)
		if out := mustCtl(t, "user", "reset-mfa", "alice"); !strings.HasPrefix(out, "Reset the MFA of alice@example.com") {
			t.Errorf("output %q", out)
		}
		enrollTOTP(t, srv, alice)
		var u wire.User
		ctlJSON(t, &u, "user", "show", "alice")
		if !u.MFAEnrolled {
			t.Fatalf("enrollment not shown: %+v", u)
		}
		ctlJSON(t, &u, "user", "reset-mfa", "alice")
		if u.MFAEnrolled {
			t.Errorf("reset-mfa -o json: %+v", u)
		}
	})

	t.Run("user show explains access and lockout; unlock keeps MFA", func(t *testing.T) {
		out := mustCtl(t, "user", "show", "alice")
		for _, want := range []string{"profile eng: held (group engineering)", "role admin: not held: in no admin group", "Lockout", "not locked", `revoked`, "laptop stolen"} {
			if !strings.Contains(out, want) {
				t.Errorf("user show lacks %q:\n%s", want, out)
			}
		}
		enrollTOTP(t, srv, alice)
		for range authn.MaxFailures {
			_ = srv.MFA.Verify(t.Context(), alice, "000000", authn.Source{Addr: "127.0.0.1"})
		}
		if out := mustCtl(t, "user", "show", "alice"); !strings.Contains(out, "LOCKED until") {
			t.Fatalf("user show after %d failures:\n%s", authn.MaxFailures, out)
		}
		if out := mustCtl(t, "user", "unlock", "alice"); !strings.HasPrefix(out, "Unlocked alice@example.com") {
			t.Errorf("output %q", out)
		}
		var u wire.User
		ctlJSON(t, &u, "user", "show", "alice")
		if u.Lockout == nil || !u.Lockout.LockedUntil.IsZero() || u.Lockout.Failures != 0 || !u.MFAEnrolled {
			t.Errorf("after unlock: lockout %+v, enrolled %v: want unlocked and still enrolled", u.Lockout, u.MFAEnrolled)
		}
		if err := srv.MFA.Reset(t.Context(), alice.UserID, audit.Actor{UserID: "admin"}, authn.Source{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("profile delete", func(t *testing.T) {
		tok := srv.Token(t, alice)
		issue(t, srv, tok, "tablet", "ops")
		out := mustCtl(t, "profile", "delete", "ops", "--yes")
		if out != "Deleted profile ops and revoked its 1 active peer(s).\n" {
			t.Errorf("output %q", out)
		}
		if _, err := ctl(t, "", "profile", "show", "ops"); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("deleted profile still shows: %v", err)
		}
		var d deleted
		ctlJSON(t, &d, "profile", "delete", "eng", "--yes")
		if d.Name != "eng" || !d.Deleted {
			t.Errorf("delete -o json: %+v", d)
		}
		var l wire.ProfileList
		ctlJSON(t, &l, "profile", "list")
		if l.Profiles == nil || len(l.Profiles) != 0 {
			t.Errorf("profiles left: %+v", l)
		}
		if out := mustCtl(t, "profile", "list"); out != "No profiles.\n" {
			t.Errorf("empty list: %q", out)
		}
	})

	t.Run("version and completion", func(t *testing.T) {
		if out := mustCtl(t, "version"); !strings.HasPrefix(out, "ferryctl ") {
			t.Errorf("version: %q", out)
		}
		for _, shell := range []string{"bash", "zsh", "fish"} {
			if out := mustCtl(t, "completion", shell); !strings.Contains(out, "ferryctl") {
				t.Errorf("completion %s: %.100q", shell, out)
			}
		}
	})
}

// TestProfileDeleteConfirms asks on a terminal and refuses elsewhere
// without --yes.
func TestProfileDeleteConfirms(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	mustCtl(t, "profile", "create", "ops", "--rule", "10.2.0.0/16", "--user", "alice")
	issue(t, srv, srv.Token(t, alice), "laptop", "ops")

	if _, err := ctl(t, "y\n", "profile", "delete", "ops"); err == nil || err.Error() != "not on a terminal: confirm with --yes" {
		t.Errorf("delete off a terminal: %v", err)
	}
	_, stderr, err := ctlConsole(t, console{in: strings.NewReader("n\n"), interactive: true}, "profile", "delete", "ops")
	if err == nil || err.Error() != "profile ops not deleted" {
		t.Errorf("answering no: %v", err)
	}
	if stderr != "Delete profile ops and revoke its 1 active peer(s)? [y/N] " {
		t.Errorf("question %q", stderr)
	}
	if _, err := srv.Profiles.Get(t.Context(), "ops"); err != nil {
		t.Fatalf("deleted after answering no: %v", err)
	}
	out, _, err := ctlConsole(t, console{in: strings.NewReader("yes\n"), interactive: true}, "profile", "delete", "ops")
	if err != nil || !strings.HasPrefix(out, "Deleted profile ops") {
		t.Fatalf("answering yes: %q %v", out, err)
	}
}

// TestProfileEditConflict: when someone else changes the profile between
// edit's read and its write, the edit changes nothing and says why.
func TestProfileEditConflict(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	admin := srv.Admin(t)
	signIn(t, srv, admin)
	mustCtl(t, "profile", "create", "eng", "--rule", "10.0.0.0/16", "--group", "engineering")

	// A proxy that lets another administrator edit the profile just after
	// ferryctl has read it.
	target, _ := url.Parse(srv.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	backendTLS, err := client.TLSConfig(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	rp.Transport = &http.Transport{TLSClientConfig: backendTLS}
	var once sync.Once
	rp.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method == http.MethodGet && r.Request.URL.Path == "/v1/profiles/eng" {
			once.Do(func() {
				p, err := srv.Profiles.Get(context.Background(), "eng")
				if err == nil {
					p.Description = "changed meanwhile"
					_, err = srv.Profiles.Put(context.Background(), p, nil, audit.Actor{UserID: "other-admin"})
				}
				if err != nil {
					t.Errorf("concurrent edit: %v", err)
				}
			})
		}
		return nil
	}
	proxy := httptest.NewTLSServer(rp)
	defer proxy.Close()
	proxyCA := filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(proxyCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := saveSession(session{Server: proxy.URL, CAFile: proxyCA, Token: admin}); err != nil {
		t.Fatal(err)
	}

	_, err = ctl(t, "", "profile", "edit", "eng", "--max-session", "1h")
	if err == nil || !strings.HasPrefix(err.Error(), "profile eng was changed by someone else since it was read") {
		t.Fatalf("edit racing another: %v", err)
	}
	p, err := srv.Profiles.Get(t.Context(), "eng")
	if err != nil || p.Description != "changed meanwhile" || p.MaxSession.String() != "12h0m0s" {
		t.Errorf("after the conflict: %+v %v", p, err)
	}
	// Run again, it applies.
	if _, err := ctl(t, "", "profile", "edit", "eng", "--max-session", "1h"); err != nil {
		t.Errorf("second edit: %v", err)
	}
}

// TestNonAdminRefused: every command refuses a session without the admin
// role, with one clear message.
func TestNonAdminRefused(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	tok := srv.Token(t, alice)
	adminTok := srv.Admin(t)
	signIn(t, srv, adminTok)
	mustCtl(t, "profile", "create", "eng", "--rule", "10.0.0.0/16", "--group", "engineering")
	peer := issue(t, srv, tok, "laptop", "eng")
	me, err := userClient(t, srv, tok).Me(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "profiles.yaml")
	if err := os.WriteFile(file, []byte("profiles: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	signIn(t, srv, tok)

	for _, args := range [][]string{
		{"profile", "create", "x", "--rule", "10.9.0.0/16"},
		{"profile", "edit", "eng", "--max-session", "1h"},
		{"profile", "show", "eng"},
		{"profile", "list"},
		{"profile", "delete", "eng", "--yes"},
		{"profile", "apply", "-f", file},
		{"profile", "apply", "-f", file, "--dry-run"},
		{"user", "list"},
		{"user", "show", "alice"},
		{"user", "disable", "alice"},
		{"user", "enable", "alice"},
		{"user", "reset-mfa", "alice"},
		{"peer", "list"},
		{"peer", "list", "--user", "alice"},
		{"peer", "revoke", peer.ID},
		{"session", "list"},
		{"session", "kill", me.SessionID},
	} {
		for _, o := range []string{"table", "json"} {
			name := strings.Join(args, " ") + " -o " + o
			t.Run(name, func(t *testing.T) {
				out, err := ctl(t, "", append(args, "-o", o)...)
				if err == nil || err.Error() != "your session lacks the admin role" {
					t.Errorf("error %v, want the admin-role message", err)
				}
				if out != "" {
					t.Errorf("printed %q", out)
				}
			})
		}
	}
	// Nothing changed.
	if p, err := srv.Profiles.Peer(t.Context(), peer.ID); err != nil || p.Revoked != nil {
		t.Errorf("peer revoked by a non-admin: %+v %v", p, err)
	}
	if _, err := srv.Profiles.Get(t.Context(), "eng"); err != nil {
		t.Errorf("profile deleted by a non-admin: %v", err)
	}
}

// TestNotSignedIn: without a session, or with one the server ended, every
// command says to log in.
func TestNotSignedIn(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	const want = "not signed in or session expired: run ferryctl login"
	if _, err := ctl(t, "", "profile", "list"); err == nil || err.Error() != want {
		t.Errorf("no session: %v", err)
	}
	tok := srv.Admin(t)
	signIn(t, srv, tok)
	me, err := userClient(t, srv, tok).Me(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Sessions.Revoke(t.Context(), me.SessionID, audit.Actor{UserID: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"profile", "list"}, {"user", "list"}, {"peer", "list"}, {"session", "list"}} {
		if _, err := ctl(t, "", args...); err == nil || err.Error() != want {
			t.Errorf("%v with an ended session: %v", args, err)
		}
	}
	// The token is never sent to a server outside the cluster: --server
	// elsewhere with another CA means not signed in there (another node
	// of the cluster, pinned to its CA, is TestSessionValidOnEveryNode).
	signIn(t, srv, srv.Admin(t))
	other := filepath.Join(t.TempDir(), "other-ca.pem")
	writeSelfSignedCA(t, other)
	if _, err := ctl(t, "", "user", "list", "--server", "https://127.0.0.1:1", "--ca", other); err == nil || err.Error() != want {
		t.Errorf("--server elsewhere: %v", err)
	}
}
