package api_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// TestPortalReuseNameAsksFirst: getting a second profile under a device
// name still in use replaced the first key without a word (issue). Now
// the portal asks first; declining keeps the old key, and only an
// explicit replace rotates it.
func TestPortalReuseNameAsksFirst(t *testing.T) {
	s := apitest.Start(t)
	if _, err := clientFor(t, s, s.Admin(t)).CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	tok := s.Token(t, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"engineering"}})
	get := browser(t, s, tok)
	_, page := get(http.MethodGet, "/portal", nil)
	if strings.Contains(page, `value="phone"`) {
		t.Error("the device name is prefilled")
	}
	csrf := csrfField.FindStringSubmatch(page)[1]
	form := url.Values{"csrf": {csrf}, "profile": {"eng"}, "device": {"phone"}, "server_key": {"1"}, "as": {"qr"}}
	if resp, _ := get(http.MethodPost, "/portal/config", form); resp.StatusCode != http.StatusOK {
		t.Fatalf("first issuance: %d", resp.StatusCode)
	}
	first, _ := s.Profiles.Peers(bg(t), profilesFilterUser("alice"))
	if len(first) != 1 {
		t.Fatalf("%d peers", len(first))
	}

	form.Set("as", "file")
	// Asked on a page of its own, after a redirect (POST-redirect-GET).
	resp, _ := get(http.MethodPost, "/portal/config", form)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/portal/replace?") {
		t.Fatalf("reusing the name: %d to %q, want 303 to the question", resp.StatusCode, loc)
	}
	resp, page = get(http.MethodGet, resp.Header.Get("Location"), nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "will stop connecting") || !strings.Contains(page, `id="replace"`) || !strings.Contains(page, `id="keep"`) {
		t.Fatalf("reusing the name: %d, want the question:\n%s", resp.StatusCode, page)
	}
	if strings.Contains(page, "PrivateKey") || strings.Contains(page, "data:application/octet-stream") {
		t.Fatal("the question page already holds a configuration")
	}
	after, _ := s.Profiles.Peers(bg(t), profilesFilterUser("alice"))
	if len(after) != 1 || after[0].PublicKey != first[0].PublicKey || !after[0].Valid(time.Now()) {
		t.Fatalf("asking changed the device: %+v", after)
	}

	form.Set("replace", "1")
	resp, page = get(http.MethodPost, "/portal/config", form)
	downloaded(t, page, "ferry-phone.conf")
	after, _ = s.Profiles.Peers(bg(t), profilesFilterUser("alice"))
	if resp.StatusCode != http.StatusOK || len(after) != 1 || after[0].PublicKey == first[0].PublicKey || after[0].Address != first[0].Address {
		t.Fatalf("replacing: %d %+v", resp.StatusCode, after)
	}
}

