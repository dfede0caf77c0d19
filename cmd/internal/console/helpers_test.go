package console_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/console"
	"github.com/ferryvpn/ferry/profiles"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

var (
	adminID = authn.Identity{UserID: "admin", Email: "admin@example.com", Name: "Ada Admin", Groups: []string{apitest.AdminGroup}}
	alice   = authn.Identity{UserID: "alice", Email: "alice@example.com", Name: "Alice", Groups: []string{"engineering"}}
)

// browser is a cookie-carrying HTTPS client of s, as a browser on origin
// (empty: no Origin header).
type browser struct {
	t      testing.TB
	base   string
	client *http.Client
	cookie []*http.Cookie
	origin string
}

func newBrowser(t testing.TB, base, caFile, token string) *browser {
	t.Helper()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(c.CloseIdleConnections)
	b := &browser{t: t, base: base, client: c, origin: base}
	if token != "" {
		b.cookie = append(b.cookie, &http.Cookie{Name: authn.SessionCookie, Value: token})
	}
	return b
}

// do sends a request as the browser; it keeps the step-up cookie.
func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method == http.MethodPost && b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	for _, c := range b.cookie {
		req.AddCookie(c)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	b.cookie = append(b.cookie, resp.Cookies()...)
	return resp, string(out)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrf reads the form token from the confirmation page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	resp, page := b.do(http.MethodGet, path, nil)
	m := csrfField.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		b.t.Fatalf("GET %s: %d, no csrf field:\n%s", path, resp.StatusCode, page)
	}
	return m[1]
}

func bg(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// enroll enrolls id's authenticator with the code of now's step and
// returns a function giving the code at a time.
func enroll(t testing.TB, s *apitest.Server, id authn.Identity) func(time.Time) string {
	t.Helper()
	en, err := s.MFA.BeginEnroll(bg(t), id)
	if err != nil {
		t.Fatal(err)
	}
	code := func(at time.Time) string {
		c, err := authntest.TOTPCode(en.URI, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := s.MFA.ConfirmEnroll(bg(t), id, code(time.Now().Add(-30*time.Second)), authn.Source{Addr: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	return code
}

// serveConsole runs a console of its own on s's services with cfg
// changed by tune, over TLS, and returns its URL and CA file.
func serveConsole(t testing.TB, s *apitest.Server, tune func(*console.Config)) (string, string) {
	t.Helper()
	cfg := apitest.ConsoleConfig(s)
	tune(&cfg)
	c, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(c)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := t.TempDir() + "/ca.pem"
	if err := os.WriteFile(ca, pemOf(srv.Certificate()), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL, ca
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// auditHas reports whether the journal holds an event of type typ that
// match accepts.
func auditHas(t testing.TB, s *apitest.Server, typ string, match func(*audit.Event) bool) bool {
	t.Helper()
	found := false
	err := audit.Scan(bg(t), s.Cluster.Node(s.Node), audit.Filter{Types: []string{typ}, NoCheckpoints: true}, func(e *audit.Entry) error {
		if e.Event != nil && match(e.Event) {
			found = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// engYAML is the engineering profile as a profile file.
const engYAML = `profiles:
  - name: eng
    rules:
      - {cidr: 10.20.0.0/16, protocol: tcp, ports: [22, 8000-8080]}
    groups: [engineering]
`

// engProfile is engYAML's one profile.
func engProfile(t testing.TB, s *apitest.Server) profiles.Profile {
	t.Helper()
	ps, err := profiles.ParseFile([]byte(engYAML), s.Profiles.Pool())
	if err != nil || len(ps) != 1 {
		t.Fatalf("parsing eng: %v", err)
	}
	return ps[0]
}

// issue gives the token's user a device under profile eng.
func issue(t testing.TB, s *apitest.Server, tok, device string) profiles.Peer {
	t.Helper()
	sess, err := s.Sessions.Validate(bg(t), authn.SessionToken(tok))
	if err != nil {
		t.Fatal(err)
	}
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := s.Profiles.Issue(bg(t), sess, profiles.IssueRequest{PublicKey: k.PublicKey().String(), Device: device, Profile: "eng", Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
