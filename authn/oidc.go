package authn

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// ClientSecret is the OIDC client secret of a confidential client. It never
// prints; Reveal gives the text to the token request only.
type ClientSecret string

// NewClientSecret returns the secret held in b (a secret file's contents),
// without surrounding white space.
func NewClientSecret(b []byte) ClientSecret { return ClientSecret(strings.TrimSpace(string(b))) }

// Equal compares in constant time.
func (s ClientSecret) Equal(o ClientSecret) bool {
	return subtle.ConstantTimeCompare([]byte(s), []byte(o)) == 1
}

func (s ClientSecret) String() string       { return "[redacted]" }
func (s ClientSecret) GoString() string     { return "[redacted]" }
func (s ClientSecret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Reveal returns the secret text.
func (s ClientSecret) Reveal() string { return string(s) }

// OIDCConfig configures ferry as an OpenID Connect relying party of the
// company identity provider. It is a confidential client using the
// authorization code flow with PKCE (S256).
type OIDCConfig struct {
	// Issuer is the IdP's issuer URL, exactly as in its discovery document
	// and tokens. Required.
	Issuer string
	// ClientID is ferry's client ID at the IdP; ID tokens must name it in
	// their audience. Required.
	ClientID string
	// ClientSecret is the client secret (read from a file by cmd).
	// Required.
	ClientSecret ClientSecret
	// RedirectURL is the callback URL registered at the IdP, e.g.
	// https://vpn.example.com/callback. It must be https, or http on a
	// loopback address, and its path must be /callback. Required.
	RedirectURL string
	// Scopes requested; default openid, email, profile. openid is added
	// when missing.
	Scopes []string
	// Claims naming the user ID (default "sub"), email (default "email"),
	// display name (default "name") and groups (default "groups").
	UserIDClaim string
	EmailClaim  string
	NameClaim   string
	GroupsClaim string
	// AllowedEmailDomains, when set, admits only identities whose email is
	// in one of these domains (exact match, case-insensitive), and whose
	// email is not marked unverified.
	AllowedEmailDomains []string
	// RequiredGroups, when set, admits only identities in at least one of
	// these groups.
	RequiredGroups []string
	// HTTPClient talks to the IdP; default a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock for ID token expiry; default time.Now.
	Now func() time.Time
}

// Validate reports the first missing or malformed field. It does not
// contact the IdP.
func (c *OIDCConfig) Validate() error {
	switch {
	case c.Issuer == "":
		return errors.New("authn: oidc: issuer is required")
	case c.ClientID == "":
		return errors.New("authn: oidc: client_id is required")
	case c.ClientSecret == "":
		return errors.New("authn: oidc: client secret is required")
	case c.RedirectURL == "":
		return errors.New("authn: oidc: redirect_url is required")
	}
	iu, err := url.Parse(c.Issuer)
	if err != nil || (iu.Scheme != "https" && iu.Scheme != "http") || iu.Host == "" {
		return fmt.Errorf("authn: oidc: issuer %q: want an absolute https URL", c.Issuer)
	}
	if iu.Scheme == "http" && !isLoopbackHost(iu.Hostname()) {
		return fmt.Errorf("authn: oidc: issuer %q: http is allowed on loopback only", c.Issuer)
	}
	if iu.RawQuery != "" || strings.Contains(c.Issuer, "#") {
		// OpenID Connect Discovery 1.0, section 3; and '#' ends the
		// issuer in a user key (UserKey).
		return fmt.Errorf("authn: oidc: issuer %q: must have no query or fragment", c.Issuer)
	}
	ru, err := url.Parse(c.RedirectURL)
	switch {
	case err != nil || ru.Host == "" || (ru.Scheme != "https" && ru.Scheme != "http"):
		return fmt.Errorf("authn: oidc: redirect_url %q: want an absolute https URL", c.RedirectURL)
	case ru.Scheme == "http" && !isLoopbackHost(ru.Hostname()):
		return fmt.Errorf("authn: oidc: redirect_url %q: http is allowed on loopback only", c.RedirectURL)
	case ru.Path != PathCallback || ru.RawQuery != "" || ru.Fragment != "" || ru.User != nil:
		return fmt.Errorf("authn: oidc: redirect_url %q: want path %s and no query, fragment or user info", c.RedirectURL, PathCallback)
	}
	for _, d := range c.AllowedEmailDomains {
		if d == "" || strings.ContainsAny(d, "@/ ") {
			return fmt.Errorf("authn: oidc: allowed_email_domains: %q is not a domain", d)
		}
	}
	for _, g := range c.RequiredGroups {
		if g == "" {
			return errors.New("authn: oidc: required_groups: empty group name")
		}
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (c *OIDCConfig) setDefaults() {
	if len(c.Scopes) == 0 {
		c.Scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	} else if !slices.Contains(c.Scopes, oidc.ScopeOpenID) {
		c.Scopes = append([]string{oidc.ScopeOpenID}, c.Scopes...)
	}
	defaultStr(&c.UserIDClaim, "sub")
	defaultStr(&c.EmailClaim, "email")
	defaultStr(&c.NameClaim, "name")
	defaultStr(&c.GroupsClaim, "groups")
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func defaultStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

// relyingParty talks to the IdP. Discovery happens on first use and is
// retried until it succeeds, so ferryd starts while the IdP is down.
type relyingParty struct {
	cfg OIDCConfig

	mu       sync.Mutex // guards provider, verifier and oauth
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
}

func newRelyingParty(cfg OIDCConfig) (*relyingParty, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	cfg.Scopes = slices.Clone(cfg.Scopes)
	return &relyingParty{cfg: cfg}, nil
}

func (rp *relyingParty) clientCtx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, rp.cfg.HTTPClient)
}

// discover returns the OAuth2 config and ID token verifier, fetching the
// discovery document the first time.
func (rp *relyingParty) discover(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.oauth != nil {
		return rp.oauth, rp.verifier, nil
	}
	p, err := oidc.NewProvider(rp.clientCtx(ctx), rp.cfg.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("discovering OIDC provider %s: %w", rp.cfg.Issuer, err)
	}
	rp.provider = p
	rp.verifier = p.Verifier(&oidc.Config{ClientID: rp.cfg.ClientID, Now: rp.cfg.Now})
	rp.oauth = &oauth2.Config{
		ClientID:     rp.cfg.ClientID,
		ClientSecret: rp.cfg.ClientSecret.Reveal(),
		Endpoint:     p.Endpoint(),
		RedirectURL:  rp.cfg.RedirectURL,
		Scopes:       rp.cfg.Scopes,
	}
	return rp.oauth, rp.verifier, nil
}

// authURL returns the IdP authorization URL for one login.
func (rp *relyingParty) authURL(ctx context.Context, state, nonce, verifier string) (string, error) {
	oc, _, err := rp.discover(ctx)
	if err != nil {
		return "", err
	}
	return oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), nil
}

// exchanged is what the token endpoint answered for a code.
type exchanged struct {
	idToken, refreshToken, accessToken string
}

// exchange redeems an authorization code with its PKCE verifier and returns
// the raw ID token, the refresh token, if the provider granted one, and
// the access token (for userinfo). Failures are *signinError.
func (rp *relyingParty) exchange(ctx context.Context, code, verifier string) (exchanged, error) {
	oc, _, err := rp.discover(ctx)
	if err != nil {
		return exchanged{}, signinFail(frIdPUnavailable, err)
	}
	tok, err := oc.Exchange(rp.clientCtx(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && strings.Contains(re.ErrorDescription, "code_verifier") {
			return exchanged{}, signinFail(frIdPPKCERejected, fmt.Errorf("%s: %s", re.ErrorCode, re.ErrorDescription))
		}
		if errors.As(err, &re) {
			return exchanged{}, signinFail(frCodeExchange, fmt.Errorf("%s: %s", re.ErrorCode, re.ErrorDescription))
		}
		return exchanged{}, signinFail(frCodeExchange, err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return exchanged{}, signinFail(frNoIDToken, errors.New("token response has no id_token"))
	}
	return exchanged{idToken: raw, refreshToken: tok.RefreshToken, accessToken: tok.AccessToken}, nil
}

// verify checks an ID token's signature, issuer, audience and expiry, that
// its nonce hashes to nonceHash, and that the identity passes the sign-in
// policy. Failures are *signinError.
//
// When the ID token has no groups claim, the groups are asked of the
// userinfo endpoint with accessToken (some providers put groups only
// there); when neither has the claim, the identity says so
// (GroupsClaimMissing) and has no groups.
func (rp *relyingParty) verify(ctx context.Context, raw, accessToken, nonceHash string) (Identity, error) {
	_, v, err := rp.discover(ctx)
	if err != nil {
		return Identity{}, signinFail(frIdPUnavailable, err)
	}
	tok, err := v.Verify(rp.clientCtx(ctx), raw)
	if err != nil {
		return Identity{}, classifyVerifyError(err)
	}
	if subtle.ConstantTimeCompare([]byte(signinHash(tok.Nonce)), []byte(nonceHash)) != 1 {
		return Identity{}, signinFail(frNonceMismatch, errors.New("ID token nonce does not match the login's"))
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, signinFail(frClaims, err)
	}
	missing := false
	if _, ok := claims[rp.cfg.GroupsClaim]; !ok {
		if g, ok := rp.userinfoGroups(ctx, accessToken, tok.Subject); ok {
			claims[rp.cfg.GroupsClaim] = g
		} else {
			missing = true
		}
	}
	id, err := rp.identity(claims)
	if err != nil {
		return Identity{}, err
	}
	id.GroupsClaimMissing = missing
	return id, rp.admit(id, claims)
}

// userinfoGroups asks the userinfo endpoint for the groups claim; ok is
// false when there is no endpoint, no access token, an error, a userinfo
// answer for another subject, or no such claim.
func (rp *relyingParty) userinfoGroups(ctx context.Context, accessToken, subject string) (any, bool) {
	rp.mu.Lock()
	p := rp.provider
	rp.mu.Unlock()
	if p == nil || accessToken == "" || p.UserInfoEndpoint() == "" {
		return nil, false
	}
	ui, err := p.UserInfo(rp.clientCtx(ctx), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken}))
	if err != nil || ui.Subject != subject {
		return nil, false
	}
	var claims map[string]any
	if err := ui.Claims(&claims); err != nil {
		return nil, false
	}
	g, ok := claims[rp.cfg.GroupsClaim]
	return g, ok
}

// classifyVerifyError names what go-oidc's Verify refused. Verify checks
// the signature first, then issuer, audience and expiry, and says which in
// its message.
func classifyVerifyError(err error) error {
	var exp *oidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &exp):
		return signinFail(frTokenExpired, err)
	case strings.Contains(msg, "issued by a different provider"):
		return signinFail(frTokenIssuer, err)
	case strings.Contains(msg, "expected audience"):
		return signinFail(frTokenAudience, err)
	case strings.Contains(msg, "signature"):
		return signinFail(frTokenSignature, err)
	case strings.Contains(msg, "malformed"):
		return signinFail(frTokenMalformed, err)
	}
	return signinFail(frTokenInvalid, err)
}

