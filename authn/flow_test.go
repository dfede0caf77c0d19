package authn_test

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
)

// TestBrowserSignIn runs the browser sign-in end to end on three nodes,
// with /login, /callback and /mfa each served by a different node:
// enrollment with a QR code, a later sign-in with a code, sign-out.
func TestBrowserSignIn(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{})
	b := e.NewBrowser()
	res, err := b.SignIn(e.URLOf(authn.PathLogin), "demo", "demo")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Enrolled {
		t.Fatal("first sign-in did not enroll TOTP")
	}
	checkEnrollPage(t, res.MFAPage)
	if len(res.RecoveryCodes) == 0 {
		t.Error("enrollment showed no recovery codes")
	}
	if got, want := res.Final.Location, e.URLOf(authn.PathSignedIn); got != want {
		t.Fatalf("after the second factor: redirect to %q, want %q", got, want)
	}
	checkSessionCookie(t, res.Final)

	served := map[string]int{}
	for _, h := range e.Hits() {
		served[h.Path] = h.Node
	}
	if served[authn.PathLogin] == served[authn.PathCallback] || served[authn.PathCallback] == served[authn.PathMFA] || served[authn.PathLogin] == served[authn.PathMFA] {
		t.Errorf("steps were not spread over nodes: %v", served)
	}

	page, err := b.Get(res.Final.Location)
	if err != nil || page.Status != http.StatusOK {
		t.Fatalf("GET /signed-in: %v %v", page, err)
	}
	if !strings.Contains(page.Body, "demo@example.com") || page.Text("role") != authn.RoleAdmin {
		t.Errorf("signed-in page lacks the identity or role:\n%s", page.Body)
	}
	checkHeaders(t, page)

	// Audit: the OIDC step and the session, both successes, with where
	// they came from.
	oidcOK := e.Recorder.Filter(func(ev audit.Event) bool {
		return ev.Type == audit.TypeLogin && ev.Action == authn.ActionLoginOIDC && ev.Outcome == audit.Success
	})
	login := e.Recorder.Filter(func(ev audit.Event) bool {
		return ev.Type == audit.TypeLogin && ev.Action == authn.ActionLoginSession && ev.Outcome == audit.Success
	})
	if len(oidcOK) != 1 || len(login) != 1 {
		t.Fatalf("want one OIDC success and one session start, got %d and %d", len(oidcOK), len(login))
	}
	if ev := login[0]; ev.Actor.UserID != e.UserID("devop-demo") || ev.Source.UserAgent != flowtest.UserAgent || ev.Source.Addr == "" {
		t.Errorf("auth.login event = %+v", ev)
	}

	// A second sign-in, another browser: no enrollment, just a code.
	b2 := e.NewBrowser()
	res2, err := b2.SignIn(e.URLOf(authn.PathLogin), "demo", "demo")
	if err != nil {
		t.Fatal(err)
	}
	if res2.Enrolled || res2.MFAPage.Field("csrf") == "" || !strings.Contains(res2.MFAPage.Body, `id="code"`) {
		t.Fatalf("second sign-in should ask for a code:\n%s", res2.MFAPage.Body)
	}

	// Sign-out revokes the session on every node.
	logout, err := b.Submit(e.URLOf(authn.PathLogout), url.Values{"csrf": {page.Field("csrf")}})
	if err != nil || logout.PostStatus != http.StatusSeeOther || logout.Status != http.StatusOK || !strings.HasPrefix(logout.Text("message"), "You are signed out") {
		t.Fatalf("sign-out: %v %+v", err, logout)
	}
	for node := range e.NodeURLs {
		e.SetRoute(func(string) int { return node })
		again, err := b.Get(e.URLOf(authn.PathSignedIn))
		if err != nil || again.Status != http.StatusSeeOther {
			t.Fatalf("node %d: /signed-in after sign-out: %v %+v", node, err, again)
		}
	}
}

// TestRecoveryCodeSignIn signs in with a recovery code instead of TOTP.
func TestRecoveryCodeSignIn(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{})
	res, err := e.NewBrowser().SignIn(e.URLOf(authn.PathLogin), "alice", "alice")
	if err != nil {
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
	if _, err := b.Get(cb); err != nil {
		t.Fatal(err)
	}
	form, err := b.Get(e.URLOf(authn.PathMFARecovery))
	if err != nil || form.Status != http.StatusOK {
		t.Fatalf("GET /mfa/recovery: %v %+v", err, form)
	}
	done, err := b.Post(e.URLOf(authn.PathMFARecovery), url.Values{"csrf": {form.Field("csrf")}, "code": {res.RecoveryCodes[0]}})
	if err != nil || done.Status != http.StatusSeeOther || done.Location != e.URLOf(authn.PathSignedIn) {
		t.Fatalf("recovery sign-in: %v %+v", err, done)
	}
	sessions, err := e.Sessions[0].List(t.Context(), e.UserID("devop-alice"))
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]bool{}
	for _, s := range sessions {
		methods[s.MFAMethod] = true
	}
	if !methods[authn.MethodRecovery] || !methods[authn.MethodTOTP] {
		t.Errorf("sessions' MFA methods = %v, want totp and recovery", methods)
	}
}

func checkEnrollPage(t *testing.T, p *flowtest.Page) {
	t.Helper()
	src := p.Attr("qr", "src")
	const prefix = "data:image/png;base64,"
	if !strings.HasPrefix(src, prefix) {
		t.Fatalf("QR img src = %.40q, want a data: PNG", src)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, prefix))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil || img.Bounds().Dx() < 100 {
		t.Fatalf("QR image: %v, %v", err, img)
	}
	if p.Attr("qr", "alt") == "" {
		t.Error("QR image has no alt text")
	}
	if uri := p.Text("otpauth"); !strings.HasPrefix(uri, "otpauth://totp/") || !strings.Contains(uri, "secret="+strings.ReplaceAll(p.Text("secret"), " ", "")) {
		t.Errorf("otpauth URI %q / secret %q not shown for manual entry", uri, p.Text("secret"))
	}
	for _, want := range []string{`<html lang="en">`, `<label for="code">`, "<h1>"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("enroll page lacks %s", want)
		}
	}
}

func checkSessionCookie(t *testing.T, p *flowtest.Page) {
	t.Helper()
	for _, c := range (&http.Response{Header: p.Header}).Cookies() {
		if c.Name != authn.SessionCookie {
			continue
		}
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Value == "" {
			t.Errorf("session cookie %+v: want HttpOnly, Secure, SameSite=Lax, Path=/", c)
		}
		return
	}
	t.Error("no session cookie set")
}

func checkHeaders(t *testing.T, p *flowtest.Page) {
	t.Helper()
	for h, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"Content-Security-Policy": "default-src 'none'",
	} {
		if got := p.Header.Get(h); !strings.Contains(got, want) {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
}