// TestPortalRevoke: the portal listed devices but could not revoke one
// (issue). Revoke asks first, needs the form token and this site's
// Origin, reaches only the person's own devices, and is audited.
func TestPortalRevoke(t *testing.T) {
	s := apitest.Start(t)
	if _, err := clientFor(t, s, s.Admin(t)).CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	alice := s.Token(t, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"engineering"}})
	bob := s.Token(t, authn.Identity{UserID: "bob", Email: "bob@example.com", Groups: []string{"engineering"}})
	get := browser(t, s, alice)
	_, page := get(http.MethodGet, "/portal", nil)
	csrf := csrfField.FindStringSubmatch(page)[1]
	get(http.MethodPost, "/portal/config", url.Values{"csrf": {csrf}, "profile": {"eng"}, "device": {"phone"}, "server_key": {"1"}, "as": {"qr"}})
	peers, _ := s.Profiles.Peers(bg(t), profilesFilterUser("alice"))
	if len(peers) != 1 {
		t.Fatalf("%d peers", len(peers))
	}
	id := peers[0].ID
	path := "/portal/devices/" + id + "/revoke"
	_, page = get(http.MethodGet, "/portal", nil)
	if !strings.Contains(page, `href="`+path+`"`) || !relativeExpiry.MatchString(page) {
		t.Fatalf("the device row has no Revoke link or relative expiry:\n%s", page)
	}
	if resp, page := get(http.MethodGet, path, nil); resp.StatusCode != http.StatusOK || !strings.Contains(page, "will stop connecting") {
		t.Fatalf("asking: %d\n%s", resp.StatusCode, page)
	}

	bobGet := browser(t, s, bob)
	_, bobPage := bobGet(http.MethodGet, "/portal", nil)
	bobCSRF := csrfField.FindStringSubmatch(bobPage)[1]
	refused := map[string]func() *http.Response{
		"no token": func() *http.Response { r, _ := get(http.MethodPost, path, url.Values{}); return r },
		"other site": func() *http.Response {
			r, _ := browserFrom(t, s, alice, "https://evil.example")(http.MethodPost, path, url.Values{"csrf": {csrf}})
			return r
		},
		"another person": func() *http.Response { r, _ := bobGet(http.MethodPost, path, url.Values{"csrf": {bobCSRF}}); return r },
		"another's ask":  func() *http.Response { r, _ := bobGet(http.MethodGet, path, nil); return r },
	}
	for name, do := range refused {
		if resp := do(); resp.StatusCode < 400 {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}
	if p, _ := s.Profiles.Peer(bg(t), id); p.Revoked != nil {
		t.Fatal("a refused request revoked the device")
	}

	resp, _ := get(http.MethodPost, path, url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/portal?revoked=") {
		t.Fatalf("revoke: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if p, _ := s.Profiles.Peer(bg(t), id); p.Revoked == nil || p.RevokedByAdmin {
		t.Fatalf("after revoke: %+v", p)
	}
	_, page = get(http.MethodGet, resp.Header.Get("Location"), nil)
	if !strings.Contains(page, "is revoked") {
		t.Errorf("no confirmation after revoking:\n%s", page)
	}
	n := 0
	audit.Scan(bg(t), s.Cluster.Node(0), audit.Filter{Types: []string{string(audit.TypePeerRevoke)}}, func(e *audit.Entry) error {
		if e.Event != nil && e.Event.Target.Peer == id && e.Event.Actor.UserID == "alice" {
			n++
		}
		return nil
	})
	if n != 1 {
		t.Errorf("%d audited revocations, want 1", n)
	}
}

// TestFrontDoor: unknown paths answered a browser with raw JSON (issue).
// A browser gets a page in the shared style; JSON clients keep JSON.
func TestFrontDoor(t *testing.T) {
	s := apitest.Start(t)
	hc := tlsClient(t, s)
	fetch := func(path, accept string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	for _, path := range []string{"/nope", "/v1/nope"} {
		resp, body := fetch(path, browserAccept)
		if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(body, `name="viewport"`) || !strings.Contains(body, `href="/"`) || !strings.Contains(body, `href="/admin"`) {
			t.Errorf("browser %s: %d %s\n%s", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		for _, accept := range []string{"application/json", ""} {
			resp, body = fetch(path, accept)
			if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, `"error"`) {
				t.Errorf("JSON %s (Accept %q): %d %s %s", path, accept, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
		}
	}
	// /admin is the console (package console): signed out, it sends the
	// browser to sign in.
	if resp, _ := fetch("/admin", browserAccept); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != authn.LoginURL("/admin") {
		t.Errorf("/admin signed out: %d %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := fetch("/", "application/json"); resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("/ asked for JSON: %s", resp.Header.Get("Content-Type"))
	}
	for _, accept := range []string{"", "*/*", browserAccept} {
		if resp, _ := fetch("/", accept); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/portal" {
			t.Errorf("/ with Accept %q: %d %q, want 303 to the portal", accept, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp, _ := fetch("/nope", "*/*"); resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("/nope with Accept */*: %s, want JSON", resp.Header.Get("Content-Type"))
	}
}

var relativeExpiry = regexp.MustCompile(`<dd>in \d+ (hours|minutes|days) \(<time datetime="[^"]+" data-local>`)

// tlsClient trusts the test server's CA and follows no redirect.
func tlsClient(t *testing.T, s *apitest.Server) *http.Client {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// TestPortalDeviceNameErrorStaysByItsField: a rejected device name was
// replaced by "phone" and its error shown far from the field (issue).
func TestPortalDeviceNameErrorStaysByItsField(t *testing.T) {
	s := apitest.Start(t)
	if _, err := clientFor(t, s, s.Admin(t)).CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	get := browser(t, s, s.Token(t, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"engineering"}}))
	_, page := get(http.MethodGet, "/portal", nil)
	csrf := csrfField.FindStringSubmatch(page)[1]
	// Shown after a redirect (POST-redirect-GET) that carries the
	// entered values.
	resp, _ := get(http.MethodPost, "/portal/config", url.Values{"csrf": {csrf}, "profile": {"eng"}, "device": {"-bad/name"}, "server_key": {"1"}, "as": {"file"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/portal?") || !strings.Contains(loc, "error=device-name") {
		t.Fatalf("rejected device name: %d to %q, want 303 back to the form", resp.StatusCode, loc)
	}
	resp, page = get(http.MethodGet, resp.Header.Get("Location"), nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="device-error"`) || !strings.Contains(page, `value="-bad/name"`) ||
		!strings.Contains(page, `aria-invalid="true"`) || !strings.Contains(page, `value="file" checked`) {
		t.Errorf("rejected device name: %d\n%s", resp.StatusCode, page)
	}
}
