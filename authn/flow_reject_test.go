package authn_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/devop"
	"github.com/ferryvpn/ferry/authn/flowtest"
	"golang.org/x/oauth2"
)

// rejectUsers exercise the sign-in policy of rejectEnv.
var rejectUsers = []devop.User{
	{Username: "demo", Password: "demo", Email: "demo@example.com", Groups: []string{"engineering", flowtest.AdminGroup}},
	{Username: "alice", Password: "alice", Email: "alice@example.com", Groups: []string{"engineering"}},
	{Username: "mallory", Password: "mallory", Email: "mallory@evil.example", Groups: []string{"engineering"}},
	{Username: "bob", Password: "bob", Email: "bob@example.com", Groups: []string{"sales"}},
}

// rejectEnv admits example.com addresses in engineering or ferry-admins.
func rejectEnv(t *testing.T) *flowtest.Env {
	return flowtest.Start(t, flowtest.Options{
		Users: rejectUsers,
		OIDC: func(c *authn.OIDCConfig) {
			c.AllowedEmailDomains = []string{"EXAMPLE.com"}
			c.RequiredGroups = []string{"engineering", flowtest.AdminGroup}
		},
	})
}

// stateOf returns the state parameter of an IdP authorization URL.
func stateOf(t *testing.T, authURL string) string {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("state")
}

// wantRefused checks that a page is a generic refusal: no reason leaks.
func wantRefused(t *testing.T, p *flowtest.Page, err error, status int, reason string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != status {
		t.Fatalf("status %d, want %d: %.300s", p.Status, status, p.Body)
	}
	if reason != "" && strings.Contains(p.Body, reason) {
		t.Errorf("the page tells the client the reason %q", reason)
	}
}

