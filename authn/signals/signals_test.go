package signals_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
	"github.com/ferryvpn/ferry/authn/signals"
)

// revoker stands in for profiles.Store at this layer: it disables through
// authn (the real path for sessions) and counts device revocations, which
// profiles' own tests and the API's end-to-end tests cover.
type revoker struct {
	users *authn.Users
	mu    sync.Mutex
	calls []string // "revoke <user>" or "disable <user>"
}

func (r *revoker) RevokeUser(ctx context.Context, userID, reason string, a audit.Actor) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "revoke "+userID)
	return 1, nil
}

func (r *revoker) SetUserDisabled(ctx context.Context, userID string, d bool, a audit.Actor, src authn.Source) (int, error) {
	if err := r.users.SetDisabled(ctx, userID, d, a, src); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "disable "+userID)
	return 1, nil
}

func (r *revoker) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

const (
	txIssuer   = "https://ssf.idp.example.com"
	txAudience = "https://vpn.example.com"
)

type env struct {
	fe     *flowtest.Env
	rev    *revoker
	srv    *httptest.Server
	txKey  *rsa.PrivateKey
	user   string // the demo user's ferry ID
	client *http.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	fe := flowtest.Start(t, flowtest.Options{Nodes: 1})
	txKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &txKey.PublicKey, KeyID: "tx-1", Algorithm: "RS256", Use: "sig"}}})
	}))
	t.Cleanup(jwks.Close)
	rev := &revoker{users: fe.Users[0]}
	rcv, err := signals.New(signals.Config{
		Store: fe.Cluster.Node(0), Users: fe.Users[0], Sessions: fe.Sessions[0], Revoker: rev, Recorder: fe.Recorder,
		Logout:      &signals.Logout{Issuer: fe.OPURL, ClientID: flowtest.ClientID},
		Transmitter: &signals.Transmitter{Issuer: txIssuer, JWKSURL: jwks.URL, Audience: txAudience},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	return &env{fe: fe, rev: rev, srv: srv, txKey: txKey, user: authn.UserKey(fe.OPURL, "devop-demo"), client: srv.Client()}
}

// signIn signs the demo user in and returns their session.
func (e *env) signIn(t *testing.T) authn.Session {
	t.Helper()
	if _, err := e.fe.NewBrowser().SignIn(e.fe.URLOf(authn.PathLogin), "demo", "demo"); err != nil {
		t.Fatal(err)
	}
	ss, err := e.fe.Sessions[0].List(t.Context(), e.user)
	if err != nil || len(ss) == 0 {
		t.Fatalf("no session after sign-in: %v %v", ss, err)
	}
	return ss[len(ss)-1]
}

func sign(t *testing.T, claims map[string]any, key *rsa.PrivateKey, kid, typ string) string {
	t.Helper()
	b, _ := json.Marshal(claims)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

var jtiSeq struct {
	sync.Mutex
	n int
}

func newJTI() string {
	jtiSeq.Lock()
	defer jtiSeq.Unlock()
	jtiSeq.n++
	return "jti-" + time.Now().Format("150405.000000") + "-" + string(rune('a'+jtiSeq.n%26)) + strings.Repeat("x", jtiSeq.n%7)
}

func (e *env) logoutClaims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": e.fe.OPURL, "aud": flowtest.ClientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": newJTI(), "sub": "devop-demo",
		"events": map[string]any{signals.EventBackChannelLogout: map[string]any{}},
	}
}

