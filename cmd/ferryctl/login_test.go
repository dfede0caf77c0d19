package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// TestFinishLogin is login after the browser: an administrator's session
// is kept 0600, anyone else's is refused and deleted.
func TestFinishLogin(t *testing.T) {
	dir := isolate(t)
	srv := apitest.Start(t)
	path := filepath.Join(dir, "ctl.json")
	g := &globals{timeout: 10 * time.Second}

	t.Run("admin", func(t *testing.T) {
		var out strings.Builder
		g.con.out = &out
		tok := srv.Admin(t)
		res := wire.AuthTokenResponse{Token: tok, UserID: "admin", Role: "admin", Expires: time.Now().Add(time.Hour).Format(time.RFC3339)}
		if err := g.finishLogin(t.Context(), srv.URL, srv.CAFile, res); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.String(), "Signed in to "+srv.URL+" as admin@example.com (admin) until ") {
			t.Errorf("output %q", out.String())
		}
		if m := fileMode(t, path); m != 0o600 {
			t.Errorf("ctl.json mode %04o, want 0600", m)
		}
		if m := fileMode(t, dir); m != 0o700 {
			t.Errorf("config dir mode %04o, want 0700", m)
		}
		s, err := loadSession()
		if err != nil || s.Server != srv.URL || s.CAFile != srv.CAFile || s.Token != tok || s.UserID != "admin" || s.Expires.IsZero() {
			t.Errorf("saved %+v, %v", s, err)
		}
		// The saved CA and server are used without flags.
		if _, err := ctl(t, "", "user", "list"); err != nil {
			t.Errorf("after login: %v", err)
		}
		if strings.Contains(out.String(), tok) {
			t.Error("the token was printed")
		}
	})

	t.Run("user refused", func(t *testing.T) {
		g.con.out = &strings.Builder{}
		res := wire.AuthTokenResponse{Token: srv.Token(t, alice), UserID: "alice", Role: "user"}
		err := g.finishLogin(t.Context(), srv.URL, srv.CAFile, res)
		if err == nil || err.Error() != `signed in as alice@example.com, who is not an administrator (role "user"): ferryctl needs the admin role` {
			t.Errorf("non-admin login: %v", err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("the refused token was kept: %v", err)
		}
	})
}

func TestLoginArguments(t *testing.T) {
	isolate(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"login"}, "give the server URL: ferryctl login https://SERVER"},
		{[]string{"login", "http://vpn.example.com"}, `--server: server URL "http://vpn.example.com": want https://host[:port]`},
		{[]string{"login", "https://vpn.example.com/path"}, "want https://host[:port]"},
		{[]string{"login", "https://a.example.com", "--server", "https://b.example.com"}, "give the server once"},
		{[]string{"login", "https://a.example.com", "--ca", "/nonexistent/ca.pem"}, "reading CA file"},
		{[]string{"login", "a", "b"}, "accepts at most 1 arg(s)"},
	}
	for _, tt := range tests {
		if _, err := ctl(t, "", tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.args, err, tt.want)
		}
	}
}

// TestLogout ends the session on the server and deletes ctl.json.
func TestLogout(t *testing.T) {
	dir := isolate(t)
	srv := apitest.Start(t)
	tok := srv.Admin(t)
	signIn(t, srv, tok)
	out, err := ctl(t, "", "logout")
	if err != nil || out != "Signed out of "+srv.URL+".\n" {
		t.Fatalf("logout: %q %v", out, err)
	}
	if _, err := userClient(t, srv, tok).Me(t.Context()); client.StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("the session still works after logout: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ctl.json")); !os.IsNotExist(err) {
		t.Errorf("ctl.json left: %v", err)
	}
	if out, err := ctl(t, "", "logout"); err != nil || out != "Not signed in.\n" {
		t.Errorf("second logout: %q %v", out, err)
	}
	// A server that cannot be reached: the token is deleted anyway.
	if err := saveSession(session{Server: "https://127.0.0.1:1", Token: "x"}); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := ctlConsole(t, console{}, "logout", "--timeout", "2s")
	if err != nil || out != "Signed out of https://127.0.0.1:1.\n" || !strings.Contains(stderr, "could not end the session on the server") {
		t.Errorf("offline logout: %q %q %v", out, stderr, err)
	}
}