// TestCallbackRejects tries every way the OIDC step can be forged or
// misused; each is refused, generically, and audited with its exact reason.
func TestCallbackRejects(t *testing.T) {
	e := rejectEnv(t)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// Each case signs in at the IdP, is set up by arrange, then delivers
	// the callback (or what arrange returns instead).
	tests := []struct {
		name    string
		user    string
		arrange func(t *testing.T, b *flowtest.Browser, authURL, callback string) (deliver string, from *flowtest.Browser)
		status  int
		reason  string
	}{
		{name: "forged signature", reason: "id token signature invalid", arrange: func(t *testing.T, b *flowtest.Browser, _, cb string) (string, *flowtest.Browser) {
			e.SetRewrite(func(c map[string]any) (map[string]any, *rsa.PrivateKey, string) { return c, otherKey, e.OPKeyID })
			return cb, b
		}},
		{name: "wrong issuer", reason: "id token issuer mismatch", arrange: func(t *testing.T, b *flowtest.Browser, _, cb string) (string, *flowtest.Browser) {
			e.SetRewrite(e.Resign(func(c map[string]any) { c["iss"] = "http://127.0.0.2:1" }))
			return cb, b
		}},
		{name: "wrong audience", reason: "id token audience mismatch", arrange: func(t *testing.T, b *flowtest.Browser, _, cb string) (string, *flowtest.Browser) {
			e.SetRewrite(e.Resign(func(c map[string]any) { c["aud"] = []string{"another-client"} }))
			return cb, b
		}},
		{name: "nonce mismatch", reason: "nonce mismatch", arrange: func(t *testing.T, b *flowtest.Browser, _, cb string) (string, *flowtest.Browser) {
			e.SetRewrite(e.Resign(func(c map[string]any) { c["nonce"] = "not-the-nonce" }))
			return cb, b
		}},
		{name: "nonce missing", reason: "nonce mismatch", arrange: func(t *testing.T, b *flowtest.Browser, _, cb string) (string, *flowtest.Browser) {
			e.SetRewrite(e.Resign(func(c map[string]any) { delete(c, "nonce") }))
			return cb, b
		}},
		{name: "expired ID token", reason: "id token expired", arrange: func(t *testing.T, b *flowtest.Browser, _, cb string) (string, *flowtest.Browser) {
			e.SetRPClockSkew(2 * time.Hour)
			return cb, b
		}},
		{name: "missing state", reason: "state missing", arrange: func(t *testing.T, b *flowtest.Browser, _, cb string) (string, *flowtest.Browser) {
			return withQuery(t, cb, "state", ""), b
		}},
		{name: "unknown state", reason: "state unknown", arrange: func(t *testing.T, b *flowtest.Browser, _, cb string) (string, *flowtest.Browser) {
			return withQuery(t, cb, "state", "forged-state"), b
		}},
		{name: "state from another browser", reason: "browser mismatch", arrange: func(t *testing.T, _ *flowtest.Browser, _, cb string) (string, *flowtest.Browser) {
			return cb, e.NewBrowser()
		}},
		{name: "expired pending login", reason: "state expired", arrange: func(t *testing.T, b *flowtest.Browser, _, cb string) (string, *flowtest.Browser) {
			e.Clock.Advance(11 * time.Minute)
			return cb, b
		}},
		{name: "IdP error", reason: "idp error", arrange: func(t *testing.T, b *flowtest.Browser, _, cb string) (string, *flowtest.Browser) {
			return withQuery(t, withQuery(t, cb, "code", ""), "error", "access_denied"), b
		}},
		{name: "wrong PKCE verifier at the IdP", reason: "idp pkce rejected", arrange: func(t *testing.T, b *flowtest.Browser, authURL, cb string) (string, *flowtest.Browser) {
			setVerifier(t, e, stateOf(t, authURL), oauth2.GenerateVerifier())
			return cb, b
		}},
		{name: "missing PKCE verifier at the IdP", reason: "idp pkce rejected", arrange: func(t *testing.T, b *flowtest.Browser, authURL, cb string) (string, *flowtest.Browser) {
			setVerifier(t, e, stateOf(t, authURL), "")
			return cb, b
		}},
		{name: "email domain not allowed", user: "mallory", status: http.StatusForbidden, reason: "email domain not allowed"},
		{name: "group not allowed", user: "bob", status: http.StatusForbidden, reason: "group not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Cleanup(func() { e.SetRewrite(nil); e.SetRPClockSkew(0) })
			user, status := tt.user, tt.status
			if user == "" {
				user = "alice"
			}
			if status == 0 {
				status = http.StatusBadRequest
			}
			b := e.NewBrowser()
			authURL, err := b.StartLogin(e.URLOf(authn.PathLogin))
			if err != nil {
				t.Fatal(err)
			}
			cb, err := b.IdPLogin(authURL, user, user)
			if err != nil {
				t.Fatal(err)
			}
			deliver, from := cb, b
			if tt.arrange != nil {
				deliver, from = tt.arrange(t, b, authURL, cb)
			}
			e.Recorder.Reset()
			p, err := from.Get(deliver)
			wantRefused(t, p, err, status, tt.reason)
			ev := e.WantEvent(audit.TypeLogin, tt.reason)
			if ev.Action != authn.ActionLoginOIDC || ev.Source.UserAgent != flowtest.UserAgent {
				t.Errorf("event %+v: want action %s with the user agent", ev, authn.ActionLoginOIDC)
			}
			if strings.Contains(tt.reason, "not allowed") && ev.Actor.UserID != e.UserID("devop-"+user) {
				t.Errorf("policy refusal names actor %q, want devop-%s", ev.Actor.UserID, user)
			}
			if got := e.Recorder.OfType(audit.TypeLogin, ""); len(got) != 1 {
				t.Errorf("want exactly one auth.login event, got %d: %+v", len(got), got)
			}
		})
	}

	t.Run("replayed state", func(t *testing.T) {
		b := e.NewBrowser()
		authURL, err := b.StartLogin(e.URLOf(authn.PathLogin))
		if err != nil {
			t.Fatal(err)
		}
		cb, err := b.IdPLogin(authURL, "alice", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if p, err := b.Get(cb); err != nil || p.Status != http.StatusSeeOther {
			t.Fatalf("first callback: %v %+v", err, p)
		}
		// The same answer again, this time to another node.
		e.SetRoute(func(string) int { return 2 })
		defer e.SetRoute(flowtest.DefaultRoute(3))
		p, err := b.Get(cb)
		wantRefused(t, p, err, http.StatusBadRequest, "state replayed")
		e.WantEvent(audit.TypeLogin, "state replayed")
	})

	t.Run("user disabled", func(t *testing.T) {
		if _, err := e.NewBrowser().SignIn(e.URLOf(authn.PathLogin), "demo", "demo"); err != nil {
			t.Fatal(err)
		}
		if err := e.Users[1].SetDisabled(t.Context(), e.UserID("devop-demo"), true, audit.Actor{UserID: "admin"}, authn.Source{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = e.Users[1].SetDisabled(t.Context(), e.UserID("devop-demo"), false, audit.Actor{UserID: "admin"}, authn.Source{})
		})
		b := e.NewBrowser()
		authURL, err := b.StartLogin(e.URLOf(authn.PathLogin))
		if err != nil {
			t.Fatal(err)
		}
		cb, err := b.IdPLogin(authURL, "demo", "demo")
		if err != nil {
			t.Fatal(err)
		}
		p, err := b.Get(cb)
		wantRefused(t, p, err, http.StatusForbidden, "user disabled")
		e.WantEvent(audit.TypeLogin, "user disabled")
	})
}