func (e *env) postLogout(t *testing.T, token string) (int, string) {
	t.Helper()
	resp, err := e.client.PostForm(e.srv.URL+signals.PathBackChannelLogout, url.Values{"logout_token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) lastEvent(t *testing.T, action string) audit.Event {
	t.Helper()
	evs := e.fe.Recorder.Filter(func(ev audit.Event) bool { return ev.Action == action })
	if len(evs) == 0 {
		t.Fatalf("no %s audit event", action)
	}
	return evs[len(evs)-1]
}

func TestBackChannelLogout(t *testing.T) {
	e := newEnv(t)
	e.signIn(t)
	tok := sign(t, e.logoutClaims(), e.fe.OPKey, e.fe.OPKeyID, "logout+jwt")
	if status, body := e.postLogout(t, tok); status != 200 {
		t.Fatalf("valid logout token: %d %s", status, body)
	}
	if ss, _ := e.fe.Sessions[0].List(t.Context(), e.user); len(ss) != 0 {
		t.Errorf("sessions left after logout: %v", ss)
	}
	if calls := e.rev.take(); len(calls) != 1 || calls[0] != "revoke "+e.user {
		t.Errorf("revoker calls %q, want the user's devices revoked", calls)
	}
	if ev := e.lastEvent(t, signals.ActionLogout); ev.Outcome != audit.Success || ev.Target.User != e.user {
		t.Errorf("audit %+v", ev)
	}
	// The same token again is a replay, refused on the replicated guard.
	if status, body := e.postLogout(t, tok); status != 400 || !strings.Contains(body, "invalid_request") {
		t.Errorf("replayed token: %d %s", status, body)
	}
	if ev := e.lastEvent(t, signals.ActionLogout); ev.Outcome != audit.Failure || ev.Reason != "replayed jti" {
		t.Errorf("replay audit %+v", ev)
	}
}

func TestBackChannelLogoutBySID(t *testing.T) {
	e := newEnv(t)
	e.fe.SetRewrite(e.fe.Resign(func(c map[string]any) { c["sid"] = "idp-session-1" }))
	e.signIn(t)
	e.fe.SetRewrite(e.fe.Resign(func(c map[string]any) { c["sid"] = "idp-session-2" }))
	e.signIn(t)
	e.fe.SetRewrite(nil)
	c := e.logoutClaims()
	delete(c, "sub")
	c["sid"] = "idp-session-1"
	if status, body := e.postLogout(t, sign(t, c, e.fe.OPKey, e.fe.OPKeyID, "logout+jwt")); status != 200 {
		t.Fatalf("logout by sid: %d %s", status, body)
	}
	ss, _ := e.fe.Sessions[0].List(t.Context(), e.user)
	if len(ss) != 1 || ss[0].Identity.IdPSession != "idp-session-2" {
		t.Errorf("sessions after logout of idp-session-1: %+v, want only idp-session-2's", ss)
	}
}

func TestBackChannelLogoutRefusals(t *testing.T) {
	e := newEnv(t)
	e.signIn(t)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name   string
		edit   func(map[string]any)
		key    *rsa.PrivateKey
		typ    string
		reason string
	}{
		{"wrong issuer", func(c map[string]any) { c["iss"] = "https://evil.example.com" }, nil, "", "wrong issuer"},
		{"wrong audience", func(c map[string]any) { c["aud"] = "someone-else" }, nil, "", "wrong audience"},
		{"bad signature", func(map[string]any) {}, other, "", "bad signature"},
		{"expired", func(c map[string]any) {
			c["iat"] = time.Now().Add(-time.Hour).Unix()
			c["exp"] = time.Now().Add(-30 * time.Minute).Unix()
		}, nil, "", "expired"},
		{"issued too long ago", func(c map[string]any) { c["iat"] = time.Now().Add(-time.Hour).Unix() }, nil, "", "issued too long ago"},
		{"no iat", func(c map[string]any) { delete(c, "iat") }, nil, "", "malformed token"},
		{"no events", func(c map[string]any) { delete(c, "events") }, nil, "", "malformed token"},
		{"an ID token (nonce)", func(c map[string]any) { c["nonce"] = "n" }, nil, "", "malformed token"},
		{"neither sub nor sid", func(c map[string]any) { delete(c, "sub") }, nil, "", "malformed token"},
		{"no jti", func(c map[string]any) { delete(c, "jti") }, nil, "", "malformed token"},
		{"wrong typ", func(map[string]any) {}, nil, "secevent+jwt", "wrong typ header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.logoutClaims()
			tc.edit(c)
			key, typ := e.fe.OPKey, "logout+jwt"
			if tc.key != nil {
				key = tc.key
			}
			if tc.typ != "" {
				typ = tc.typ
			}
			status, body := e.postLogout(t, sign(t, c, key, e.fe.OPKeyID, typ))
			if status != 400 || !strings.Contains(body, `"invalid_request"`) {
				t.Fatalf("%d %s, want 400 invalid_request", status, body)
			}
			if ev := e.lastEvent(t, signals.ActionLogout); ev.Outcome != audit.Failure || ev.Reason != tc.reason {
				t.Errorf("audit outcome %s reason %q, want failure %q", ev.Outcome, ev.Reason, tc.reason)
			}
		})
	}
	if status, _ := e.postLogout(t, "not-a-jwt"); status != 400 {
		t.Errorf("garbage: %d", status)
	}
	if ss, _ := e.fe.Sessions[0].List(t.Context(), e.user); len(ss) != 1 {
		t.Errorf("a refused token ended sessions: %v", ss)
	}
	if calls := e.rev.take(); len(calls) != 0 {
		t.Errorf("a refused token revoked: %q", calls)
	}
}

