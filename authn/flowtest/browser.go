package flowtest

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"

	"github.com/ferryvpn/ferry/authn"
)

// Browser is a cookie-keeping HTTP client that follows no redirect by
// itself, so a test sees and can tamper with every step.
type Browser struct {
	env    *Env
	Client *http.Client
}

// NewBrowser returns a Browser with an empty cookie jar.
func (e *Env) NewBrowser() *Browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &Browser{env: e, Client: &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{TLSClientConfig: e.ClientTLS.Clone()},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Page is one response.
type Page struct {
	Status int
	URL    *url.URL
	// Location is a redirect's absolute target, or "".
	Location string
	Header   http.Header
	Body     string
	// PostStatus is the status of the form's POST, for pages Submit
	// returns; 0 otherwise.
	PostStatus int
}

func (b *Browser) do(req *http.Request) (*Page, error) {
	req.Header.Set("User-Agent", UserAgent)
	resp, err := b.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	p := &Page{Status: resp.StatusCode, URL: req.URL, Header: resp.Header, Body: string(body)}
	if loc, err := resp.Location(); err == nil {
		p.Location = loc.String()
	}
	return p, nil
}

// Get requests rawURL.
func (b *Browser) Get(rawURL string) (*Page, error) {
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	return b.do(req)
}

// Post submits form to rawURL.
func (b *Browser) Post(rawURL string, form url.Values) (*Page, error) {
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// Submit posts form to rawURL as a browser submits a form: a form the
// server accepted or refused with a redirect (POST-redirect-GET) is
// followed with a GET of the same origin, and the page it leads to is
// returned with PostStatus set to the POST's status; any other answer is
// returned as it is.
func (b *Browser) Submit(rawURL string, form url.Values) (*Page, error) {
	p, err := b.Post(rawURL, form)
	if err != nil || p.Status != http.StatusSeeOther {
		if p != nil {
			p.PostStatus = p.Status
		}
		return p, err
	}
	next, err := b.Get(p.Location)
	if next != nil {
		next.PostStatus = p.Status
	}
	return next, err
}

// Field returns the value of the hidden input name on the page.
func (p *Page) Field(name string) string {
	m := regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `" value="([^"]*)"`).FindStringSubmatch(p.Body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// Text returns the text of the element with the given id (up to its first
// child element).
func (p *Page) Text(id string) string {
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)`).FindStringSubmatch(p.Body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// Attr returns an attribute of the element with the given id.
func (p *Page) Attr(id, attr string) string {
	m := regexp.MustCompile(`<[^>]*id="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindString(p.Body)
	a := regexp.MustCompile(`\s` + regexp.QuoteMeta(attr) + `="([^"]*)"`).FindStringSubmatch(m)
	if a == nil {
		return ""
	}
	return html.UnescapeString(a[1])
}

// expect returns a check of a response's status, to wrap a request:
// expect(200, "GET /x")(b.Get(u)).
func expect(status int, what string) func(*Page, error) (*Page, error) {
	return func(p *Page, err error) (*Page, error) { return want(p, err, status, what) }
}

// FormAction returns the action of the page's first form.
func (p *Page) FormAction() string {
	m := regexp.MustCompile(`<form[^>]*action="([^"]*)"`).FindStringSubmatch(p.Body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func want(p *Page, err error, status int, what string) (*Page, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if p.Status != status {
		body := p.Body
		if len(body) > 400 {
			body = body[:400]
		}
		return p, fmt.Errorf("%s: status %d, want %d (location %q): %s", what, p.Status, status, p.Location, body)
	}
	return p, nil
}

// URLOf returns the absolute URL of path on the load balancer.
func (e *Env) URLOf(path string) string { return e.URL + path }

// StartLogin requests loginURL and returns the IdP authorization URL it
// redirects to.
func (b *Browser) StartLogin(loginURL string) (string, error) {
	p, err := expect(http.StatusFound, "GET /login")(b.Get(loginURL))
	if err != nil {
		return "", err
	}
	return p.Location, nil
}

// IdPLogin signs in at the OP from its authorization URL and returns the
// relying party's callback URL the OP sends the browser back to (not yet
// requested).
func (b *Browser) IdPLogin(authURL, user, pass string) (string, error) {
	p, err := expect(http.StatusFound, "GET IdP authorize")(b.Get(authURL))
	if err != nil {
		return "", err
	}
	form, err := expect(http.StatusOK, "GET IdP login form")(b.Get(p.Location))
	if err != nil {
		return "", err
	}
	v := url.Values{"username": {user}, "password": {pass}}
	v.Set("authRequestID", form.Field("authRequestID"))
	action := form.URL.ResolveReference(&url.URL{Path: form.FormAction()}).String()
	p, err = expect(http.StatusFound, "POST IdP login form")(b.Post(action, v))
	if err != nil {
		return "", err
	}
	p, err = expect(http.StatusFound, "GET IdP authorize callback")(b.Get(p.Location))
	if err != nil {
		return "", err
	}
	return p.Location, nil
}

// Result is how a sign-in ended.
type Result struct {
	// Final is the response to the second factor: a redirect to
	// /signed-in (browser) or to the loopback address (desktop).
	Final *Page
	// Enrolled reports whether this sign-in enrolled TOTP; RecoveryCodes
	// are the codes it showed then.
	Enrolled      bool
	RecoveryCodes []string
	// MFAPage is the second-factor page as first shown.
	MFAPage *Page
}

var recoveryCodeRE = regexp.MustCompile(`<li>([^<]+)</li>`)

// SignIn runs a whole sign-in from loginURL (the load balancer's /login,
// with a desktop client's query if any): the OP's form, then TOTP
// enrollment or verification with codes from Env.TOTP.
func (b *Browser) SignIn(loginURL, user, pass string) (*Result, error) {
	authURL, err := b.StartLogin(loginURL)
	if err != nil {
		return nil, err
	}
	cb, err := b.IdPLogin(authURL, user, pass)
	if err != nil {
		return nil, err
	}
	if _, err := expect(http.StatusSeeOther, "GET /callback")(b.Get(cb)); err != nil {
		return nil, err
	}
	return b.SecondFactor(user)
}

// SecondFactor completes the TOTP step of a login past OIDC.
func (b *Browser) SecondFactor(user string) (*Result, error) {
	mfaURL := b.env.URLOf(authn.PathMFA)
	page, err := expect(http.StatusOK, "GET /mfa")(b.Get(mfaURL))
	if err != nil {
		return nil, err
	}
	res := &Result{MFAPage: page}
	if uri := page.Text("otpauth"); uri != "" {
		b.env.Enrolled(user, uri)
		res.Enrolled = true
	}
	v := url.Values{"csrf": {page.Field("csrf")}, "code": {b.env.TOTP(user)}}
	if !res.Enrolled {
		res.Final, err = expect(http.StatusSeeOther, "POST /mfa")(b.Post(mfaURL, v))
		return res, err
	}
	// The code form redirects (POST-redirect-GET) to the page of codes.
	if _, err := expect(http.StatusSeeOther, "POST /mfa (enroll)")(b.Post(mfaURL, v)); err != nil {
		return nil, err
	}
	codes, err := expect(http.StatusOK, "GET /mfa (recovery codes)")(b.Get(mfaURL))
	if err != nil {
		return nil, err
	}
	for _, m := range recoveryCodeRE.FindAllStringSubmatch(codes.Body, -1) {
		res.RecoveryCodes = append(res.RecoveryCodes, html.UnescapeString(m[1]))
	}
	res.Final, err = expect(http.StatusSeeOther, "POST /mfa/continue")(b.Post(b.env.URLOf(authn.PathMFAContinue), url.Values{"csrf": {codes.Field("csrf")}}))
	return res, err
}
