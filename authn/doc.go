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
// # Who a user is
//
// Users are keyed by the identity provider's issuer and subject together:
// the user ID is UserKey(issuer, subject) = issuer + "#" + subject, e.g.
// "https://idp.example.com/oauth2/default#00u1abcd" (the subject is the
// configured user ID claim, "sub" by default; it must be stable and never
// reassigned, which email addresses are not). An issuer has no fragment,
// so the first '#' splits a key (SplitUserKey). Every source of identity
// reaches the same record through this key: OIDC sign-in, refresh-token
// revalidation, and SCIM provisioning, back-channel logout and Shared
// Signals events that name the same subject. Records stored before keys
// named the issuer (ID = the bare subject) stay readable and are claimed,
// keeping their ID, by the first sign-in with their subject.
//
// The key is for machines. People are shown the email and name
// (Identity.Display, User.Display), never the opaque subject. An email is
// only a claim: profiles assign by it only when the provider said
// email_verified and the operator opted in (profiles).
//
// All state lives in the cluster store, so any node behind the load balancer
// can serve any step of a sign-in. The package serves the OIDC redirect,
// callback and TOTP pages itself, since OIDC is HTTP by nature; the rest of
// the HTTP API lives in cmd/internal.
package authn