func (e *env) setClaims(event string, subject map[string]any) map[string]any {
	return map[string]any{
		"iss": txIssuer, "aud": txAudience, "iat": time.Now().Unix(), "jti": newJTI(),
		"sub_id": subject,
		"events": map[string]any{event: map[string]any{"event_timestamp": time.Now().Unix()}},
	}
}

func (e *env) pushSET(t *testing.T, token string) (int, map[string]string) {
	t.Helper()
	resp, err := e.client.Post(e.srv.URL+signals.PathSSFEvents, "application/secevent+jwt", strings.NewReader(token))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestSETPush(t *testing.T) {
	e := newEnv(t)
	e.signIn(t)
	subject := map[string]any{"format": "iss_sub", "iss": e.fe.OPURL, "sub": "devop-demo"}

	tok := sign(t, e.setClaims(signals.EventSessionRevoked, subject), e.txKey, "tx-1", "secevent+jwt")
	if status, body := e.pushSET(t, tok); status != 202 {
		t.Fatalf("session-revoked: %d %v", status, body)
	}
	if ss, _ := e.fe.Sessions[0].List(t.Context(), e.user); len(ss) != 0 {
		t.Errorf("sessions left after session-revoked: %v", ss)
	}
	if calls := e.rev.take(); len(calls) != 1 || calls[0] != "revoke "+e.user {
		t.Errorf("revoker calls %q", calls)
	}
	if status, body := e.pushSET(t, tok); status != 400 || body["err"] != "invalid_request" {
		t.Errorf("replayed SET: %d %v", status, body)
	}
	if ev := e.lastEvent(t, signals.ActionSET); ev.Reason != "replayed jti" {
		t.Errorf("replay audit %+v", ev)
	}

	// credential-change, by CAEP's older subject inside the event.
	e.signIn(t)
	c := e.setClaims(signals.EventCredentialChange, nil)
	delete(c, "sub_id")
	c["events"] = map[string]any{signals.EventCredentialChange: map[string]any{
		"subject": map[string]any{"subject_type": "iss_sub", "iss": e.fe.OPURL, "sub": "devop-demo"}, "change_type": "update"}}
	if status, body := e.pushSET(t, sign(t, c, e.txKey, "tx-1", "secevent+jwt")); status != 202 {
		t.Fatalf("credential-change: %d %v", status, body)
	}
	if ss, _ := e.fe.Sessions[0].List(t.Context(), e.user); len(ss) != 0 {
		t.Errorf("sessions left after credential-change: %v", ss)
	}
	e.rev.take()

	// account-disabled disables the user.
	e.signIn(t)
	if status, body := e.pushSET(t, sign(t, e.setClaims(signals.EventAccountDisabled, subject), e.txKey, "tx-1", "secevent+jwt")); status != 202 {
		t.Fatalf("account-disabled: %d %v", status, body)
	}
	u, _, _ := e.fe.Users[0].Get(t.Context(), e.user)
	if !u.Disabled {
		t.Error("account-disabled did not disable the user")
	}
	if calls := e.rev.take(); len(calls) != 1 || calls[0] != "disable "+e.user {
		t.Errorf("revoker calls %q", calls)
	}
	if ss, _ := e.fe.Sessions[0].List(t.Context(), e.user); len(ss) != 0 {
		t.Errorf("sessions left after account-disabled: %v", ss)
	}

	// An unknown subject and an event ferry ignores are accepted, recorded.
	unknown := map[string]any{"format": "iss_sub", "iss": e.fe.OPURL, "sub": "nobody"}
	if status, _ := e.pushSET(t, sign(t, e.setClaims(signals.EventAccountPurged, unknown), e.txKey, "tx-1", "secevent+jwt")); status != 202 {
		t.Errorf("unknown subject: %d", status)
	}
	if status, _ := e.pushSET(t, sign(t, e.setClaims(signals.EventVerification, subject), e.txKey, "tx-1", "secevent+jwt")); status != 202 {
		t.Errorf("verification event: %d", status)
	}
	if calls := e.rev.take(); len(calls) != 0 {
		t.Errorf("revoker calls %q for nothing to act on", calls)
	}
}

func TestSETRefusals(t *testing.T) {
	e := newEnv(t)
	e.signIn(t)
	subject := map[string]any{"format": "iss_sub", "iss": e.fe.OPURL, "sub": "devop-demo"}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name    string
		edit    func(map[string]any)
		key     *rsa.PrivateKey
		typ     string
		errCode string
		reason  string
	}{
		{"wrong issuer", func(c map[string]any) { c["iss"] = "https://evil.example.com" }, nil, "", "invalid_issuer", "wrong issuer"},
		{"wrong audience", func(c map[string]any) { c["aud"] = "https://other.example.com" }, nil, "", "invalid_audience", "wrong audience"},
		{"bad signature", func(map[string]any) {}, other, "", "invalid_key", "bad signature"},
		{"expired", func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }, nil, "", "invalid_request", "expired"},
		{"stale", func(c map[string]any) { c["iat"] = time.Now().Add(-time.Hour).Unix() }, nil, "", "invalid_request", "issued too long ago"},
		{"from the future", func(c map[string]any) { c["iat"] = time.Now().Add(time.Hour).Unix() }, nil, "", "invalid_request", "issued in the future"},
		{"no events", func(c map[string]any) { delete(c, "events") }, nil, "", "invalid_request", "malformed token"},
		{"no subject", func(c map[string]any) { delete(c, "sub_id") }, nil, "", "invalid_request", "malformed token"},
		{"unsupported subject", func(c map[string]any) { c["sub_id"] = map[string]any{"format": "phone_number", "phone_number": "+1"} }, nil, "", "invalid_request", "malformed token"},
		{"wrong typ", func(map[string]any) {}, nil, "logout+jwt", "invalid_request", "wrong typ header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.setClaims(signals.EventSessionRevoked, subject)
			tc.edit(c)
			key, typ := e.txKey, "secevent+jwt"
			if tc.key != nil {
				key = tc.key
			}
			if tc.typ != "" {
				typ = tc.typ
			}
			status, body := e.pushSET(t, sign(t, c, key, "tx-1", typ))
			if status != 400 || body["err"] != tc.errCode {
				t.Fatalf("%d %v, want 400 %s", status, body, tc.errCode)
			}
			if ev := e.lastEvent(t, signals.ActionSET); ev.Outcome != audit.Failure || ev.Reason != tc.reason {
				t.Errorf("audit outcome %s reason %q, want failure %q", ev.Outcome, ev.Reason, tc.reason)
			}
		})
	}
	if ss, _ := e.fe.Sessions[0].List(t.Context(), e.user); len(ss) != 1 {
		t.Errorf("a refused SET ended sessions: %v", ss)
	}
	if calls := e.rev.take(); len(calls) != 0 {
		t.Errorf("a refused SET revoked: %q", calls)
	}
}
