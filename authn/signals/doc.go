// Package signals receives what an identity provider tells ferry on its
// own initiative, and turns each message into the same domain operations
// an administrator's action would take:
//
//   - OpenID Connect Back-Channel Logout 1.0: a logout token POSTed by the
//     configured issuer (the sign-in provider) to /oidc/backchannel-logout.
//     It is verified like an ID token (signature by the issuer's JWKS,
//     iss, aud = ferry's client ID, exp) and must carry iat, jti, the
//     back-channel-logout event, sub and/or sid, and no nonce. It ends the
//     matching sessions (all of the user's for sub; the IdP session's for
//     sid alone) and revokes the user's devices.
//   - Shared Signals (OpenID SSF 1.0) push delivery, RFC 8935: Security
//     Event Tokens (RFC 8417) POSTed by the configured transmitter to
//     /ssf/events, verified against the transmitter's JWKS (iss, aud,
//     signature, iat freshness; typ secevent+jwt when present). CAEP
//     session-revoked and credential-change end the subject's sessions and
//     revoke their devices; RISC account-disabled and account-purged
//     disable the user (profiles.Store.SetUserDisabled: sessions and
//     devices end in one operation). Other events are acknowledged and
//     recorded as ignored.
//
// A token is accepted once: its (issuer, jti) is claimed in the replicated
// store by a compare-and-swap, so a replay to any node is refused. Claims
// outlive the tokens' acceptance window (MaxAge) and are swept after it,
// so the guard stays bounded.
//
// Every token, acted on or refused, is an audit event (admin, action
// idp.backchannel_logout or idp.set) naming the outcome and, when refused,
// exactly why; the sender is told little (RFC 8935's error codes, the
// back-channel logout spec's 400).
//
// Subjects are mapped to ferry users by (issuer, sub) (authn.UserKey):
// logout tokens by their iss and sub; SETs by an iss_sub subject
// identifier (RFC 9493), or an opaque one read as a subject of
// Config.SubjectIssuer, or an email address held by exactly one user whose
// provider verified it.
//
// Not done: SSF poll delivery (RFC 8936), stream management with the
// transmitter (the stream is configured at the transmitter), and
// front-channel logout.
package signals