// Bounds on claims taken from a token, so one identity cannot bloat
// sessions and audit records.
const (
	maxClaimLen  = 256
	maxGroups    = 256
	maxGroupsLen = 16 << 10
)

// identity maps claims to an Identity using the configured claim names.
func (rp *relyingParty) identity(claims map[string]any) (Identity, error) {
	uid, _ := claims[rp.cfg.UserIDClaim].(string)
	if uid == "" {
		return Identity{}, signinFail(frClaims, fmt.Errorf("claim %q missing or not a string", rp.cfg.UserIDClaim))
	}
	if len(uid) > maxClaimLen {
		return Identity{}, signinFail(frClaims, fmt.Errorf("claim %q longer than %d bytes", rp.cfg.UserIDClaim, maxClaimLen))
	}
	id := Identity{Issuer: rp.cfg.Issuer, Subject: uid, UserID: UserKey(rp.cfg.Issuer, uid)}
	if err := checkIssuerSubject(id.Issuer, id.Subject); err != nil {
		return Identity{}, signinFail(frClaims, err)
	}
	id.Email, _ = claims[rp.cfg.EmailClaim].(string)
	id.EmailVerified = claimTrue(claims["email_verified"])
	id.Name, _ = claims[rp.cfg.NameClaim].(string)
	if sid, _ := claims["sid"].(string); len(sid) <= maxClaimLen {
		id.IdPSession = sid
	}
	if len(id.Email) > maxClaimLen || len(id.Name) > maxClaimLen {
		return Identity{}, signinFail(frClaims, fmt.Errorf("email or name longer than %d bytes", maxClaimLen))
	}
	total := 0
	switch g := claims[rp.cfg.GroupsClaim].(type) {
	case nil:
	case string:
		id.Groups = []string{g}
	case []any:
		for _, x := range g {
			s, ok := x.(string)
			if !ok {
				return Identity{}, signinFail(frClaims, fmt.Errorf("claim %q holds a non-string", rp.cfg.GroupsClaim))
			}
			total += len(s)
			id.Groups = append(id.Groups, s)
		}
	default:
		return Identity{}, signinFail(frClaims, fmt.Errorf("claim %q is neither a string nor a list", rp.cfg.GroupsClaim))
	}
	if len(id.Groups) > maxGroups || total > maxGroupsLen {
		return Identity{}, signinFail(frClaims, fmt.Errorf("claim %q: more than %d groups or %d bytes", rp.cfg.GroupsClaim, maxGroups, maxGroupsLen))
	}
	return id, nil
}

