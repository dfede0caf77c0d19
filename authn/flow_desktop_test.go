package authn_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
	"golang.org/x/oauth2"
)

// desktopLogin is a desktop client's side of a sign-in, driven by hand.
type desktopLogin struct {
	verifier, redirect, state string
	code                      string // from the loopback redirect
}

func desktopQuery(redirect, challenge, state string, admin bool) url.Values {
	q := url.Values{
		"client": {"desktop"}, "redirect_uri": {redirect}, "code_challenge": {challenge},
		"code_challenge_method": {"S256"}, "state": {state},
	}
	if admin {
		q.Set("admin", "1")
	}
	return q
}

// signInDesktop runs a desktop sign-in as user up to the loopback
// redirect, without redeeming the code.
func signInDesktop(t *testing.T, e *flowtest.Env, user string, admin bool) desktopLogin {
	t.Helper()
	d := desktopLogin{verifier: oauth2.GenerateVerifier(), redirect: "http://127.0.0.1:49152/callback", state: "client-state-1"}
	q := desktopQuery(d.redirect, oauth2.S256ChallengeFromVerifier(d.verifier), d.state, admin)
	res, err := e.NewBrowser().SignIn(e.URLOf(authn.PathLogin)+"?"+q.Encode(), user, user)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := url.Parse(res.Final.Location)
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != d.redirect {
		t.Fatalf("sent back to %q, want %q", res.Final.Location, d.redirect)
	}
	if loc.Query().Get("state") != d.state {
		t.Fatalf("loopback state %q, want %q", loc.Query().Get("state"), d.state)
	}
	if csp := res.Final.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "http://127.0.0.1:*") {
		t.Errorf("CSP %q does not let the form redirect to the loopback client", csp)
	}
	d.code = loc.Query().Get("code")
	return d
}

type tokenReply struct {
	status int
	body   map[string]string
}

func redeem(t *testing.T, e *flowtest.Env, contentType string, body any) tokenReply {
	t.Helper()
	raw, ok := body.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, e.URLOf(authn.PathToken), bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", flowtest.UserAgent)
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: e.ClientTLS}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := tokenReply{status: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&out.body); err != nil {
		t.Fatalf("token response: %v", err)
	}
	return out
}

func (d desktopLogin) request() map[string]string {
	return map[string]string{"code": d.code, "code_verifier": d.verifier, "redirect_uri": d.redirect}
}

// TestDesktopLoginRejects: /login refuses desktop requests whose redirect
// URI is not a loopback callback of the one accepted shape, or whose PKCE
// or state is malformed.
func TestDesktopLoginRejects(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{})
	ch := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	const good = "http://127.0.0.1:8765/callback"
	tests := []struct {
		name   string
		q      url.Values
		reason string
	}{
		{"https host", desktopQuery("https://evil.example/callback", ch, "s", false), "redirect uri not loopback"},
		{"localhost", desktopQuery("http://localhost:8765/callback", ch, "s", false), "redirect uri not loopback"},
		{"other loopback address", desktopQuery("http://127.0.0.2:8765/callback", ch, "s", false), "redirect uri not loopback"},
		{"https loopback", desktopQuery("https://127.0.0.1:8765/callback", ch, "s", false), "redirect uri not loopback"},
		{"no port", desktopQuery("http://127.0.0.1/callback", ch, "s", false), "redirect uri not loopback"},
		{"port 0", desktopQuery("http://127.0.0.1:0/callback", ch, "s", false), "redirect uri not loopback"},
		{"other path", desktopQuery("http://127.0.0.1:8765/cb", ch, "s", false), "redirect uri not loopback"},
		{"query", desktopQuery(good+"?next=https://evil.example", ch, "s", false), "redirect uri not loopback"},
		{"user info", desktopQuery("http://evil@127.0.0.1:8765/callback", ch, "s", false), "redirect uri not loopback"},
		{"plain PKCE", func() url.Values {
			q := desktopQuery(good, ch, "s", false)
			q.Set("code_challenge_method", "plain")
			return q
		}(), "bad request"},
		{"short challenge", desktopQuery(good, ch[:20], "s", false), "bad request"},
		{"no state", desktopQuery(good, ch, "", false), "bad request"},
		{"admin for a browser", url.Values{"admin": {"1"}}, "bad request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.Recorder.Reset()
			p, err := e.NewBrowser().Get(e.URLOf(authn.PathLogin) + "?" + tt.q.Encode())
			wantRefused(t, p, err, http.StatusBadRequest, tt.reason)
			ev := e.WantEvent(audit.TypeLogin, tt.reason)
			if ev.Action != authn.ActionLoginStart {
				t.Errorf("action %q, want %q", ev.Action, authn.ActionLoginStart)
			}
		})
	}
	t.Run("IPv6 loopback accepted", func(t *testing.T) {
		p, err := e.NewBrowser().Get(e.URLOf(authn.PathLogin) + "?" + desktopQuery("http://[::1]:8765/callback", ch, "s", false).Encode())
		if err != nil || p.Status != http.StatusFound || !strings.HasPrefix(p.Location, e.OPURL) {
			t.Fatalf("%v %+v", err, p)
		}
	})
}

