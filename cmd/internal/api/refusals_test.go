package api_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// from returns an HTTP client of s whose connections come from the
// loopback address ip, so each test caller is a source of its own.
func from(t *testing.T, s *apitest.Server, ip string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func get(t *testing.T, c *http.Client, url, token, ua string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", ua)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// denials returns the access.denied records from source addr.
func denials(t *testing.T, s *apitest.Server, addr string) []audit.Event {
	t.Helper()
	var out []audit.Event
	err := audit.Scan(context.Background(), s.Cluster.Node(s.Node), audit.Filter{}, func(e *audit.Entry) error {
		if e.Event != nil && e.Event.Type == audit.TypeAccessDenied && e.Event.Source.Addr == addr {
			out = append(out, *e.Event)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A 403 (a non-admin calling an admin endpoint), a 401 with a forged token
// and a 401 without any each produce exactly one record naming the source
// address and user agent.
func TestRefusedCallsAreEvidence(t *testing.T) {
	s := apitest.Start(t)
	alice := s.Token(t, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"engineering"}})
	for _, tt := range []struct {
		name, ip, token, path string
		status                int
	}{
		{"403 non-admin", "127.0.0.11", alice, wire.PathUsers, http.StatusForbidden},
		{"401 forged token", "127.0.0.12", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", wire.PathMe, http.StatusUnauthorized},
		{"401 no token", "127.0.0.13", "", wire.PathMe, http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ua := "probe <" + tt.name + ">"
			if got := get(t, from(t, s, tt.ip), s.URL+tt.path, tt.token, ua); got != tt.status {
				t.Fatalf("status %d, want %d", got, tt.status)
			}
			var evs []audit.Event
			pollUntil(t, 10*time.Second, func() error {
				if evs = denials(t, s, tt.ip); len(evs) == 0 {
					return fmt.Errorf("no access.denied record from %s", tt.ip)
				}
				return nil
			})
			if len(evs) != 1 {
				t.Fatalf("%d records, want exactly one: %+v", len(evs), evs)
			}
			e := evs[0]
			if e.Outcome != audit.Failure || e.Source.UserAgent != ua || e.Source.Port == 0 || e.Details["path"] != tt.path ||
				!strings.Contains(e.Reason, fmt.Sprint(tt.status)) {
				t.Fatalf("record %+v", e)
			}
		})
	}
}

// 10,000 refused requests from one source: the source is slowed down (429
// with Retry-After) and the journal grows by a bounded number of records
// and bytes.
func TestRefusalFloodIsBounded(t *testing.T) {
	s := apitest.Start(t)
	c := from(t, s, "127.0.0.21")
	dir := s.Cluster.Dir(s.Node)
	before := dirSize(t, dir)
	head0, _, _ := s.Cluster.Node(s.Node).JournalHead()
	huge := strings.Repeat("x", 6000) // an attacker-sized user agent
	statuses := map[int]int{}
	var retryAfter string
	for i := 0; i < 10000; i++ {
		req, _ := http.NewRequest(http.MethodGet, s.URL+wire.PathMe, nil)
		req.Header.Set("Authorization", "Bearer forged-"+fmt.Sprint(i))
		req.Header.Set("User-Agent", huge)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		statuses[res.StatusCode]++
		if res.StatusCode == http.StatusTooManyRequests {
			retryAfter = res.Header.Get("Retry-After")
		}
	}
	if statuses[http.StatusTooManyRequests] < 9000 || retryAfter == "" {
		t.Fatalf("statuses %v, Retry-After %q: want the source limited with 429 and Retry-After", statuses, retryAfter)
	}
	evs := denials(t, s, "127.0.0.21")
	head, _, _ := s.Cluster.Node(s.Node).JournalHead()
	grew := dirSize(t, dir) - before
	t.Logf("statuses %v; %d access.denied records, journal +%d records, data directory +%d bytes", statuses, len(evs), head-head0, grew)
	if len(evs) > 2 || head-head0 > 5 {
		t.Fatalf("%d access.denied records, journal grew by %d: want at most a few", len(evs), head-head0)
	}
	if len(evs) > 0 && len(evs[0].Source.UserAgent) > audit.MaxFieldLen {
		t.Fatalf("user agent stored at %d bytes, over the cap", len(evs[0].Source.UserAgent))
	}
	if !strings.Contains(evs[0].Source.UserAgent, "truncated, 6000 bytes") {
		t.Fatalf("user agent %q: want a truncation marker with the original length", evs[0].Source.UserAgent)
	}
	if grew > 4<<20 {
		t.Fatalf("data directory grew by %d bytes for 10,000 refusals", grew)
	}
}

// pollUntil polls cond until it returns nil or timeout passes.
func pollUntil(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		<-tick.C
	}
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// A refused sign-in and a wrong TOTP code are each recorded once, by the
// sign-in flow, with the source address; the API's refusal records do not
// repeat them.
func TestRefusedSignInAndWrongTOTPRecordedOnce(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{Nodes: 1})
	// A wrong TOTP code after a good first factor.
	b := e.NewBrowser()
	if _, err := b.SignIn(e.URLOf(authn.PathLogin), "demo", "demo"); err != nil {
		t.Fatal(err)
	}
	b2 := e.NewBrowser()
	authURL, err := b2.StartLogin(e.URLOf(authn.PathLogin))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b2.IdPLogin(authURL, "demo", "demo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Get(cb); err != nil {
		t.Fatal(err)
	}
	page, err := b2.Get(e.URLOf(authn.PathMFA))
	if err != nil {
		t.Fatal(err)
	}
	before := len(e.Recorder.Filter(func(ev audit.Event) bool { return ev.Outcome == audit.Failure }))
	if _, err := b2.Post(e.URLOf(authn.PathMFA), url.Values{"csrf": {page.Field("csrf")}, "code": {"000000"}}); err != nil {
		t.Fatal(err)
	}
	fails := e.Recorder.Filter(func(ev audit.Event) bool { return ev.Outcome == audit.Failure })
	if len(fails)-before != 1 || fails[len(fails)-1].Source.Addr == "" {
		t.Fatalf("wrong TOTP: %d failure records, last %+v; want exactly one with a source address", len(fails)-before, fails[len(fails)-1])
	}
	// A refused sign-in: a forged callback.
	before = len(fails)
	if _, err := e.NewBrowser().Get(e.URLOf(authn.PathCallback) + "?state=forged&code=forged"); err != nil {
		t.Fatal(err)
	}
	fails = e.Recorder.Filter(func(ev audit.Event) bool { return ev.Outcome == audit.Failure })
	if len(fails)-before != 1 || fails[len(fails)-1].Source.Addr == "" || fails[len(fails)-1].Type != audit.TypeLogin {
		t.Fatalf("refused sign-in: %d failure records, last %+v; want exactly one login failure with a source address", len(fails)-before, fails[len(fails)-1])
	}
}

// Records made while serving a request name its client, whichever package
// makes them: a profile change recorded by package profiles carries the
// caller's address and user agent.
func TestRecordsNameTheirClient(t *testing.T) {
	s := apitest.Start(t)
	c := from(t, s, "127.0.0.31")
	body := strings.NewReader(`{"name":"eng","rules":[{"cidr":"10.20.0.0/16","protocol":"tcp","ports":["22"]}],"groups":["engineering"]}`)
	req, _ := http.NewRequest(http.MethodPost, s.URL+wire.PathProfiles, body)
	req.Header.Set("Authorization", "Bearer "+s.Admin(t))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ferryctl/test")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("create profile: HTTP %d", res.StatusCode)
	}
	var found *audit.Event
	audit.Scan(context.Background(), s.Cluster.Node(s.Node), audit.Filter{}, func(e *audit.Entry) error {
		if e.Event != nil && e.Event.Type == audit.TypeProfileChange {
			found = e.Event
		}
		return nil
	})
	if found == nil || found.Source.Addr != "127.0.0.31" || found.Source.UserAgent != "ferryctl/test" {
		t.Fatalf("profile change record %+v: want the caller's address and user agent", found)
	}
}