// admit applies the email domain and group policy.
func (rp *relyingParty) admit(id Identity, claims map[string]any) error {
	if len(rp.cfg.AllowedEmailDomains) > 0 {
		at := strings.LastIndexByte(id.Email, '@')
		if at < 0 {
			return signinFail(frDomain, fmt.Errorf("%w: no email address", ErrForbidden))
		}
		if v, ok := claims["email_verified"].(bool); ok && !v {
			return signinFail(frEmailUnverified, fmt.Errorf("%w: email %q is not verified", ErrForbidden, id.Email))
		}
		domain := id.Email[at+1:]
		if !slices.ContainsFunc(rp.cfg.AllowedEmailDomains, func(d string) bool { return strings.EqualFold(d, domain) }) {
			return signinFail(frDomain, fmt.Errorf("%w: email domain %q", ErrForbidden, domain))
		}
	}
	if len(rp.cfg.RequiredGroups) > 0 && !slices.ContainsFunc(id.Groups, func(g string) bool {
		return slices.Contains(rp.cfg.RequiredGroups, g)
	}) {
		return signinFail(frGroup, fmt.Errorf("%w: in none of the required groups", ErrForbidden))
	}
	return nil
}

// claimTrue reports whether a boolean claim is true. Some providers send
// booleans as the strings "true" and "false".
func claimTrue(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return b == "true"
	}
	return false
}
