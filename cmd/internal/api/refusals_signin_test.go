package api_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/cmd/internal/api"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// signinBrowser is a person's browser at one source address: it keeps cookies,
// follows no redirect by itself and sends one user agent, against the
// API's sign-in pages and the development OP.
type signinBrowser struct {
	t    *testing.T
	c    *http.Client
	ua   string
	base string // the API's URL
}

func newSigninBrowser(t *testing.T, s *apitest.Server, ip, ua string) *signinBrowser {
	t.Helper()
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
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &signinBrowser{t: t, ua: ua, base: s.URL, c: &http.Client{
		Jar: jar, Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is one answer: status, redirect target and body.
type page struct {
	status   int
	location string
	body     string
	url      *url.URL
}

// follow answers a form's redirect as a browser does (the sign-in forms
// redirect, POST-redirect-GET, also when they refuse a code): the page it
// leads to.
func (b *signinBrowser) follow(p page) page {
	b.t.Helper()
	if p.status != http.StatusSeeOther {
		return p
	}
	return b.do(http.MethodGet, p.location, nil)
}

func (b *signinBrowser) do(method, rawURL string, form url.Values) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", b.ua)
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	p := page{status: res.StatusCode, body: string(data), url: req.URL}
	if loc, err := res.Location(); err == nil {
		p.location = loc.String()
	}
	return p
}

// expect fails the test unless p has status want.
func (b *signinBrowser) expect(p page, want int, what string) page {
	b.t.Helper()
	if p.status != want {
		body := p.body
		if len(body) > 300 {
			body = body[:300]
		}
		b.t.Fatalf("%s: HTTP %d, want %d (location %q): %s", what, p.status, want, p.location, body)
	}
	return p
}

func (p page) field(name string) string {
	m := regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `" value="([^"]*)"`).FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

var (
	formAction = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	otpauthURI = regexp.MustCompile(`otpauth://totp/[^"<\s]+`)
)

// oidc runs /login and the OP's login form for user, and returns the
// answer of the API's /callback.
func (b *signinBrowser) oidc(user string) page {
	b.t.Helper()
	p := b.expect(b.do(http.MethodGet, b.base+authn.PathLogin, nil), http.StatusFound, "GET /login")
	p = b.expect(b.do(http.MethodGet, p.location, nil), http.StatusFound, "GET IdP authorize")
	form := b.expect(b.do(http.MethodGet, p.location, nil), http.StatusOK, "GET IdP login form")
	m := formAction.FindStringSubmatch(form.body)
	if m == nil {
		b.t.Fatalf("no form on the IdP's login page: %s", form.body)
	}
	action := form.url.ResolveReference(&url.URL{Path: html.UnescapeString(m[1])}).String()
	p = b.expect(b.do(http.MethodPost, action, url.Values{"username": {user}, "password": {user}, "authRequestID": {form.field("authRequestID")}}),
		http.StatusFound, "POST IdP login form")
	p = b.expect(b.do(http.MethodGet, p.location, nil), http.StatusFound, "GET IdP authorize callback")
	return b.do(http.MethodGet, p.location, nil)
}

// mfaPage signs user in up to the second factor and returns the /mfa page.
func (b *signinBrowser) mfaPage(user string) page {
	b.t.Helper()
	b.expect(b.oidc(user), http.StatusSeeOther, "GET /callback")
	return b.expect(b.do(http.MethodGet, b.base+authn.PathMFA, nil), http.StatusOK, "GET /mfa")
}

// wrongCode returns a six-digit code that is not valid for the otpauth
// URI now nor in the steps around it.
func wrongCode(t *testing.T, uri string) string {
	t.Helper()
	bad := map[string]bool{}
	now := time.Now()
	for _, d := range []time.Duration{-60 * time.Second, -30 * time.Second, 0, 30 * time.Second, 60 * time.Second} {
		c, err := authntest.TOTPCode(uri, now.Add(d))
		if err != nil {
			t.Fatal(err)
		}
		bad[c] = true
	}
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%06d", i*7919%1000000); !bad[c] {
			return c
		}
	}
}

