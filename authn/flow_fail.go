package authn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/ferryvpn/ferry/audit"
)

// Failure reasons of a sign-in, as they appear in audit events' Reason.
// The values are stable: SIEM rules match on them. Clients never see them.
const (
	frBadRequest       = "bad request"               // malformed /login, /callback or token request
	frRedirectURI      = "redirect uri not loopback" // desktop redirect_uri not http://127.0.0.1|[::1]:PORT/callback
	frStateMissing     = "state missing"
	frStateUnknown     = "state unknown"    // no such pending login (forged, or swept after expiry)
	frStateReplayed    = "state replayed"   // the pending login was already used
	frStateExpired     = "state expired"    // the pending login is older than loginTTL
	frBrowserMismatch  = "browser mismatch" // callback from another browser than /login's
	frIdPError         = "idp error"        // the IdP redirected back with an error
	frIdPUnavailable   = "idp unavailable"  // discovery failed
	frCodeExchange     = "code exchange failed"
	frIdPPKCERejected  = "idp pkce rejected" // the IdP refused our code_verifier
	frNoIDToken        = "id token missing"
	frTokenSignature   = "id token signature invalid"
	frTokenIssuer      = "id token issuer mismatch"
	frTokenAudience    = "id token audience mismatch"
	frTokenExpired     = "id token expired"
	frTokenMalformed   = "id token malformed"
	frTokenInvalid     = "id token invalid"
	frNonceMismatch    = "nonce mismatch"
	frClaims           = "claims invalid"
	frDomain           = "email domain not allowed"
	frEmailUnverified  = "email unverified"
	frGroup            = "group not allowed"
	frUserDisabled     = "user disabled"
	frStepMissing      = "mfa step missing" // /mfa without a login past OIDC
	frStepExpired      = "mfa step expired"
	frCSRF             = "csrf mismatch"
	frMFA              = "mfa failed" // detail names the MFA error
	frCodeMissing      = "code missing"
	frCodeUnknown      = "code unknown"
	frCodeReplayed     = "code replayed"
	frCodeExpired      = "code expired"
	frPKCEMismatch     = "pkce mismatch" // loopback redeem with a wrong or missing verifier
	frRedirectMismatch = "redirect uri mismatch"
	frNotAdmin         = "not admin"
	frInternal         = "internal error"
)

// signinError is a refused sign-in step: a reason for the audit log and
// the cause. Handlers turn it into a generic message for the client.
type signinError struct {
	reason string
	err    error
}

func (e *signinError) Error() string {
	if e.err == nil {
		return "authn: sign-in refused: " + e.reason
	}
	return "authn: sign-in refused: " + e.reason + ": " + e.err.Error()
}

func (e *signinError) Unwrap() error { return e.err }

func signinFail(reason string, err error) *signinError { return &signinError{reason: reason, err: err} }

// signinReason returns the audit reason of err.
func signinReason(err error) string {
	var se *signinError
	if errors.As(err, &se) {
		return se.reason
	}
	return frInternal
}

// signinHash is the hex SHA-256 under which one-time values (state, browser
// binding, nonce, CSRF token, loopback code) are stored: a copy of the
// store reveals none of them.
func signinHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// event records one sign-in audit event. A sign-in must not go on
// unrecorded, so a recorder failure is returned.
func (f *Flow) event(ctx context.Context, typ audit.Type, action string, id *Identity, src Source, outcome audit.Outcome, err error, details map[string]string) error {
	e := audit.Event{
		Type:    typ,
		Action:  action,
		Source:  audit.Source{Addr: src.Addr, Port: src.Port, UserAgent: src.UserAgent},
		Outcome: outcome,
		Details: details,
	}
	if id != nil {
		e.Actor = audit.Actor{UserID: id.UserID, Email: id.Email, Groups: append([]string(nil), id.Groups...)}
		e.Target = audit.Target{User: id.UserID}
	}
	if err != nil {
		e.Reason = signinReason(err)
		if e.Details == nil {
			e.Details = make(map[string]string)
		}
		e.Details["error"] = errorDetail(err)
	}
	if rerr := f.rec.Record(ctx, e); rerr != nil {
		f.log.Error("recording sign-in audit event", "type", string(typ), "action", action, "err", rerr)
		return rerr
	}
	return nil
}

// errorDetail bounds an error's text for an audit record.
func errorDetail(err error) string {
	const max = 512
	s := err.Error()
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
