package authn

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// Paths the Flow serves. cmd mounts Flow.Handler at each of them.
const (
	PathLogin       = "/login"
	PathCallback    = "/callback"
	PathMFA         = "/mfa"
	PathMFARecovery = "/mfa/recovery"
	PathMFAContinue = "/mfa/continue"
	PathLogout      = "/logout"
	PathSignedIn    = "/signed-in"
	PathToken       = "/v1/auth/token"
)

// FlowPaths returns every path Flow.Handler serves, for mounting it.
func FlowPaths() []string {
	return []string{
		PathLogin, PathCallback, PathMFA, PathMFARecovery, PathMFAContinue,
		PathLogout, PathSignedIn, PathToken,
	}
}

// Cookies. The __Host- prefix makes browsers insist on Secure, Path=/ and
// no Domain, so no sibling host can plant or read them.
const (
	// SessionCookie holds the SessionToken of a browser session.
	SessionCookie = "__Host-ferry_session"
	// loginCookie binds a pending login to the browser that started it.
	loginCookie = "__Host-ferry_login"
	// stepCookie names a login past OIDC, waiting for the second factor.
	stepCookie = "__Host-ferry_mfa"
)

// Audit actions of the sign-in flow (type auth.login, or auth.mfa for the
// second-factor pages).
const (
	ActionLoginStart = "login.start"  // /login refused a request
	ActionLoginOIDC  = "login.oidc"   // /callback: the IdP's answer
	ActionLoginMFA   = "login.mfa"    // /mfa pages
	ActionLoginCode  = "login.code"   // a desktop loopback code minted or redeemed
	ActionLogout     = "login.logout" // /logout refused a request
)

// FlowConfig configures a Flow.
type FlowConfig struct {
	// OIDC is the relying party's configuration. Required.
	OIDC OIDCConfig
	// Store holds sign-in state. Required.
	Store *cluster.Node
	// MFA, Sessions and Users are the second factor, the sessions made at
	// the end, and the user records updated at each sign-in. Required.
	MFA      *MFA
	Sessions *Sessions
	Users    *Users
	// Recorder receives an event for every refused step and every OIDC
	// success (MFA and Sessions record their own). Required.
	Recorder audit.Recorder
	// Logger; default discards.
	Logger *slog.Logger
	// Now is the clock for sign-in state; default time.Now. (ID token
	// expiry uses OIDC.Now.)
	Now func() time.Time
	// ClientSource, when set, says where a request came from (e.g. from
	// the PROXY protocol); default the connection's remote address and the
	// User-Agent header.
	ClientSource func(*http.Request) Source
	// Revalidator, when set, keeps the refresh token of each sign-in for
	// periodic revalidation.
	Revalidator *Revalidator
	// Organization is the organisation's name shown on every sign-in
	// page; default "ferry".
	Organization string
	// Home is where a browser goes once signed in (the portal, say);
	// default PathSignedIn.
	Home string
}

// Validate reports the first missing or malformed field.
func (c *FlowConfig) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("authn: flow: store is required")
	case c.MFA == nil:
		return errors.New("authn: flow: mfa is required")
	case c.Sessions == nil:
		return errors.New("authn: flow: sessions is required")
	case c.Users == nil:
		return errors.New("authn: flow: users is required")
	case c.Recorder == nil:
		return errors.New("authn: flow: recorder is required")
	}
	return c.OIDC.Validate()
}

// Flow serves the sign-in: OIDC with the company IdP, then the TOTP pages,
// then a browser session or a desktop client's token. It keeps no state of
// its own, so one Flow per node serves any step of any sign-in. It is safe
// for concurrent use.
type Flow struct {
	rp       *relyingParty
	store    *cluster.Node
	mfa      *MFA
	sessions *Sessions
	users    *Users
	rec      audit.Recorder
	log      *slog.Logger
	now      func() time.Time
	source   func(*http.Request) Source
	handler  http.Handler
	reval    *Revalidator
	org      string
	home     string
}

// NewFlow returns a Flow for cfg. It does not contact the IdP: discovery
// happens at the first sign-in and is retried until it succeeds.
func NewFlow(cfg FlowConfig) (*Flow, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rp, err := newRelyingParty(cfg.OIDC)
	if err != nil {
		return nil, err
	}
	f := &Flow{
		rp: rp, store: cfg.Store, mfa: cfg.MFA, sessions: cfg.Sessions, users: cfg.Users, reval: cfg.Revalidator,
		rec: cfg.Recorder, log: cfg.Logger, now: cfg.Now, source: cfg.ClientSource,
		org: cfg.Organization, home: cfg.Home,
	}
	if f.home == "" {
		f.home = PathSignedIn
	}
	if f.log == nil {
		f.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.source == nil {
		f.source = remoteSource
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathLogin, f.handleLogin)
	mux.HandleFunc("GET "+PathCallback, f.handleCallback)
	mux.HandleFunc("GET "+PathMFA, f.handleMFAPage)
	mux.HandleFunc("POST "+PathMFA, f.handleMFASubmit)
	mux.HandleFunc("GET "+PathMFARecovery, f.handleRecoveryPage)
	mux.HandleFunc("POST "+PathMFARecovery, f.handleRecoverySubmit)
	mux.HandleFunc("POST "+PathMFAContinue, f.handleContinue)
	mux.HandleFunc("GET "+PathSignedIn, f.handleSignedIn)
	mux.HandleFunc("GET "+PathLogout, f.handleLogoutPage)
	mux.HandleFunc("POST "+PathLogout, f.handleLogout)
	mux.HandleFunc("POST "+PathToken, f.handleToken)
	f.handler = securityHeaders(mux)
	return f, nil
}

// Handler returns the HTTP handler of every path in FlowPaths.
func (f *Flow) Handler() http.Handler { return f.handler }

// maxUserAgent bounds the User-Agent kept in audit records.
const maxUserAgent = 256

// remoteSource is the default ClientSource.
func remoteSource(r *http.Request) Source {
	s := Source{Addr: r.RemoteAddr, UserAgent: r.UserAgent()}
	if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		s.Addr = host
		s.Port, _ = strconv.Atoi(port)
	}
	if len(s.UserAgent) > maxUserAgent {
		s.UserAgent = s.UserAgent[:maxUserAgent]
	}
	return s
}

// randomToken returns 256 random bits, base64url.
func randomToken() (string, error) { return randomString(32) }

// csrfToken derives the CSRF token of the form pages of one step from the
// step's cookie value: only the browser holding that HttpOnly cookie can
// learn it (from the page), and it dies with the step.
func csrfToken(purpose, secret string) string {
	h := sha256.Sum256([]byte("ferry-csrf\x00" + purpose + "\x00" + secret))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: int(maxAge / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// detach returns a context for finishing a step once begun: a client that
// goes away must not leave a consumed step without its audit record.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
}
