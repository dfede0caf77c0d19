package authn_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
)

// TestReturnAfterSignIn: a browser sign-in started with a return address
// (the portal or the console sending a signed-out person to /login) ends
// there, carried through the OIDC state; only paths on this server are
// accepted, and anything that a browser could read as another site is
// refused at /login (no open redirect) and audited.
func TestReturnAfterSignIn(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{})
	for _, tt := range []struct {
		name, ret, want string
	}{
		{"no return address", "", authn.PathSignedIn},
		{"the portal", "/portal", "/portal"},
		{"a console page with a query", "/admin/people?user=alice%40example.com", "/admin/people?user=alice%40example.com"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			login := e.URLOf(authn.PathLogin)
			if tt.ret != "" {
				login = e.URLOf(authn.LoginURL(tt.ret))
			}
			res, err := e.NewBrowser().SignIn(login, "demo", "demo")
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Final.Header.Get("Location"); got != tt.want {
				t.Errorf("signed in, sent to %q, want %q", got, tt.want)
			}
		})
	}
	for _, ret := range []string{
		"//evil.example", "https://evil.example", "/\\evil.example", "\\\\evil.example", "/\t/evil.example",
		"/\n/evil.example", "http:evil.example", "javascript:alert(1)", "evil.example", "/login", "/mfa",
		"//evil.example/portal", "/%0d%0aSet-Cookie:x=1", "///evil.example",
	} {
		t.Run("refused "+url.QueryEscape(ret), func(t *testing.T) {
			before := len(e.Events("bad request"))
			p, err := e.NewBrowser().Get(e.URLOf(authn.PathLogin) + "?return=" + url.QueryEscape(ret))
			if err != nil {
				t.Fatal(err)
			}
			if p.Status != http.StatusBadRequest || p.Location != "" {
				t.Fatalf("/login?return=%q: %d to %q, want a refusal", ret, p.Status, p.Location)
			}
			if len(e.Events("bad request")) != before+1 {
				t.Errorf("refusal not audited")
			}
			e.WantEvent(audit.TypeLogin, "bad request")
		})
	}
	// A desktop client's sign-in goes back to the client, never elsewhere.
	q := desktopQuery("http://127.0.0.1:49152/callback", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "s", false)
	q.Set("return", "/portal")
	if p, err := e.NewBrowser().Get(e.URLOf(authn.PathLogin) + "?" + q.Encode()); err != nil || p.Status != http.StatusBadRequest {
		t.Errorf("a desktop sign-in with a return address: %v %+v", err, p)
	}
}

// TestLoginURL: the address to send a signed-out browser to keeps the
// path and query it wanted.
func TestLoginURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "/login",
		"/portal":           "/login?return=%2Fportal",
		"/admin/x?a=1&b=2":  "/login?return=%2Fadmin%2Fx%3Fa%3D1%26b%3D2",
		"//evil.example":    "/login",
		"https://evil.test": "/login",
	} {
		if got := authn.LoginURL(in); got != want {
			t.Errorf("LoginURL(%q) = %q, want %q", in, got, want)
		}
	}
}
