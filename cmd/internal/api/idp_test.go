package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/signals"
	"github.com/ferryvpn/ferry/cmd/internal/api"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

func TestIdPAdministration(t *testing.T) {
	s := apitest.Start(t)
	admin := clientFor(t, s, s.Admin(t))
	user := clientFor(t, s, s.Token(t, authn.Identity{UserID: "bob", Email: "bob@example.com"}))

	info, err := admin.IdP(bg(t))
	if err != nil || info.SCIMBaseURL != "/scim/v2" || info.SCIMTokenSet || info.Issuer != apitest.Issuer || info.BackChannelURL != "" {
		t.Fatalf("IdP = %+v, %v", info, err)
	}
	tok, err := admin.RotateSCIMToken(bg(t))
	if err != nil || !strings.HasPrefix(tok.Token, "ferry-scim-") {
		t.Fatalf("RotateSCIMToken = %+v, %v", tok, err)
	}
	if info, _ := admin.IdP(bg(t)); !info.SCIMTokenSet || info.SCIMRotatedBy != "admin" {
		t.Errorf("after rotation: %+v", info)
	}
	if _, err := user.RotateSCIMToken(bg(t)); status(err) != http.StatusForbidden {
		t.Errorf("a user rotated the SCIM token: %v", err)
	}
	if _, err := user.IdP(bg(t)); status(err) != http.StatusForbidden {
		t.Errorf("a user read the IdP settings: %v", err)
	}
}

// TestSignalsMounted: the receiver's endpoints answer through the API,
// POST only, without a session.
func TestSignalsMounted(t *testing.T) {
	s := apitest.Start(t)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"keys":[]}`)) }))
	t.Cleanup(jwks.Close)
	rcv, err := signals.New(signals.Config{
		Store: s.Cluster.Node(0), Users: s.Users, Sessions: s.Sessions, Revoker: s.Profiles, Recorder: s.Audit,
		Transmitter: &signals.Transmitter{Issuer: "https://ssf.example.com", JWKSURL: jwks.URL, Audience: "https://vpn.example.com", SubjectIssuer: apitest.Issuer},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Node: s.Cluster.Node(0), MasterKey: s.MasterKey, Users: &api.Users{
		Sessions: s.Sessions, Users: s.Users, MFA: s.MFA, Profiles: s.Profiles,
	}, IdP: &api.IdP{Signals: rcv, PublicURL: "https://vpn.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL+signals.PathSSFEvents, "application/secevent+jwt", strings.NewReader("not.a.set"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST %s: %d, want 400 from the receiver", signals.PathSSFEvents, resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + signals.PathSSFEvents)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", signals.PathSSFEvents, resp.StatusCode)
	}
	if resp, err := http.Post(srv.URL+signals.PathBackChannelLogout, "application/x-www-form-urlencoded", nil); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusNotFound {
		t.Errorf("back-channel logout served though not configured: %d", resp.StatusCode)
	}
}
