package threenode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// browser plays the person's browser in ferry's sign-in, as
// deploy/local/signin.py does: it follows ferryd's /login to the
// identity provider, fills its form, comes back through ferryd's
// /callback to /mfa, enrolls TOTP (keeping the otpauth URI, as a phone
// would) or answers with a code, and follows the last redirect to the
// waiting client. It stops at anything off that path with what it saw.
type browser struct {
	hc       *http.Client
	user     string
	password string
	totpURI  string // kept from the enrollment
}

func newBrowser(t *testing.T, roots *x509.CertPool, user, password string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{user: user, password: password, hc: &http.Client{
		Jar:       jar,
		Timeout:   60 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// step is one request and the status it must answer; it returns the
// absolute Location and the body.
func (b *browser) step(name, method, target string, form url.Values, want int) (string, string, error) {
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = b.hc.PostForm(target, form)
	} else {
		resp, err = b.hc.Get(target)
	}
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		text := regexp.MustCompile(`<[^>]+>`).ReplaceAllString(string(body), " ")
		text = strings.Join(strings.Fields(text), " ")
		if len(text) > 300 {
			text = text[:300]
		}
		return "", "", fmt.Errorf("%s: HTTP %d, want %d: %s", name, resp.StatusCode, want, text)
	}
	loc := resp.Header.Get("Location")
	if loc != "" {
		base, _ := url.Parse(target)
		if u, err := base.Parse(loc); err == nil {
			loc = u.String()
		}
	}
	return loc, string(body), nil
}

var (
	formAction  = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
	otpauthText = regexp.MustCompile(`id="otpauth"[^>]*>([^<]*)`)
)

func field(body, name string) string {
	m := regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `" value="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// open completes a sign-in that starts at loginURL (ferryd's /login with
// the waiting client's parameters).
func (b *browser) open(loginURL string) error {
	authz, _, err := b.step("GET /login", "GET", loginURL, nil, http.StatusFound)
	if err != nil {
		return err
	}
	formURL, _, err := b.step("GET IdP authorize", "GET", authz, nil, http.StatusFound)
	if err != nil {
		return err
	}
	_, page, err := b.step("GET IdP login form", "GET", formURL, nil, http.StatusOK)
	if err != nil {
		return err
	}
	am, hm := formAction.FindStringSubmatch(page), hiddenInput.FindStringSubmatch(page)
	if am == nil || hm == nil {
		return fmt.Errorf("no login form at the IdP:\n%s", page)
	}
	base, _ := url.Parse(formURL)
	action, _ := base.Parse(html.UnescapeString(am[1]))
	next, _, err := b.step("POST IdP login form", "POST", action.String(),
		url.Values{"username": {b.user}, "password": {b.password}, hm[1]: {html.UnescapeString(hm[2])}}, http.StatusFound)
	if err != nil {
		return err
	}
	callback, _, err := b.step("GET IdP authorize callback", "GET", next, nil, http.StatusFound)
	if err != nil {
		return err
	}
	if _, _, err := b.step("GET ferryd /callback", "GET", callback, nil, http.StatusSeeOther); err != nil {
		return err
	}
	cb, _ := url.Parse(callback)
	origin := cb.Scheme + "://" + cb.Host
	_, page, err = b.step("GET /mfa", "GET", origin+"/mfa", nil, http.StatusOK)
	if err != nil {
		return err
	}
	enrolling := false
	if m := otpauthText.FindStringSubmatch(page); m != nil && strings.TrimSpace(m[1]) != "" {
		b.totpURI, enrolling = html.UnescapeString(strings.TrimSpace(m[1])), true
	}
	if b.totpURI == "" {
		return fmt.Errorf("%s has no TOTP enrollment here and none kept", b.user)
	}
	code, err := authntest.TOTPCode(b.totpURI, time.Now())
	if err != nil {
		return err
	}
	form := url.Values{"csrf": {field(page, "csrf")}, "code": {code}}
	var final string
	if enrolling {
		if _, _, err := b.step("POST /mfa (enroll)", "POST", origin+"/mfa", form, http.StatusSeeOther); err != nil {
			return err
		}
		_, codes, err := b.step("GET /mfa (recovery codes)", "GET", origin+"/mfa", nil, http.StatusOK)
		if err != nil {
			return err
		}
		if final, _, err = b.step("POST /mfa/continue", "POST", origin+"/mfa/continue",
			url.Values{"csrf": {field(codes, "csrf")}}, http.StatusSeeOther); err != nil {
			return err
		}
	} else if final, _, err = b.step("POST /mfa", "POST", origin+"/mfa", form, http.StatusSeeOther); err != nil {
		return err
	}
	resp, err := b.hc.Get(final)
	if err != nil {
		return fmt.Errorf("the last redirect (%s): %w", final, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("the last redirect (%s) answered %s", final, resp.Status)
	}
	return nil
}

// signIn runs ferry's desktop sign-in (the code `ferry login` and
// `ferryctl login` run) against server, with b as the browser, and
// returns the session.
func signIn(t *testing.T, s *scenario, server, user string, admin bool) wire.AuthTokenResponse {
	t.Helper()
	b := newBrowser(t, s.browserCAs, user, s.op.password(user))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	browseErr := make(chan error, 1)
	res, err := loginflow.Login(ctx, loginflow.Options{
		Server:    server,
		TLSConfig: &tls.Config{RootCAs: s.ferryCAs},
		Admin:     admin,
		OpenBrowser: func(u string) error {
			// The browser runs beside the waiting client, as a person's
			// would; Login waits for it at its loopback address.
			go func() {
				err := b.open(u)
				browseErr <- err
				if err != nil {
					cancel()
				}
			}()
			return nil
		},
	})
	if err != nil {
		select {
		case berr := <-browseErr:
			t.Fatalf("signing %s in at %s: %v (browser: %v)", user, server, err, berr)
		default:
			t.Fatalf("signing %s in at %s: %v", user, server, err)
		}
	}
	// The browser's last request ends once Login has answered it.
	if berr := <-browseErr; berr != nil {
		t.Fatalf("signing %s in at %s: browser: %v", user, server, berr)
	}
	return res
}