// TestSessionFile: a session file others can read is refused, and so is
// a malformed one.
func TestSessionFile(t *testing.T) {
	dir := isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	path := filepath.Join(dir, "ctl.json")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl(t, "", "user", "list"); err == nil || !strings.Contains(err.Error(), "is readable by others (mode 0644)") {
		t.Errorf("world-readable session: %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl(t, "", "user", "list"); err == nil || !strings.Contains(err.Error(), "is malformed") {
		t.Errorf("malformed session: %v", err)
	}
}

func TestParseRule(t *testing.T) {
	tests := []struct {
		in      string
		want    wire.Rule
		wantErr string
	}{
		{in: "10.0.0.0/16 tcp 22,443,8000-8080", want: wire.Rule{CIDR: "10.0.0.0/16", Protocol: "tcp", Ports: []string{"22", "443", "8000-8080"}}},
		{in: "10.0.0.0/16 TCP 22, 443", want: wire.Rule{CIDR: "10.0.0.0/16", Protocol: "tcp", Ports: []string{"22", "443"}}},
		{in: "10.1.2.3/16 udp", want: wire.Rule{CIDR: "10.1.0.0/16", Protocol: "udp"}},
		{in: "10.0.0.0/8", want: wire.Rule{CIDR: "10.0.0.0/8", Protocol: "any"}},
		{in: " 192.168.1.0/24  icmp ", want: wire.Rule{CIDR: "192.168.1.0/24", Protocol: "icmp"}},
		{in: "", wantErr: "empty rule"},
		{in: "10.0.0.0 tcp 22", wantErr: `"10.0.0.0" is not a CIDR`},
		{in: "10.0.0.0/8 icmp 22", wantErr: "ports only apply to tcp and udp, not icmp"},
	}
	for _, tt := range tests {
		got, err := parseRule(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseRule(%q): %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !sameRule(got, tt.want) || ruleString(got) != ruleString(tt.want) {
			t.Errorf("parseRule(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// TestProfileFlagErrors: bad flags fail before anything is sent.
func TestProfileFlagErrors(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	mustCtl(t, "profile", "create", "eng", "--rule", "10.0.0.0/16")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"profile", "create", "x"}, "profile x: give at least one --rule"},
		{[]string{"profile", "create", "x", "--rule", "nonsense"}, `--rule "nonsense": "nonsense" is not a CIDR`},
		{[]string{"profile", "create", "x", "--rule", "10.0.0.0/8", "--dns", "dns.example.com"}, `--dns "dns.example.com": not an IP address`},
		{[]string{"profile", "create", "x", "--rule", "10.0.0.0/8", "--max-session", "forever"}, `--max-session "forever": want a duration`},
		{[]string{"profile", "create", "x", "--rule", "10.0.0.0/8", "--max-devices", "0"}, "--max-devices 0: want 1 or more"},
		{[]string{"profile", "create", "eng", "--rule", "10.0.0.0/8"}, `profile "eng" already exists`},
		{[]string{"profile", "create", "Bad Name", "--rule", "10.0.0.0/8"}, `profile "Bad Name": name: want 1-63 lowercase letters`},
		{[]string{"profile", "edit", "eng"}, "nothing to change"},
		{[]string{"profile", "edit", "eng", "--remove-rule", "10.9.0.0/16"}, `--remove-rule "10.9.0.0/16 any": profile eng has no such rule`},
		{[]string{"profile", "edit", "missing", "--max-devices", "2"}, "not found"},
		{[]string{"profile", "show", "missing"}, "not found"},
		{[]string{"profile", "delete", "missing", "--yes"}, "not found"},
	}
	for _, tt := range tests {
		if _, err := ctl(t, "", tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.args, err, tt.want)
		}
	}
}

func TestFmtMaxSession(t *testing.T) {
	for in, want := range map[string]string{"12h0m0s": "12h", "1h30m0s": "1h30m", "30m0s": "30m", "1h0m30s": "1h0m30s", "": "", "x": "x"} {
		if got := fmtMaxSession(in); got != want {
			t.Errorf("fmtMaxSession(%q) = %q, want %q", in, got, want)
		}
	}
}
