package wire

// PathAuthToken is where a desktop client redeems its one-time loopback
// code (RFC 8252) with its PKCE verifier (RFC 7636) for a session token.
const PathAuthToken = "/v1/auth/token"

// PathLogin is where a desktop client sends the browser to sign in.
const PathLogin = "/login"

// AuthTokenRequest is the body of POST /v1/auth/token.
type AuthTokenRequest struct {
	// Code is the one-time code the server sent to the loopback redirect.
	Code string `json:"code"`
	// CodeVerifier is the PKCE verifier whose S256 challenge started the
	// sign-in.
	CodeVerifier string `json:"code_verifier"`
	// RedirectURI is the loopback redirect URI the sign-in started with.
	RedirectURI string `json:"redirect_uri"`
}

// AuthTokenResponse is the answer to a successful AuthTokenRequest.
type AuthTokenResponse struct {
	// Token is the session token: a bearer secret for the Authorization
	// header. Keep it 0600.
	Token     string `json:"token"`
	SessionID string `json:"session_id"`
	// Expires is when the session ends, RFC 3339.
	Expires string `json:"expires"`
	// Role is "user" or "admin".
	Role   string `json:"role"`
	UserID string `json:"user_id"`
	Email  string `json:"email,omitempty"`
	Name   string `json:"name,omitempty"`
}
