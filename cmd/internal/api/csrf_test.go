package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// A page on another site posts a form to the admin API; the administrator's
// browser attaches her session cookie. The /v1 API takes bearer tokens
// only, so nothing happens.
func TestCrossOriginPostWithCookieRefused(t *testing.T) {
	s := apitest.Start(t)
	adminTok := s.Admin(t)
	s.Token(t, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"engineering"}})
	evil := browserFrom(t, s, adminTok, "https://evil.example")
	for _, path := range []string{"/v1/users/alice/disable", "/v1/users/alice/reset-mfa"} {
		resp, body := evil(http.MethodPost, path, url.Values{})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("cross-origin POST %s with the admin's cookie: %d %s, want 401", path, resp.StatusCode, body)
		}
	}
	u, ok, err := s.Users.Get(bg(t), "alice")
	if err != nil || !ok || u.Disabled {
		t.Fatalf("alice after the forged posts: %+v, %v, %v: want enabled", u, ok, err)
	}
	// Even a same-site request must carry the token as a bearer.
	if resp, _ := browser(t, s, adminTok)(http.MethodGet, "/v1/users", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/users with the cookie only: %d, want 401", resp.StatusCode)
	}
}

// The portal's form carries a CSRF token and must come from the portal's
// own origin: a valid token posted from another origin (a page that read
// it somehow) or with no Origin or Referer at all is refused.
func TestPortalOriginCheck(t *testing.T) {
	s := apitest.Start(t)
	admin := clientFor(t, s, s.Admin(t))
	if _, err := admin.CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	tok := s.Token(t, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"engineering"}})
	pageResp, page := browser(t, s, tok)(http.MethodGet, "/portal", nil)
	// Under "no-referrer" browsers send "Origin: null" on the form's POST,
	// which sameOrigin must refuse: the portal would refuse every browser.
	if rp := pageResp.Header.Get("Referrer-Policy"); rp != "same-origin" {
		t.Errorf("portal Referrer-Policy %q, want same-origin so the form's POST carries its Origin", rp)
	}
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no csrf field")
	}
	f := url.Values{"csrf": {m[1]}, "profile": {"eng"}, "device": {"phone"}, "server_key": {"1"}, "as": {"qr"}}
	for name, origin := range map[string]string{"other site": "https://evil.example", "no origin": ""} {
		resp, body := browserFrom(t, s, tok, origin)(http.MethodPost, "/portal/config", f)
		if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "data:image/png") {
			t.Errorf("%s: %d, want 403 and no config", name, resp.StatusCode)
		}
	}
	if peers, _ := s.Profiles.Peers(bg(t), profilesFilterUser("alice")); len(peers) != 0 {
		t.Fatalf("refused posts issued %d peers", len(peers))
	}
	if resp, _ := browser(t, s, tok)(http.MethodPost, "/portal/config", f); resp.StatusCode != http.StatusOK {
		t.Errorf("same-origin post: %d", resp.StatusCode)
	}
}
