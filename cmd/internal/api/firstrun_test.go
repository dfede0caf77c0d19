package api_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"testing"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// TestFirstVisit: https://SERVER/ leads to the portal (issue: it was a
// 404), and the origin sends one HSTS policy, the sign-in pages' (issue:
// one origin sent two).
func TestFirstVisit(t *testing.T) {
	s := apitest.Start(t)
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := hc.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/portal" {
		t.Errorf("GET /: %s, Location %q; want 303 to /portal", resp.Status, resp.Header.Get("Location"))
	}
	for _, path := range []string{"/", "/v1/me", "/readyz"} {
		resp, err := hc.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Values("Strict-Transport-Security"); len(got) != 1 || got[0] != authn.HSTS {
			t.Errorf("%s: Strict-Transport-Security %q, want the one policy %q", path, got, authn.HSTS)
		}
	}
}