func withQuery(t *testing.T, raw, k, v string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if v == "" {
		q.Del(k)
	} else {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// setVerifier overwrites the PKCE verifier stored with a pending login, as
// if the relying party had lost it: the IdP must refuse the code.
func setVerifier(t *testing.T, e *flowtest.Env, state, verifier string) {
	t.Helper()
	sum := sha256.Sum256([]byte(state))
	key := "signin/state/" + hex.EncodeToString(sum[:])
	n := e.Cluster.Node(0)
	kv, ok, err := n.Get(t.Context(), key, 1)
	if err != nil || !ok {
		t.Fatalf("pending login %s: %v %v", key, ok, err)
	}
	var rec map[string]any
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		t.Fatal(err)
	}
	rec["verifier"] = verifier
	b, _ := json.Marshal(rec)
	if _, err := n.Put(t.Context(), key, b); err != nil {
		t.Fatal(err)
	}
}

// TestSecondFactorRejects: wrong codes, forged forms and missing steps.
func TestSecondFactorRejects(t *testing.T) {
	e := rejectEnv(t)
	if _, err := e.NewBrowser().SignIn(e.URLOf(authn.PathLogin), "alice", "alice"); err != nil {
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
	page, err := b.Get(e.URLOf(authn.PathMFA))
	if err != nil || page.Status != http.StatusOK {
		t.Fatalf("GET /mfa: %v %+v", err, page)
	}
	csrf := page.Field("csrf")

	t.Run("wrong code", func(t *testing.T) {
		good := e.TOTP("alice")
		wrong := "000000"
		if good == wrong {
			wrong = "111111"
		}
		p, err := b.Submit(e.URLOf(authn.PathMFA), url.Values{"csrf": {csrf}, "code": {wrong}})
		wantRefused(t, p, err, http.StatusUnauthorized, authn.ReasonWrongCode)
		if p.PostStatus != http.StatusSeeOther {
			t.Errorf("the refused form answered %d, want a redirect to its page (POST-redirect-GET)", p.PostStatus)
		}
		if p.Text("error") == "" || p.Field("csrf") == "" {
			t.Errorf("wrong code: want the form again with a message:\n%s", p.Body)
		}
		e.WantEvent(audit.TypeMFA, authn.ReasonWrongCode)
	})
	t.Run("csrf mismatch", func(t *testing.T) {
		p, err := b.Post(e.URLOf(authn.PathMFA), url.Values{"csrf": {"forged"}, "code": {e.TOTP("alice")}})
		wantRefused(t, p, err, http.StatusBadRequest, "csrf mismatch")
		e.WantEvent(audit.TypeMFA, "csrf mismatch")
	})
	t.Run("no step", func(t *testing.T) {
		p, err := e.NewBrowser().Post(e.URLOf(authn.PathMFA), url.Values{"csrf": {csrf}, "code": {"123456"}})
		wantRefused(t, p, err, http.StatusBadRequest, "mfa step missing")
		e.WantEvent(audit.TypeMFA, "mfa step missing")
	})
	t.Run("right code after all", func(t *testing.T) {
		p, err := b.Post(e.URLOf(authn.PathMFA), url.Values{"csrf": {csrf}, "code": {e.TOTP("alice")}})
		if err != nil || p.Status != http.StatusSeeOther {
			t.Fatalf("%v %+v", err, p)
		}
		// The step is used up: the same form again is refused (and
		// audited), and this browser, signed in now, is led on to the
		// portal rather than told the sign-in failed.
		p, err = b.Post(e.URLOf(authn.PathMFA), url.Values{"csrf": {csrf}, "code": {e.TOTP("alice")}})
		wantRefused(t, p, err, http.StatusOK, "mfa step missing")
		if !strings.Contains(p.Text("message"), "you are signed in as") {
			t.Errorf("resubmitted form: %q", p.Text("message"))
		}
		e.WantEvent(audit.TypeMFA, "mfa step missing")
		p, err = e.NewBrowser().Post(e.URLOf(authn.PathMFA), url.Values{"csrf": {csrf}, "code": {e.TOTP("alice")}})
		wantRefused(t, p, err, http.StatusBadRequest, "mfa step missing")
	})
}
