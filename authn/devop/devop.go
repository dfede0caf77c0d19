// Package devop is a development OpenID Provider: a real OP built on
// zitadel/oidc's pkg/op, with everything it needs kept in memory, a tiny
// username/password form, a demo user and one registered confidential
// client.
//
// It exists so that `ferryd dev` shows the whole sign-in on a laptop, and so
// that tests sign in against a real provider over HTTP. It is not an
// identity provider for production: passwords are compared in plain text,
// keys and sessions vanish on restart, and it accepts an http issuer.
//
// Endpoints (under the issuer URL): /.well-known/openid-configuration,
// /authorize, /authorize/callback, /oauth/token, /userinfo, /keys, and the
// login form at /ui/login.
package devop

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// User is an account of the development provider.
type User struct {
	// Username and Password are what the login form takes.
	Username string
	Password string
	// Subject is the `sub` claim; default "devop-" + Username.
	Subject string
	// Email is the `email` claim (verified); default Username@example.com.
	Email string
	// Name is the `name` claim; default Username.
	Name string
	// Groups is the `groups` claim.
	Groups []string
}

// DemoUsers returns the built-in accounts: demo/demo in the groups
// engineering and ferry-admins, and alice/alice in engineering.
func DemoUsers() []User {
	return []User{
		{Username: "demo", Password: "demo", Name: "Demo User", Groups: []string{"engineering", "ferry-admins"}},
		{Username: "alice", Password: "alice", Name: "Alice Example", Groups: []string{"engineering"}},
	}
}

// Config configures a Provider.
type Config struct {
	// Issuer is the exact issuer URL, e.g. http://127.0.0.1:5556. Relying
	// parties compare it byte for byte, so it must be the URL they use.
	// It must have no path, query or fragment. Required.
	Issuer string
	// ClientID and ClientSecret are the one registered confidential
	// client. Required.
	ClientID     string
	ClientSecret string
	// RedirectURIs are the client's registered redirect URIs, matched
	// exactly. At least one is required.
	RedirectURIs []string
	// Users are the accounts; default DemoUsers().
	Users []User
	// SigningKey signs ID tokens (RS256); default a fresh 2048-bit key.
	SigningKey *rsa.PrivateKey
	// KeyID is the `kid` of SigningKey; default a random ID.
	KeyID string
	// IDTokenLifetime bounds ID tokens; default 1 hour.
	IDTokenLifetime time.Duration
	// Logger receives the login form's events; default discards. (The OP
	// library itself logs through slog's default logger.)
	Logger *slog.Logger
}

// Validate reports the first missing or malformed field.
func (c *Config) Validate() error {
	u, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "":
		return errors.New("devop: Issuer is required")
	case err != nil:
		return fmt.Errorf("devop: Issuer: %w", err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Errorf("devop: Issuer %q: want an absolute http or https URL", c.Issuer)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("devop: Issuer %q: must have no path, query or fragment", c.Issuer)
	case c.ClientID == "":
		return errors.New("devop: ClientID is required")
	case c.ClientSecret == "":
		return errors.New("devop: ClientSecret is required")
	case len(c.RedirectURIs) == 0:
		return errors.New("devop: at least one RedirectURI is required")
	case c.IDTokenLifetime < 0:
		return errors.New("devop: IDTokenLifetime must not be negative")
	}
	for _, r := range c.RedirectURIs {
		ru, err := url.Parse(r)
		if err != nil || !ru.IsAbs() || ru.Host == "" {
			return fmt.Errorf("devop: RedirectURI %q: want an absolute URL", r)
		}
	}
	seen := make(map[string]bool)
	for i, u := range c.Users {
		switch {
		case u.Username == "" || u.Password == "":
			return fmt.Errorf("devop: Users[%d]: username and password are required", i)
		case seen[u.Username]:
			return fmt.Errorf("devop: Users[%d]: duplicate username %q", i, u.Username)
		}
		seen[u.Username] = true
	}
	return nil
}

// Provider is a running development OP. Its handler is safe for concurrent
// use.
type Provider struct {
	issuer  string
	storage *storage
	handler http.Handler
}

// New builds a Provider. It does not listen: serve Handler at Issuer.
func New(cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	issuer := strings.TrimSuffix(cfg.Issuer, "/")
	users := cfg.Users
	if len(users) == 0 {
		users = DemoUsers()
	}
	key := cfg.SigningKey
	if key == nil {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, fmt.Errorf("devop: generating signing key: %w", err)
		}
	}
	kid := cfg.KeyID
	if kid == "" {
		kid = randomID()
	}
	lifetime := cfg.IDTokenLifetime
	if lifetime == 0 {
		lifetime = time.Hour
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	st := newStorage(users, &client{
		id:           cfg.ClientID,
		secret:       cfg.ClientSecret,
		redirectURIs: append([]string(nil), cfg.RedirectURIs...),
		idLifetime:   lifetime,
	}, signingKey{id: kid, key: key})

	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, fmt.Errorf("devop: generating token key: %w", err)
	}
	opCfg := &op.Config{
		CryptoKey:          cryptoKey,
		CodeMethodS256:     true,
		AuthMethodPost:     true,
		SupportedUILocales: []language.Tag{language.English},
		SupportedScopes:    []string{"openid", "profile", "email", "offline_access", scopeGroups},
		// Refresh tokens, for the offline_access scope: ferry revalidates
		// with them.
		GrantTypeRefreshToken: true,
		SupportedClaims:       []string{"sub", "iss", "aud", "exp", "iat", "nonce", "email", "email_verified", "name", "preferred_username", claimGroups},
	}
	// The dev issuer is plain http on loopback: the OP refuses that unless
	// told otherwise.
	provider, err := op.NewProvider(opCfg, st, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		return nil, fmt.Errorf("devop: creating provider: %w", err)
	}
	l := &loginUI{
		storage:  st,
		callback: op.AuthCallbackURL(provider),
		log:      logger,
	}
	mux := http.NewServeMux()
	mux.Handle(loginPath, op.NewIssuerInterceptor(provider.IssuerFromRequest).Handler(l))
	mux.Handle("/", provider)
	return &Provider{issuer: issuer, storage: st, handler: mux}, nil
}

// Handler returns the provider's HTTP handler, to be served at the issuer
// URL's root.
func (p *Provider) Handler() http.Handler { return p.handler }

// Issuer returns the issuer URL exactly as it appears in tokens.
func (p *Provider) Issuer() string { return p.issuer }

// SetGroups replaces a user's groups, as an administrator at the identity
// provider would; later ID tokens (a sign-in or a refresh) carry them.
func (p *Provider) SetGroups(username string, groups []string) error {
	return p.storage.setGroups(username, groups)
}

// SetDisabled disables or enables a user: a disabled user cannot sign in
// and their refresh tokens are refused with invalid_grant.
func (p *Provider) SetDisabled(username string, disabled bool) error {
	return p.storage.setDisabled(username, disabled)
}