// TestTokenEndpointRejects: a loopback code works once, for the client
// that holds its PKCE verifier and redirect URI, within its minute, and
// for administrators only when admin=1 was asked.
func TestTokenEndpointRejects(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{})
	const ctJSON = "application/json"

	t.Run("redeem once, replay refused", func(t *testing.T) {
		d := signInDesktop(t, e, "alice", false)
		r := redeem(t, e, ctJSON, d.request())
		if r.status != http.StatusOK || r.body["token"] == "" || r.body["role"] != authn.RoleUser || r.body["user_id"] != e.UserID("devop-alice") {
			t.Fatalf("redeem: %+v", r)
		}
		if _, err := e.Sessions[2].Validate(t.Context(), authn.SessionToken(r.body["token"])); err != nil {
			t.Fatalf("token does not validate on another node: %v", err)
		}
		e.SetRoute(func(string) int { return 0 }) // the replay goes to another node
		defer e.SetRoute(flowtest.DefaultRoute(3))
		r = redeem(t, e, ctJSON, d.request())
		if r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
			t.Fatalf("replay: %+v", r)
		}
		e.WantEvent(audit.TypeLogin, "code replayed")
	})

	cases := []struct {
		name   string
		edit   func(d *desktopLogin)
		before func()
		reason string
	}{
		{name: "wrong verifier", edit: func(d *desktopLogin) { d.verifier = oauth2.GenerateVerifier() }, reason: "pkce mismatch"},
		{name: "missing verifier", edit: func(d *desktopLogin) { d.verifier = "" }, reason: "pkce mismatch"},
		{name: "malformed verifier", edit: func(d *desktopLogin) { d.verifier = "short" }, reason: "pkce mismatch"},
		{name: "redirect mismatch", edit: func(d *desktopLogin) { d.redirect = "http://127.0.0.1:49153/callback" }, reason: "redirect uri mismatch"},
		{name: "expired code", before: func() { e.Clock.Advance(61 * time.Second) }, reason: "code expired"},
		{name: "unknown code", edit: func(d *desktopLogin) { d.code = "bm90LWEtY29kZQ" }, reason: "code unknown"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			d := signInDesktop(t, e, "alice", false)
			good := d
			if tt.edit != nil {
				tt.edit(&d)
			}
			if tt.before != nil {
				tt.before()
			}
			e.Recorder.Reset()
			r := redeem(t, e, ctJSON, d.request())
			if r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" || r.body["token"] != "" {
				t.Fatalf("%+v", r)
			}
			ev := e.WantEvent(audit.TypeLogin, tt.reason)
			if ev.Action != authn.ActionLoginCode || ev.Source.UserAgent != flowtest.UserAgent {
				t.Errorf("event %+v", ev)
			}
			if tt.reason == "code unknown" {
				return
			}
			// A failed attempt burns the code: the right request now fails.
			if r := redeem(t, e, ctJSON, good.request()); r.status != http.StatusBadRequest {
				t.Fatalf("code still usable after a failed attempt: %+v", r)
			}
			e.WantEvent(audit.TypeLogin, "code replayed")
		})
	}

	t.Run("concurrent redeem on two nodes", func(t *testing.T) {
		d := signInDesktop(t, e, "alice", false)
		body, _ := json.Marshal(d.request())
		statuses := make(chan int, 2)
		for _, node := range []string{e.NodeURLs[1], e.NodeURLs[2]} {
			go func() {
				resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: e.ClientTLS}}).Post(node+authn.PathToken, ctJSON, bytes.NewReader(body))
				if err != nil {
					statuses <- 0
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			}()
		}
		a, b := <-statuses, <-statuses
		if !(a == http.StatusOK && b == http.StatusBadRequest || a == http.StatusBadRequest && b == http.StatusOK) {
			t.Fatalf("two redeems of one code on two nodes: %d and %d, want exactly one 200", a, b)
		}
	})

	t.Run("admin=1 refused for a non-admin", func(t *testing.T) {
		before, err := e.Sessions[0].List(t.Context(), e.UserID("devop-alice"))
		if err != nil {
			t.Fatal(err)
		}
		// The role is checked before the browser goes back (issue #20:
		// the browser said "Signed in" while the terminal refused): the
		// loopback answer is a refusal that says why, and no code exists.
		d := desktopLogin{verifier: oauth2.GenerateVerifier(), redirect: "http://127.0.0.1:49152/callback", state: "client-state-2"}
		q := desktopQuery(d.redirect, oauth2.S256ChallengeFromVerifier(d.verifier), d.state, true)
		res, err := e.NewBrowser().SignIn(e.URLOf(authn.PathLogin)+"?"+q.Encode(), "alice", "alice")
		if err != nil {
			t.Fatal(err)
		}
		loc, err := url.Parse(res.Final.Location)
		if err != nil || loc.Scheme+"://"+loc.Host+loc.Path != d.redirect {
			t.Fatalf("sent to %q (%v), want the loopback client", res.Final.Location, err)
		}
		lq := loc.Query()
		if lq.Get("error") != "access_denied" || lq.Get("code") != "" || lq.Get("state") != d.state ||
			!strings.Contains(lq.Get("error_description"), "not an administrator") {
			t.Fatalf("loopback answer %q, want access_denied saying the account is not an administrator", loc.RawQuery)
		}
		ev := e.WantEvent(audit.TypeLogin, "not admin")
		if ev.Actor.UserID != e.UserID("devop-alice") {
			t.Errorf("actor %q", ev.Actor.UserID)
		}
		if after, err := e.Sessions[0].List(t.Context(), e.UserID("devop-alice")); err != nil || len(after) != len(before) {
			t.Errorf("a refused admin login left a session: %d sessions before, %d after (%v)", len(before), len(after), err)
		}
	})
	t.Run("admin=1 for an admin", func(t *testing.T) {
		d := signInDesktop(t, e, "demo", true)
		if r := redeem(t, e, ctJSON, d.request()); r.status != http.StatusOK || r.body["role"] != authn.RoleAdmin {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("malformed requests", func(t *testing.T) {
		for _, tt := range []struct {
			ct   string
			body []byte
			want int
		}{
			{"text/plain", []byte(`{}`), http.StatusUnsupportedMediaType},
			{ctJSON, []byte(`{"code":"abc","code_verifier":"x","redirect_uri":"http://127.0.0.1:1/callback","extra":1}`), http.StatusBadRequest},
			{ctJSON, []byte(`{"code":"a b"}`), http.StatusBadRequest},
			{ctJSON, []byte(`{"code":"abc"} {}`), http.StatusBadRequest},
			{ctJSON, bytes.Repeat([]byte("x"), 10000), http.StatusBadRequest},
		} {
			if r := redeem(t, e, tt.ct, tt.body); r.status != tt.want {
				t.Errorf("%s %.40q: status %d, want %d", tt.ct, tt.body, r.status, tt.want)
			}
		}
	})
}
