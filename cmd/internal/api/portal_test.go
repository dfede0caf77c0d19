package api_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/profiles"
)

// browser is an HTTP client carrying one session cookie, following no
// redirect. Like a browser on the portal's own page, it sends the site's
// Origin with every POST.
func browser(t *testing.T, s *apitest.Server, token string) func(method, path string, form url.Values) (*http.Response, string) {
	return browserFrom(t, s, token, s.URL)
}

// browserFrom is browser on a page of origin (another site, say).
func browserFrom(t *testing.T, s *apitest.Server, token, origin string) func(method, path string, form url.Values) (*http.Response, string) {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var do func(method, path string, form url.Values) (*http.Response, string)
	do = func(method, path string, form url.Values) (*http.Response, string) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, s.URL+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if token != "" {
			req.AddCookie(&http.Cookie{Name: authn.SessionCookie, Value: token})
		}
		if method == http.MethodPost && origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		// A profile the form issued is shown after a redirect
		// (POST-redirect-GET): follow it as a browser does.
		if method == http.MethodPost && resp.StatusCode == http.StatusSeeOther && resp.Header.Get("Location") == "/portal/issued" {
			return do(http.MethodGet, "/portal/issued", nil)
		}
		return resp, string(b)
	}
	return do
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func TestPortal(t *testing.T) {
	s := apitest.Start(t)
	admin := clientFor(t, s, s.Admin(t))
	if _, err := admin.CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	tok := s.Token(t, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"engineering"}})
	get := browser(t, s, tok)

	// Without a session the portal sends the browser to sign in.
	if resp, _ := browser(t, s, "")(http.MethodGet, "/portal", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != authn.LoginURL("/portal") {
		t.Fatalf("anonymous portal: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, page := get(http.MethodGet, "/portal", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `<option value="eng">`) || !strings.Contains(page, "alice@example.com") {
		t.Fatalf("portal page %d:\n%s", resp.StatusCode, page)
	}
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no csrf field")
	}
	form := func(csrf, serverKey, as string) url.Values {
		return url.Values{"csrf": {csrf}, "profile": {"eng"}, "device": {"phone"}, "server_key": {serverKey}, "as": {as}}
	}
	// A forged form (no or wrong token) and a form without the explicit
	// opt-in issue nothing.
	for name, f := range map[string]url.Values{"no csrf": form("", "1", "qr"), "wrong csrf": form(strings.Repeat("0", 64), "1", "qr"), "no opt-in": form(m[1], "", "qr")} {
		// Refused: an error page, or (no opt-in) back to the form with
		// the error named in the redirect.
		if resp, _ := get(http.MethodPost, "/portal/config", f); resp.StatusCode < 400 && !strings.Contains(resp.Header.Get("Location"), "error=") {
			t.Fatalf("%s: status %d to %q", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if peers, _ := s.Profiles.Peers(bg(t), profilesFilterUser("alice")); len(peers) != 0 {
		t.Fatalf("refused forms issued %d peers", len(peers))
	}

	// The QR code page.
	resp, page = get(http.MethodPost, "/portal/config", form(m[1], "1", "qr"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `src="data:image/png;base64,`) || !strings.Contains(page, "alt=") {
		t.Fatalf("qr page %d:\n%.500s", resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src data:") {
		t.Fatalf("CSP %q blocks the QR image", csp)
	}
	// The file, for another device: a complete config the tools accept,
	// named after the device.
	f := form(m[1], "1", "file")
	f.Set("device", "tablet")
	resp, page = get(http.MethodPost, "/portal/config", f)
	conf := downloaded(t, page, "ferry-tablet.conf")
	if resp.StatusCode != http.StatusOK || !strings.Contains(conf, "PrivateKey = ") {
		t.Fatalf("config download %d:\n%s", resp.StatusCode, conf)
	}
	if _, err := exec.LookPath("wg-quick"); err == nil {
		path := filepath.Join(t.TempDir(), "wg0.conf")
		os.WriteFile(path, []byte(conf), 0o600)
		if out, err := exec.Command("wg-quick", "strip", path).CombinedOutput(); err != nil {
			t.Fatalf("wg-quick strip: %v\n%s", err, out)
		}
	}
	// Both issuances are audited as server-made keys.
	n := 0
	err := audit.Scan(bg(t), s.Cluster.Node(0), audit.Filter{Types: []string{"peer.issue"}}, func(e *audit.Entry) error {
		if e.Event != nil && e.Event.Outcome == audit.Success && e.Event.Details["server_key"] == "true" {
			n++
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("%d audited server-key issuances, want 2 (%v)", n, err)
	}
}

var downloadLink = regexp.MustCompile(`href="data:application/octet-stream;base64,([A-Za-z0-9+/=]+)" download="([^"]+)"`)

// downloaded returns the configuration a portal page offers for download,
// checking its file name.
func downloaded(t *testing.T, page, name string) string {
	t.Helper()
	m := downloadLink.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no download link on the page:\n%s", page)
	}
	if m[2] != name {
		t.Errorf("file named %q, want %q", m[2], name)
	}
	b, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func profilesFilterUser(u string) profiles.PeerFilter { return profiles.PeerFilter{UserID: u} }
