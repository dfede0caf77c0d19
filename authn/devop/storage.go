package devop

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Errors of the storage; the OP library turns them into OAuth errors.
var (
	errUnknownRequest = errors.New("devop: auth request unknown or expired")
	errUnknownCode    = errors.New("devop: code unknown or already used")
	errUnknownClient  = errors.New("devop: unknown client")
	errBadSecret      = errors.New("devop: wrong client secret")
	errBadLogin       = errors.New("devop: wrong username or password")
	errUnknownToken   = errors.New("devop: token unknown or expired")
	errUnsupported    = errors.New("devop: not supported by the development provider")
)

// accessTokenTTL is the lifetime of access tokens (only /userinfo takes
// them).
const accessTokenTTL = 5 * time.Minute

// refreshTokenTTL is the lifetime of refresh tokens (issued with the
// offline_access scope).
const refreshTokenTTL = 30 * 24 * time.Hour

// storage keeps the provider's state in memory. It implements op.Storage.
type storage struct {
	client *client
	key    signingKey

	umu      sync.RWMutex    // guards users, subs and disabled
	users    map[string]User // by username
	subs     map[string]User // by subject
	disabled map[string]bool // by subject

	mu       sync.Mutex // guards requests, codes, tokens, refresh
	requests map[string]*authRequest
	codes    map[string]string // code -> request ID
	tokens   map[string]*accessToken
	refresh  map[string]*refreshToken
}

var (
	_ op.Storage                   = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
)

func newStorage(users []User, c *client, key signingKey) *storage {
	s := &storage{
		client:   c,
		key:      key,
		users:    make(map[string]User),
		subs:     make(map[string]User),
		requests: make(map[string]*authRequest),
		codes:    make(map[string]string),
		tokens:   make(map[string]*accessToken),
		refresh:  make(map[string]*refreshToken),
		disabled: make(map[string]bool),
	}
	for _, u := range users {
		if u.Subject == "" {
			u.Subject = "devop-" + u.Username
		}
		if u.Email == "" {
			u.Email = u.Username + "@example.com"
		}
		if u.Name == "" {
			u.Name = u.Username
		}
		u.Groups = append([]string(nil), u.Groups...)
		s.users[u.Username] = u
		s.subs[u.Subject] = u
	}
	return s
}

// checkLogin marks request id as authenticated by username if the password
// matches.
func (s *storage) checkLogin(id, username, password string) error {
	s.umu.RLock()
	u, ok := s.users[username]
	if ok && s.disabled[u.Subject] {
		ok = false
	}
	s.umu.RUnlock()
	// Compare even for unknown users, so timing says little.
	want := u.Password
	if !ok {
		want = "\x00unknown"
	}
	good := subtle.ConstantTimeCompare([]byte(want), []byte(password)) == 1 && ok
	s.mu.Lock()
	defer s.mu.Unlock()
	req, found := s.requests[id]
	if !found || time.Since(req.created) > authRequestTTL {
		return errUnknownRequest
	}
	if !good {
		return errBadLogin
	}
	req.subject = u.Subject
	req.authTime = time.Now()
	req.done = true
	return nil
}

// requestKnown reports whether id is a pending auth request.
func (s *storage) requestKnown(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, ok := s.requests[id]
	return ok && time.Since(req.created) <= authRequestTTL
}

