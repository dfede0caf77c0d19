package loginflow_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
)

// browserFor returns an OpenBrowser that signs in as user in a fresh
// Browser, follows the server back to the loopback listener, and reports
// how that went on the returned channel.
func browserFor(t *testing.T, e *flowtest.Env, user string, before func(loginURL string)) (func(string) error, <-chan error) {
	done := make(chan error, 1)
	open := func(loginURL string) error {
		go func() {
			if before != nil {
				before(loginURL)
			}
			b := e.NewBrowser()
			res, err := b.SignIn(loginURL, user, user)
			if err != nil {
				done <- err
				return
			}
			p, err := b.Get(res.Final.Location)
			if err == nil && p.Status != http.StatusOK {
				err = fmt.Errorf("loopback answered %d: %s", p.Status, p.Body)
			}
			done <- err
		}()
		return nil
	}
	return open, done
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestLogin signs in through the real client code against three nodes
// and the development OP: loopback listener, PKCE, state, redeem.
func TestLogin(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{})
	tests := []struct {
		name     string
		user     string
		admin    bool
		wantRole string
		wantErr  error
	}{
		{name: "user", user: "alice", wantRole: authn.RoleUser},
		{name: "admin", user: "demo", admin: true, wantRole: authn.RoleAdmin},
		// Refused in the browser, before the code is sent back.
		{name: "non-admin asking for admin", user: "alice", admin: true, wantErr: loginflow.ErrSignInFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var loginURL string
			open, browsed := browserFor(t, e, tt.user, func(u string) { loginURL = u })
			var out strings.Builder
			res, err := loginflow.Login(ctxFor(t), loginflow.Options{
				Server: e.URL, TLSConfig: e.ClientTLS, Admin: tt.admin, OpenBrowser: open, Out: &out,
			})
			if berr := <-browsed; berr != nil {
				t.Fatalf("browser: %v", berr)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Login: %v, want %v", err, tt.wantErr)
				}
				e.WantEvent(audit.TypeLogin, "not admin")
				return
			}
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if res.Role != tt.wantRole || res.UserID != e.UserID("devop-"+tt.user) {
				t.Errorf("signed in as %s/%s, want devop-%s/%s", res.UserID, res.Role, tt.user, tt.wantRole)
			}
			sess, err := e.Sessions[1].Validate(t.Context(), authn.SessionToken(res.Token))
			if err != nil || sess.ID != res.SessionID {
				t.Fatalf("token does not validate: %v", err)
			}
			u, err := url.Parse(loginURL)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			if q.Get("client") != "desktop" || q.Get("code_challenge_method") != "S256" || !strings.HasPrefix(q.Get("redirect_uri"), "http://127.0.0.1:") || (q.Get("admin") == "1") != tt.admin {
				t.Errorf("login URL %s", loginURL)
			}
			if !strings.Contains(out.String(), loginURL) {
				t.Errorf("the URL was not shown in case the browser does not open:\n%s", out.String())
			}
		})
	}
}

// TestLoginNoBrowser prints the URL instead of opening a browser; a
// request to the loopback with the wrong state is refused and ignored.
func TestLoginNoBrowser(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{})
	pr, pw := io.Pipe()
	defer pr.Close()
	browsed := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if !strings.HasPrefix(line, e.URL+authn.PathLogin+"?") {
				continue
			}
			// Keep reading what Login prints: the browser's last request
			// waits for Login to finish.
			go func() { _, _ = io.Copy(io.Discard, pr) }()
			u, _ := url.Parse(line)
			redirect := u.Query().Get("redirect_uri")
			b := e.NewBrowser()
			// A stray request with a forged state first: refused.
			if p, err := b.Get(redirect + "?code=forged&state=forged"); err != nil || p.Status != http.StatusBadRequest {
				browsed <- fmt.Errorf("forged state: %v %+v", err, p)
				break
			}
			res, err := b.SignIn(line, "alice", "alice")
			if err == nil {
				_, err = b.Get(res.Final.Location)
			}
			browsed <- err
			break
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	tok, err := loginflow.Run(ctxFor(t), loginflow.Options{
		Server: e.URL + "/", TLSConfig: e.ClientTLS, NoBrowser: true,
		OpenBrowser: func(string) error { t.Error("browser opened despite NoBrowser"); return nil },
		Out:         pw,
	})
	pw.Close()
	if berr := <-browsed; berr != nil {
		t.Fatal(berr)
	}
	if err != nil || tok == "" {
		t.Fatalf("Run: %q, %v", tok, err)
	}
}

// TestLoginCancelled returns when the context ends, and closes its
// listener.
func TestLoginCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	_, err := loginflow.Run(ctx, loginflow.Options{
		Server:      "https://127.0.0.1:1",
		OpenBrowser: func(string) error { cancel(); return nil },
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
}

func TestServerURLChecked(t *testing.T) {
	for _, s := range []string{"", "http://vpn.example.com", "https://vpn.example.com/path", "https://vpn.example.com?x=1", "vpn.example.com"} {
		if _, err := loginflow.Run(t.Context(), loginflow.Options{Server: s}); err == nil || errors.Is(err, context.Canceled) {
			t.Errorf("Run(%q): %v, want a URL error", s, err)
		}
	}
}

func TestTokenFiles(t *testing.T) {
	dir := t.TempDir()
	const server = "https://vpn.example.com:8443"
	if _, err := loginflow.LoadToken(dir, server, ""); !errors.Is(err, loginflow.ErrNoToken) {
		t.Fatalf("LoadToken before saving: %v, want ErrNoToken", err)
	}
	if err := loginflow.SaveToken(dir, server, "", "tok-1"); err != nil {
		t.Fatal(err)
	}
	if err := loginflow.SaveToken(dir, server+"/", "", "tok-2"); err != nil { // replaces
		t.Fatal(err)
	}
	got, err := loginflow.LoadToken(dir, server, "")
	if err != nil || got != "tok-2" {
		t.Fatalf("LoadToken = %q, %v", got, err)
	}
	if _, err := loginflow.LoadToken(dir, "https://other.example.com", ""); !errors.Is(err, loginflow.ErrNoToken) {
		t.Errorf("another server's token: %v, want ErrNoToken", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "tokens", "*"))
	if len(files) != 1 {
		t.Fatalf("token files: %v", files)
	}
	for _, p := range []string{files[0], filepath.Dir(files[0])} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: readable by others", p, fi.Mode().Perm())
		}
	}
	if err := os.Chmod(files[0], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loginflow.LoadToken(dir, server, ""); err == nil || errors.Is(err, loginflow.ErrNoToken) {
		t.Errorf("LoadToken of a world-readable file: %v, want a refusal", err)
	}
	if err := loginflow.SaveToken(dir, "ftp://x", "", "t"); err == nil {
		t.Error("SaveToken accepted a non-https server")
	}
}
