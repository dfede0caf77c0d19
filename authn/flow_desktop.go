package authn

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// Query parameters of /login. A browser sends none; a desktop client
// (`ferry login`, `ferryctl login`) sends all but admin, which ferryctl
// adds.
const (
	paramClient        = "client"
	paramRedirectURI   = "redirect_uri"
	paramChallenge     = "code_challenge"
	paramChallengeMeth = "code_challenge_method"
	paramState         = "state"
	paramAdmin         = "admin"
	// paramReturn is a browser's return address: where to go once
	// signed in (see checkReturn).
	paramReturn = "return"

	clientDesktop = "desktop"
	clientBrowser = "browser"
)

// Bounds of desktop request values.
const (
	maxClientState = 256
	// s256ChallengeLen is the length of base64url(SHA-256(verifier)).
	s256ChallengeLen = 43
	// RFC 7636 verifiers are 43 to 128 unreserved characters.
	minVerifierLen = 43
	maxVerifierLen = 128
	// loopback codes are 256 random bits, base64url.
	maxLoopbackCode = 64
	maxRedirectURI  = 512
)

// loginRequest is a parsed /login query.
type loginRequest struct {
	desktop *desktopRequest // nil for a browser
	admin   bool
	ret     string // a browser's return address, checked; "" for home
}

// errNotLoopback is wrapped by parseLoginRequest when redirect_uri is not
// a loopback callback of the accepted shape.
var errNotLoopback = errors.New("redirect_uri is not http://127.0.0.1:PORT/callback or http://[::1]:PORT/callback")

// parseLoginRequest checks a /login query. Each known parameter may appear
// once; unknown ones are ignored.
func parseLoginRequest(q url.Values) (loginRequest, error) {
	for _, k := range []string{paramClient, paramRedirectURI, paramChallenge, paramChallengeMeth, paramState, paramAdmin, paramReturn} {
		if len(q[k]) > 1 {
			return loginRequest{}, fmt.Errorf("parameter %s repeated", k)
		}
	}
	var req loginRequest
	switch a := q.Get(paramAdmin); a {
	case "", "0":
	case "1":
		req.admin = true
	default:
		return loginRequest{}, fmt.Errorf("admin: %q is not 0 or 1", a)
	}
	switch c := q.Get(paramClient); c {
	case "", clientBrowser:
		for _, k := range []string{paramRedirectURI, paramChallenge, paramChallengeMeth, paramState, paramAdmin} {
			if q.Has(k) {
				return loginRequest{}, fmt.Errorf("parameter %s is for desktop clients only", k)
			}
		}
		if q.Has(paramReturn) {
			ret, ok := checkReturn(q.Get(paramReturn))
			if !ok {
				return loginRequest{}, fmt.Errorf("return: %q is not a path on this server", q.Get(paramReturn))
			}
			req.ret = ret
		}
		return req, nil
	case clientDesktop:
	default:
		return loginRequest{}, fmt.Errorf("client: %q is not desktop or browser", c)
	}
	if q.Has(paramReturn) {
		// A desktop sign-in ends at its loopback client, nowhere else.
		return loginRequest{}, fmt.Errorf("parameter %s is for browsers only", paramReturn)
	}
	redirect, err := checkLoopbackRedirect(q.Get(paramRedirectURI))
	if err != nil {
		return loginRequest{}, err
	}
	if m := q.Get(paramChallengeMeth); m != "S256" {
		return loginRequest{}, fmt.Errorf("code_challenge_method: %q is not S256", m)
	}
	ch := q.Get(paramChallenge)
	if len(ch) != s256ChallengeLen || !isBase64URL(ch) {
		return loginRequest{}, errors.New("code_challenge: not a base64url SHA-256")
	}
	st := q.Get(paramState)
	if st == "" || len(st) > maxClientState || !isUnreserved(st) {
		return loginRequest{}, fmt.Errorf("state: want 1 to %d unreserved characters", maxClientState)
	}
	req.desktop = &desktopRequest{RedirectURI: redirect, State: st, Challenge: ch}
	return req, nil
}