func (s *storage) CreateAuthRequest(_ context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if len(r.Prompt) == 1 && r.Prompt[0] == oidc.PromptNone {
		return nil, oidc.ErrLoginRequired()
	}
	req := &authRequest{
		id:           randomID(),
		created:      time.Now(),
		clientID:     r.ClientID,
		redirectURI:  r.RedirectURI,
		state:        r.State,
		nonce:        r.Nonce,
		scopes:       append([]string(nil), r.Scopes...),
		responseType: r.ResponseType,
		responseMode: r.ResponseMode,
	}
	if r.CodeChallenge != "" {
		// The method is passed through so that an unsupported one is
		// refused when the code is redeemed rather than treated as plain.
		req.codeChallenge = &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked()
	s.requests[req.id] = req
	return req, nil
}

// sweepLocked drops expired requests and tokens.
func (s *storage) sweepLocked() {
	now := time.Now()
	for id, r := range s.requests {
		if now.Sub(r.created) > authRequestTTL {
			delete(s.requests, id)
		}
	}
	for code, id := range s.codes {
		if _, ok := s.requests[id]; !ok {
			delete(s.codes, code)
		}
	}
	for id, t := range s.tokens {
		if now.After(t.expires) {
			delete(s.tokens, id)
		}
	}
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, ok := s.requests[id]
	if !ok || time.Since(req.created) > authRequestTTL {
		return nil, errUnknownRequest
	}
	return req, nil
}

func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errUnknownCode
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.requests[id]; !ok {
		return errUnknownRequest
	}
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest is called once the code is redeemed: the code dies with
// its request, so it works once only.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

func (s *storage) CreateAccessToken(_ context.Context, r op.TokenRequest) (string, time.Time, error) {
	t := &accessToken{
		id:       randomID(),
		subject:  r.GetSubject(),
		scopes:   append([]string(nil), r.GetScopes()...),
		expires:  time.Now().Add(accessTokenTTL),
		clientID: s.client.id,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[t.id] = t
	return t.id, t.expires, nil
}

// CreateAccessAndRefreshTokens issues an access token and a refresh
// token; a refresh rotates the refresh token (the old one dies).
func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, r op.TokenRequest, current string) (string, string, time.Time, error) {
	access, exp, err := s.CreateAccessToken(ctx, r)
	if err != nil {
		return "", "", time.Time{}, err
	}
	rt := &refreshToken{
		token: randomID(), subject: r.GetSubject(), clientID: s.client.id, scopes: append([]string(nil), r.GetScopes()...),
		expires: time.Now().Add(refreshTokenTTL), authTime: time.Now(), amr: []string{"pwd"},
	}
	if a, ok := r.(op.AuthRequest); ok {
		rt.authTime, rt.amr = a.GetAuthTime(), a.GetAMR()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if current != "" {
		old, ok := s.refresh[current]
		if !ok {
			return "", "", time.Time{}, op.ErrInvalidRefreshToken
		}
		rt.authTime, rt.amr = old.authTime, old.amr
		delete(s.refresh, current)
	}
	s.refresh[rt.token] = rt
	return access, rt.token, exp, nil
}

// TokenRequestByRefreshToken returns what a refresh token was issued for.
// A token of a disabled or removed user is refused, which the library
// answers with invalid_grant.
func (s *storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	rt, ok := s.refresh[token]
	s.mu.Unlock()
	if !ok || time.Now().After(rt.expires) {
		return nil, op.ErrInvalidRefreshToken
	}
	s.umu.RLock()
	_, known := s.subs[rt.subject]
	off := s.disabled[rt.subject]
	s.umu.RUnlock()
	if !known || off {
		return nil, op.ErrInvalidRefreshToken
	}
	c := *rt
	c.scopes = append([]string(nil), rt.scopes...)
	return &c, nil
}

func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.tokens {
		if t.subject == userID && t.clientID == clientID {
			delete(s.tokens, id)
		}
	}
	return nil
}

func (s *storage) RevokeToken(_ context.Context, tokenOrID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[tokenOrID]; ok {
		if t.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.tokens, tokenOrID)
	}
	return nil
}

func (s *storage) GetRefreshTokenInfo(_ context.Context, _ string, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt, ok := s.refresh[token]; ok {
		return rt.subject, rt.token, nil
	}
	return "", "", op.ErrInvalidRefreshToken
}

// setGroups replaces username's groups, as an administrator at the IdP
// would.
func (s *storage) setGroups(username string, groups []string) error {
	s.umu.Lock()
	defer s.umu.Unlock()
	u, ok := s.users[username]
	if !ok {
		return fmt.Errorf("devop: no user %q", username)
	}
	u.Groups = append([]string(nil), groups...)
	s.users[username], s.subs[u.Subject] = u, u
	return nil
}

// setDisabled disables or enables username: a disabled user cannot sign
// in, and their refresh tokens are refused (invalid_grant).
func (s *storage) setDisabled(username string, off bool) error {
	s.umu.Lock()
	defer s.umu.Unlock()
	u, ok := s.users[username]
	if !ok {
		return fmt.Errorf("devop: no user %q", username)
	}
	s.disabled[u.Subject] = off
	return nil
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id != s.client.id {
		return nil, errUnknownClient
	}
	return s.client, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	if id != s.client.id {
		return errUnknownClient
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(s.client.secret)) != 1 {
		return errBadSecret
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in the library; SetUserinfoFromRequest
// does the work.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, r op.IDTokenRequest, scopes []string) error {
	return s.setUserinfo(info, r.GetSubject(), scopes)
}

func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	s.mu.Lock()
	t, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(t.expires) {
		return errUnknownToken
	}
	return s.setUserinfo(info, t.subject, t.scopes)
}

func (s *storage) setUserinfo(info *oidc.UserInfo, subject string, scopes []string) error {
	s.umu.RLock()
	u, ok := s.subs[subject]
	s.umu.RUnlock()
	if !ok {
		return errUnknownToken
	}
	info.Subject = u.Subject
	if containsScope(scopes, oidc.ScopeEmail) {
		info.Email = u.Email
		info.EmailVerified = oidc.Bool(true)
	}
	if containsScope(scopes, oidc.ScopeProfile) {
		info.Name = u.Name
		info.PreferredUsername = u.Username
	}
	// Groups go into every ID token, asked for or not, as many company
	// IdPs are configured to do.
	info.AppendClaims(claimGroups, append([]string{}, u.Groups...))
	return nil
}

func (s *storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errUnsupported
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errUnsupported
}

func (s *storage) ValidateJWTProfileScopes(_ context.Context, _ string, scopes []string) ([]string, error) {
	var out []string
	for _, sc := range scopes {
		if strings.EqualFold(sc, oidc.ScopeOpenID) {
			out = append(out, sc)
		}
	}
	return out, nil
}

func (s *storage) Health(context.Context) error { return nil }