// failures returns the failure records from source address addr, of any
// type, as stored in s's journal.
func failures(t *testing.T, s *apitest.Server, addr string) []audit.Event {
	t.Helper()
	var out []audit.Event
	err := audit.Scan(context.Background(), s.Cluster.Node(s.Node), audit.Filter{}, func(e *audit.Entry) error {
		if e.Event != nil && e.Event.Outcome == audit.Failure && e.Event.Source.Addr == addr {
			out = append(out, *e.Event)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every kind of refusal, through the real HTTPS API with the sign-in
// pages mounted as ferryd mounts them and a real OpenID Provider, is
// exactly one record in the journal, naming the source address and the
// user agent: a 403, a 401 with a forged token, a sign-in refused for its
// groups, a sign-in with a forged state, a wrong TOTP code at enrollment
// and at verification. One record each, of any type: the API's own
// refusal record must not repeat the sign-in's.
func TestEveryRefusalIsOneRecord(t *testing.T) {
	s := apitest.StartWith(t, apitest.Options{SignIn: true, RequiredGroups: []string{apitest.AdminGroup}})[0]
	// alice (devop) is not in AdminGroup: sign-in refuses her. Her
	// session minted here is an ordinary user's.
	alice := s.Token(t, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"engineering"}})
	for _, tt := range []struct {
		name, ip string
		refuse   func(t *testing.T, b *signinBrowser)
		typ      audit.Type // the record's type
	}{
		{"403 non-admin", "127.0.0.51", func(t *testing.T, b *signinBrowser) {
			req, _ := http.NewRequest(http.MethodGet, b.base+wire.PathUsers, nil)
			req.Header.Set("Authorization", "Bearer "+alice)
			req.Header.Set("User-Agent", b.ua)
			res, err := b.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusForbidden {
				t.Fatalf("HTTP %d, want 403", res.StatusCode)
			}
		}, audit.TypeAccessDenied},
		{"401 forged token", "127.0.0.52", func(t *testing.T, b *signinBrowser) {
			req, _ := http.NewRequest(http.MethodGet, b.base+wire.PathMe, nil)
			req.Header.Set("Authorization", "Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
			req.Header.Set("User-Agent", b.ua)
			res, err := b.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("HTTP %d, want 401", res.StatusCode)
			}
		}, audit.TypeAccessDenied},
		{"sign-in refused: group", "127.0.0.53", func(t *testing.T, b *signinBrowser) {
			if p := b.oidc("alice"); p.status < 400 {
				t.Fatalf("callback for a user outside the required groups: HTTP %d, want a refusal", p.status)
			}
		}, audit.TypeLogin},
		{"sign-in refused: forged state", "127.0.0.54", func(t *testing.T, b *signinBrowser) {
			if p := b.do(http.MethodGet, b.base+authn.PathCallback+"?state=forged&code=forged", nil); p.status < 400 {
				t.Fatalf("callback with a forged state: HTTP %d, want a refusal", p.status)
			}
		}, audit.TypeLogin},
		{"wrong TOTP at enrollment", "127.0.0.55", func(t *testing.T, b *signinBrowser) {
			p := b.mfaPage("demo")
			uri := otpauthURI.FindString(p.body)
			if uri == "" {
				t.Fatalf("first sign-in of demo: no enrollment on the page: %s", p.body)
			}
			if p := b.follow(b.do(http.MethodPost, b.base+authn.PathMFA, url.Values{"csrf": {p.field("csrf")}, "code": {wrongCode(t, html.UnescapeString(uri))}})); p.status < 400 {
				t.Fatalf("wrong code at enrollment: HTTP %d, want a refusal", p.status)
			}
		}, audit.TypeMFA},
		{"wrong TOTP at verification", "127.0.0.57", func(t *testing.T, b *signinBrowser) {
			// demo enrolls first, from another address.
			e := newSigninBrowser(t, s, "127.0.0.56", "enrolling")
			p := e.mfaPage("demo")
			uri := html.UnescapeString(otpauthURI.FindString(p.body))
			if uri == "" {
				t.Fatalf("no enrollment on the page: %s", p.body)
			}
			code, err := authntest.TOTPCode(uri, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			e.expect(e.do(http.MethodPost, e.base+authn.PathMFA, url.Values{"csrf": {p.field("csrf")}, "code": {code}}), http.StatusSeeOther, "POST /mfa (enroll)")
			p = b.mfaPage("demo")
			if otpauthURI.MatchString(p.body) {
				t.Fatal("demo enrolled, yet asked to enroll again")
			}
			if p := b.follow(b.do(http.MethodPost, b.base+authn.PathMFA, url.Values{"csrf": {p.field("csrf")}, "code": {wrongCode(t, uri)}})); p.status < 400 {
				t.Fatalf("wrong code: HTTP %d, want a refusal", p.status)
			}
		}, audit.TypeMFA},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ua := "refusal-probe <" + tt.name + ">"
			tt.refuse(t, newSigninBrowser(t, s, tt.ip, ua))
			var evs []audit.Event
			pollUntil(t, 10*time.Second, func() error {
				if evs = failures(t, s, tt.ip); len(evs) == 0 {
					return fmt.Errorf("no failure record from %s", tt.ip)
				}
				return nil
			})
			if len(evs) != 1 {
				var got []string
				for _, e := range evs {
					got = append(got, fmt.Sprintf("%s/%s %q", e.Type, e.Action, e.Reason))
				}
				t.Fatalf("%d failure records from %s, want exactly one: %v", len(evs), tt.ip, got)
			}
			if e := evs[0]; e.Type != tt.typ || e.Source.UserAgent != ua || e.Source.Port == 0 {
				t.Fatalf("record %s/%s %q from %+v: want type %s, user agent %q and a port", e.Type, e.Action, e.Reason, e.Source, tt.typ, ua)
			}
		})
	}
}

// Refused sign-in steps count toward a source's failure limit whatever
// their status (most are 400, not 401 or 403): 100 forged callbacks from
// one source, with the unauthenticated request bucket out of the way, leave
// at most the limit's worth of records plus the folded one, and the rest
// are answered 429.
func TestRefusedSignInsAreLimited(t *testing.T) {
	const limit = 10
	s := apitest.StartWith(t, apitest.Options{SignIn: true, Refusals: api.Refusals{FailLimit: limit, UnauthRate: 1000, UnauthBurst: 100000}})[0]
	b := newSigninBrowser(t, s, "127.0.0.61", "forger")
	statuses := map[int]int{}
	for i := 0; i < 100; i++ {
		statuses[b.do(http.MethodGet, fmt.Sprintf("%s%s?state=forged%d&code=forged", b.base, authn.PathCallback, i), nil).status]++
	}
	evs := failures(t, s, "127.0.0.61")
	t.Logf("statuses %v; %d failure records", statuses, len(evs))
	if statuses[http.StatusTooManyRequests] < 100-limit-1 || len(evs) > limit+1 {
		t.Fatalf("statuses %v, %d failure records: want the source limited after %d refused sign-ins", statuses, len(evs), limit)
	}
}
