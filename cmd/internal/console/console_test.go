package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/console"
)

// pagePaths are the console's pages (GET); actionPaths its changes,
// each a confirmation page on GET and the change on POST.
var (
	pagePaths = []string{"/admin", "/admin/", "/admin/people", "/admin/people/alice", "/admin/sessions", "/admin/profiles", "/admin/profiles/edit",
		"/admin/traffic", "/admin/traffic?range=90d", "/admin/reports", "/admin/reports?kind=unused", "/admin/reports?format=html", "/admin/audit", "/admin/nope"}
	postPaths   = []string{"/admin/profiles/edit", "/admin/profiles/apply"}
	actionPaths = []string{"/admin/people/alice/disable", "/admin/people/alice/enable", "/admin/people/alice/unlock",
		"/admin/people/alice/reset-mfa", "/admin/devices/p1/revoke", "/admin/sessions/s1/kill"}
)

// TestNonAdminForbidden: a signed-in person without the admin role gets
// 403 on every console route, GET and POST; without a session the
// browser is sent to sign in. Nothing changes either way.
func TestNonAdminForbidden(t *testing.T) {
	s := apitest.Start(t)
	s.Admin(t)
	tok := s.Token(t, alice)
	user := newBrowser(t, s.URL, s.CAFile, tok)
	anon := newBrowser(t, s.URL, s.CAFile, "")
	for _, p := range append(append([]string{}, pagePaths...), actionPaths...) {
		if resp, body := user.do(http.MethodGet, p, nil); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Administrators only") {
			t.Errorf("GET %s as a user: %d, want 403 Administrators only", p, resp.StatusCode)
		}
		// Sent to sign in, and back to this page afterwards.
		if resp, _ := anon.do(http.MethodGet, p, nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != authn.LoginURL(p) {
			t.Errorf("GET %s signed out: %d %s, want 303 %s", p, resp.StatusCode, resp.Header.Get("Location"), authn.LoginURL(p))
		}
	}
	for _, p := range append(append([]string{}, actionPaths...), postPaths...) {
		if resp, _ := user.do(http.MethodPost, p, url.Values{"csrf": {"x"}, "file": {"profiles: []"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s as a user: %d, want 403", p, resp.StatusCode)
		}
	}
	if u, _, err := s.Users.Get(bg(t), "alice"); err != nil || u.Disabled {
		t.Fatalf("alice after refused posts: %+v %v", u, err)
	}
}

// TestCSPOnEveryPage: every page, for an administrator and for others,
// carries a CSP that allows no inline script or style, and the HTML has
// none; the stylesheets and script it loads are served under /admin/static.
func TestCSPOnEveryPage(t *testing.T) {
	s := apitest.Start(t)
	admin := newBrowser(t, s.URL, s.CAFile, s.Admin(t))
	s.Token(t, alice)
	user := newBrowser(t, s.URL, s.CAFile, s.Token(t, alice))
	check := func(who, p string, resp *http.Response, body string) {
		t.Helper()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") || strings.Contains(csp, "sha256-") {
			t.Errorf("%s GET %s: CSP %q", who, p, csp)
		}
		// The HTML report is a download, a file that must stand alone:
		// its stylesheet is inline, and it has no script.
		if strings.Contains(p, "format=html") {
			body = strings.Replace(body, "<style>", "", 1)
		}
		if strings.Contains(body, "<script>") || strings.Contains(body, "<style>") || strings.Contains(body, " style=") || strings.Contains(body, " onclick") {
			t.Errorf("%s GET %s: inline script or style in the page", who, p)
		}
	}
	for _, p := range append(append([]string{}, pagePaths...), "/admin/people/alice/disable", "/admin/people/alice/reset-mfa") {
		resp, body := admin.do(http.MethodGet, p, nil)
		check("admin", p, resp, body)
		if p != "/admin/nope" && resp.StatusCode != http.StatusOK {
			t.Errorf("admin GET %s: %d\n%s", p, resp.StatusCode, body)
		}
		resp, body = user.do(http.MethodGet, p, nil)
		check("user", p, resp, body)
	}
	for _, a := range []struct{ path, ctype string }{{"/admin/static/style.css", "text/css"}, {"/admin/static/console.css", "text/css"}, {"/admin/static/local.js", "text/javascript"}} {
		resp, body := admin.do(http.MethodGet, a.path, nil)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), a.ctype) || body == "" {
			t.Errorf("GET %s: %d %s", a.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

// TestCrossOriginPostRefused: a form posted from another site (or with
// no Origin at all), even with a valid token, changes nothing; a post
// without the token changes nothing either.
func TestCrossOriginPostRefused(t *testing.T) {
	s := apitest.Start(t)
	tok := s.Admin(t)
	s.Token(t, alice)
	admin := newBrowser(t, s.URL, s.CAFile, tok)
	csrf := admin.csrf("/admin/people/alice/disable")
	for name, b := range map[string]*browser{"other site": newBrowser(t, s.URL, s.CAFile, tok), "no origin": newBrowser(t, s.URL, s.CAFile, tok)} {
		b.origin = map[string]string{"other site": "https://evil.example", "no origin": ""}[name]
		if resp, _ := b.do(http.MethodPost, "/admin/people/alice/disable", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, resp.StatusCode)
		}
	}
	if resp, _ := admin.do(http.MethodPost, "/admin/people/alice/disable", url.Values{"csrf": {"0000"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("wrong token: %d, want 403", resp.StatusCode)
	}
	if u, _, err := s.Users.Get(bg(t), "alice"); err != nil || u.Disabled {
		t.Fatalf("alice after refused posts: %+v %v", u, err)
	}
	// The same form from the console's own page works (the session's
	// TOTP is fresh: it was just minted).
	if resp, body := admin.do(http.MethodPost, "/admin/people/alice/disable", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusOK || !strings.Contains(body, "is disabled") {
		t.Fatalf("same-origin post: %d\n%s", resp.StatusCode, body)
	}
	if u, _, _ := s.Users.Get(bg(t), "alice"); !u.Disabled {
		t.Fatal("alice not disabled by the console")
	}
	if !auditHas(t, s, string(audit.TypeUserDisable), func(e *audit.Event) bool {
		return e.Actor.UserID == "admin" && e.Target.User == "alice" && e.Outcome == audit.Success
	}) {
		t.Error("no user.disable event by admin for alice")
	}
}

// TestStepUp: when the last TOTP code is older than the window, a change
// asks for a fresh code and changes nothing without one or with a wrong
// one; a right code makes the change and counts for the next change in
// the window; a used code is refused.
func TestStepUp(t *testing.T) {
	s := apitest.Start(t)
	tok := s.Token(t, adminID)
	code := enroll(t, s, adminID)
	s.Token(t, alice)
	now := time.Now()
	clock := func() time.Time { return now }
	base, ca := serveConsole(t, s, func(c *console.Config) {
		c.StepUpWindow = 5 * time.Minute
		c.Now = func() time.Time { return clock().Add(6 * time.Minute) } // the sign-in's code is stale
	})
	b := newBrowser(t, base, ca, tok)
	_, page := b.do(http.MethodGet, "/admin/people/alice/disable", nil)
	if !strings.Contains(page, `name="totp"`) {
		t.Fatalf("the confirmation page does not ask for a code:\n%s", page)
	}
	csrf := b.csrf("/admin/people/alice/disable")
	for name, f := range map[string]url.Values{"no code": {"csrf": {csrf}}, "wrong code": {"csrf": {csrf}, "totp": {"000000"}}} {
		resp, body := b.do(http.MethodPost, "/admin/people/alice/disable", f)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `name="totp"`) || !strings.Contains(body, "Nothing was changed") && name != "no code" {
			t.Errorf("%s: %d, want 401 asking for a code\n%s", name, resp.StatusCode, body)
		}
		if u, _, _ := s.Users.Get(bg(t), "alice"); u.Disabled {
			t.Fatalf("%s: alice disabled without a fresh code", name)
		}
	}
	good := code(time.Now())
	if resp, body := b.do(http.MethodPost, "/admin/people/alice/disable", url.Values{"csrf": {csrf}, "totp": {good}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("with a fresh code: %d\n%s", resp.StatusCode, body)
	}
	if u, _, _ := s.Users.Get(bg(t), "alice"); !u.Disabled {
		t.Fatal("alice not disabled with a fresh code")
	}
	// Within the window the next change needs no code.
	if resp, body := b.do(http.MethodPost, "/admin/people/alice/enable", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("enable within the window: %d\n%s", resp.StatusCode, body)
	}
	// A step-up cookie from another session, or past the window, counts
	// for nothing; a used code is refused.
	other := newBrowser(t, base, ca, s.Token(t, adminID))
	other.cookie = append(other.cookie, b.cookie[1:]...)
	ocsrf := other.csrf("/admin/people/alice/disable")
	if resp, _ := other.do(http.MethodPost, "/admin/people/alice/disable", url.Values{"csrf": {ocsrf}, "totp": {good}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("another session with the first one's step-up cookie and a used code: %d, want 401", resp.StatusCode)
	}
	now = now.Add(6 * time.Minute)
	if resp, _ := b.do(http.MethodPost, "/admin/people/alice/disable", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after the window: %d, want 401", resp.StatusCode)
	}
	if u, _, _ := s.Users.Get(bg(t), "alice"); u.Disabled {
		t.Fatal("alice disabled without a fresh code")
	}
	if !auditHas(t, s, "auth.mfa", func(e *audit.Event) bool { return e.Actor.UserID == "admin" && e.Outcome == audit.Failure }) {
		t.Error("the wrong step-up code is not in the audit log")
	}
}
