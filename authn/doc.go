// Package authn proves who a person is before ferry gives them anything:
// OpenID Connect sign-in with the company's identity provider (go-oidc and
// x/oauth2, authorization code flow with PKCE), a TOTP second factor
// (pquerna/otp) whose codes are accepted once only and whose failures lock
// an account cluster-wide, and sessions whose tokens are stored only as
// hashes.
//
// Every attempt, successful or not, becomes an audit event with its exact
// reason; clients are told little.
//
// All state lives in the cluster store, so any node behind the load balancer
// can serve any step of a sign-in. The package serves the OIDC redirect,
// callback and TOTP pages itself, since OIDC is HTTP by nature; the rest of
// the HTTP API lives in cmd/internal.
package authn