// checkLoopbackRedirect accepts exactly http://127.0.0.1:PORT/callback and
// http://[::1]:PORT/callback (RFC 8252 §7.3: loopback IP literals, any
// port, fixed path) and returns it. Everything else — other hosts,
// "localhost" (which DNS or a hosts file may send elsewhere), https, user
// info, queries, fragments, other paths, odd spellings — is refused.
func checkLoopbackRedirect(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %s", errNotLoopback, "unparsable")
	}
	host := u.Hostname()
	port := u.Port()
	n, perr := strconv.Atoi(port)
	switch {
	case u.Scheme != "http", u.Opaque != "", u.User != nil:
		return "", errNotLoopback
	case host != "127.0.0.1" && host != "::1":
		return "", errNotLoopback
	case perr != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port:
		return "", errNotLoopback
	}
	canonical := "http://" + u.Host + PathCallback
	if raw != canonical {
		return "", errNotLoopback
	}
	return canonical, nil
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// isUnreserved reports whether s has only RFC 3986 unreserved characters.
func isUnreserved(s string) bool {
	return isBase64URL(strings.Map(func(r rune) rune {
		if r == '.' || r == '~' {
			return 'a'
		}
		return r
	}, s))
}

// loopbackURL is where the browser goes back to the desktop client.
func loopbackURL(d *desktopRequest, code string) string {
	v := url.Values{}
	v.Set("code", code)
	v.Set(paramState, d.State)
	return d.RedirectURI + "?" + v.Encode()
}

// validVerifier reports whether v is an RFC 7636 code verifier.
func validVerifier(v string) bool {
	return len(v) >= minVerifierLen && len(v) <= maxVerifierLen && isUnreserved(v)
}

// s256Matches reports whether verifier hashes to challenge (RFC 7636
// S256), in constant time.
func s256Matches(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// tokenRequest is the JSON body of POST /v1/auth/token (mirrored by
// cmd/internal/wire.AuthTokenRequest).
type tokenRequest struct {
	Code         string `json:"code"`
	CodeVerifier string `json:"code_verifier"`
	RedirectURI  string `json:"redirect_uri"`
}

// tokenResponse is the answer of POST /v1/auth/token (mirrored by
// cmd/internal/wire.AuthTokenResponse).
type tokenResponse struct {
	Token     string `json:"token"`
	SessionID string `json:"session_id"`
	Expires   string `json:"expires"` // RFC 3339
	Role      string `json:"role"`
	UserID    string `json:"user_id"`
	Email     string `json:"email,omitempty"`
	Name      string `json:"name,omitempty"`
}

// maxTokenBody bounds the token request body.
const maxTokenBody = 4 << 10

// decodeTokenRequest reads one JSON object with known fields only and
// checks each field's shape.
func decodeTokenRequest(r io.Reader) (tokenRequest, error) {
	dec := json.NewDecoder(io.LimitReader(r, maxTokenBody+1))
	dec.DisallowUnknownFields()
	var req tokenRequest
	if err := dec.Decode(&req); err != nil {
		return tokenRequest{}, fmt.Errorf("decoding token request: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return tokenRequest{}, errors.New("decoding token request: trailing data")
	}
	// Shapes only: whether the verifier and redirect_uri are right is
	// decided against the stored code, so that a wrong one burns the code.
	switch {
	case req.Code == "" || len(req.Code) > maxLoopbackCode || !isBase64URL(req.Code):
		return tokenRequest{}, errors.New("code: missing or malformed")
	case len(req.CodeVerifier) > maxVerifierLen:
		return tokenRequest{}, fmt.Errorf("code_verifier: longer than %d characters", maxVerifierLen)
	case len(req.RedirectURI) > maxRedirectURI:
		return tokenRequest{}, fmt.Errorf("redirect_uri: longer than %d characters", maxRedirectURI)
	}
	return req, nil
}
