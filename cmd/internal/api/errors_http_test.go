package api_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// TestNoInternalErrorsForBadNames: what an operator types wrong is a 4xx
// with a reason, never a 500 and an ERROR log line (issue: deleting a
// session with an unknown or malformed ID, /v1/users/%00…, a
// 2,000-character ID all answered 500).
func TestNoInternalErrorsForBadNames(t *testing.T) {
	s := apitest.Start(t)
	admin := clientFor(t, s, s.Admin(t))
	long := strings.Repeat("a", 2000)
	tests := []struct {
		name string
		call func() error
		want int
	}{
		{"kill an unknown session", func() error { return admin.KillSession(bg(t), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") }, http.StatusNotFound},
		{"kill a malformed session ID", func() error { return admin.KillSession(bg(t), "a%b") }, http.StatusBadRequest},
		{"kill a 2,000-character session ID", func() error { return admin.KillSession(bg(t), long) }, http.StatusBadRequest},
		{"show a user with a NUL", func() error { _, err := admin.User(bg(t), "\x00abc"); return err }, http.StatusBadRequest},
		{"show a 2,000-character user ID", func() error { _, err := admin.User(bg(t), long); return err }, http.StatusBadRequest},
		{"disable a 2,000-character user ID", func() error { _, err := admin.DisableUser(bg(t), long); return err }, http.StatusBadRequest},
		{"reset MFA of a user with a control character", func() error { _, err := admin.ResetMFA(bg(t), "a\x01b"); return err }, http.StatusBadRequest},
		{"sessions of a 2,000-character user", func() error { _, err := admin.Sessions(bg(t), long); return err }, http.StatusBadRequest},
		{"sessions of an unknown email", func() error { _, err := admin.Sessions(bg(t), "nobody@example.com"); return err }, http.StatusNotFound},
		{"show an unknown user", func() error { _, err := admin.User(bg(t), "nobody"); return err }, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); status(err) != tt.want {
				t.Errorf("got %v (status %d), want status %d", err, status(err), tt.want)
			}
		})
	}
	// The raw path the issue quoted.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/users/%00"+url.PathEscape(long), nil)
	req.Header.Set("Authorization", "Bearer "+s.Admin(t))
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusInternalServerError {
		t.Errorf("GET /v1/users/%%00…: 500")
	}
}

// TestUserRoutesTakeEmail: every route that takes a user takes an ID or
// an email address (issue: session list --user EMAIL printed "No
// sessions." although she had some).
func TestUserRoutesTakeEmail(t *testing.T) {
	s := apitest.Start(t)
	admin := clientFor(t, s, s.Admin(t))
	s.Token(t, authn.Identity{UserID: "u-alice-1", Email: "Alice@Example.com", Groups: []string{"engineering"}})
	ss, err := admin.Sessions(bg(t), "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 || ss[0].UserID != "u-alice-1" {
		t.Errorf("sessions of alice@example.com: %+v, want her one session", ss)
	}
	u, err := admin.User(bg(t), "alice@example.com")
	if err != nil || u.ID != "u-alice-1" {
		t.Errorf("user alice@example.com: %+v, %v", u, err)
	}
	// Two users with one address: a conflict naming both, not a guess.
	s.Token(t, authn.Identity{UserID: "u-alice-2", Email: "alice@example.com"})
	if _, err := admin.Sessions(bg(t), "alice@example.com"); status(err) != http.StatusConflict || !strings.Contains(err.Error(), "u-alice-2") {
		t.Errorf("ambiguous email: %v", err)
	}
}
