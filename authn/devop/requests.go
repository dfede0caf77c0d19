package devop

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Scope and claim through which the provider hands out group membership.
const (
	scopeGroups = "groups"
	claimGroups = "groups"
)

// authRequestTTL bounds how long a started sign-in may wait for the login
// form; it answers abandoned requests piling up in memory.
const authRequestTTL = 10 * time.Minute

func randomID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("devop: reading random bytes: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// authRequest is one authorization request, from /authorize until its code
// is redeemed. It implements op.AuthRequest.
type authRequest struct {
	id            string
	created       time.Time
	clientID      string
	redirectURI   string
	state         string
	nonce         string
	scopes        []string
	responseType  oidc.ResponseType
	responseMode  oidc.ResponseMode
	codeChallenge *oidc.CodeChallenge

	// Set by the login form.
	subject  string
	authTime time.Time
	done     bool
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string                      { return a.id }
func (a *authRequest) GetACR() string                     { return "" }
func (a *authRequest) GetAudience() []string              { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time             { return a.authTime }
func (a *authRequest) GetClientID() string                { return a.clientID }
func (a *authRequest) GetNonce() string                   { return a.nonce }
func (a *authRequest) GetRedirectURI() string             { return a.redirectURI }
func (a *authRequest) GetState() string                   { return a.state }
func (a *authRequest) GetSubject() string                 { return a.subject }
func (a *authRequest) Done() bool                         { return a.done }
func (a *authRequest) GetScopes() []string                { return a.scopes }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.responseMode }

func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.codeChallenge }

func (a *authRequest) GetAMR() []string {
	if a.done {
		return []string{"pwd"}
	}
	return nil
}

// refreshToken is a refresh token and what it was issued for. It
// implements op.RefreshTokenRequest.
type refreshToken struct {
	token    string
	clientID string
	subject  string
	scopes   []string
	amr      []string
	authTime time.Time
	expires  time.Time
}

var _ op.RefreshTokenRequest = (*refreshToken)(nil)

func (r *refreshToken) GetAMR() []string                 { return r.amr }
func (r *refreshToken) GetAudience() []string            { return []string{r.clientID} }
func (r *refreshToken) GetAuthTime() time.Time           { return r.authTime }
func (r *refreshToken) GetClientID() string              { return r.clientID }
func (r *refreshToken) GetScopes() []string              { return r.scopes }
func (r *refreshToken) GetSubject() string               { return r.subject }
func (r *refreshToken) SetCurrentScopes(scopes []string) { r.scopes = scopes }

// accessToken is an opaque bearer token for /userinfo.
type accessToken struct {
	id       string
	clientID string
	subject  string
	scopes   []string
	expires  time.Time
}

// client is the one registered confidential client. It implements
// op.Client.
type client struct {
	id           string
	secret       string
	redirectURIs []string
	idLifetime   time.Duration
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *client) LoginURL(id string) string           { return loginPath + "?" + paramRequestID + "=" + id }
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration      { return c.idLifetime }
func (c *client) ClockSkew() time.Duration            { return 0 }

// DevMode lets the client register http redirect URIs, as a development
// server on loopback needs.
func (c *client) DevMode() bool { return true }

func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) IsScopeAllowed(scope string) bool { return scope == scopeGroups }

// IDTokenUserinfoClaimsAssertion puts email and profile claims into the ID
// token even though an access token is issued too, so a relying party needs
// no userinfo call.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }

// signingKey is the provider's RS256 key. It implements op.SigningKey.
type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (s signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (s signingKey) Key() any                                    { return s.key }
func (s signingKey) ID() string                                  { return s.id }

// publicKey is the public half served at /keys. It implements op.Key.
type publicKey struct{ signingKey }

func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.key.PublicKey }

func containsScope(scopes []string, s string) bool { return slices.Contains(scopes, s) }
