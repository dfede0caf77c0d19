package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

func TestSCIMCommands(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))

	out := mustCtl(t, "scim", "show")
	for _, want := range []string{"SCIM base URL", "/scim/v2", "none: run ferryctl scim rotate-token", "Back-channel logout", "off (oidc.backchannel_logout)"} {
		if !strings.Contains(out, want) {
			t.Errorf("scim show lacks %q:\n%s", want, out)
		}
	}
	var first wire.SCIMToken
	ctlJSON(t, &first, "scim", "rotate-token")
	out = mustCtl(t, "scim", "rotate-token")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	second := lines[len(lines)-1]
	if !strings.HasPrefix(first.Token, "ferry-scim-") || !strings.HasPrefix(second, "ferry-scim-") || first.Token == second {
		t.Fatalf("tokens %q, %q", first.Token, second)
	}
	// The rotated-out token is refused, the new one works.
	pem, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for tok, want := range map[string]int{first.Token: 401, second: 200} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/scim/v2/Users", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /scim/v2/Users with a token: %d, want %d", resp.StatusCode, want)
		}
	}
	if out := mustCtl(t, "scim", "show"); !strings.Contains(out, "set ") || !strings.Contains(out, "admin") {
		t.Errorf("scim show after rotation:\n%s", out)
	}
	// Not for users.
	signIn(t, srv, srv.Token(t, authn.Identity{UserID: "bob", Email: "bob@example.com"}))
	if _, err := ctl(t, "", "scim", "rotate-token"); err == nil || !strings.Contains(err.Error(), msgForbidden) {
		t.Errorf("rotate-token as a user: %v", err)
	}
}
