package authn

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/ferryvpn/ferry/audit"
)

// clientReason says why a sign-in was refused in words the person can act
// on: what went wrong and what to do. It never carries what the identity
// provider or the server's configuration hold (secrets, token contents,
// error descriptions); the audit log and the server's log have the
// details.
func clientReason(err error) string {
	switch signinReason(err) {
	case frIdPError:
		return "the identity provider refused the sign-in; try again, and ask your administrator if it keeps failing"
	case frCodeExchange, frIdPPKCERejected, frIdPUnavailable:
		return "ferry could not complete the sign-in with the identity provider (your administrator should check ferry's client registration and secret there); try again later"
	case frNoIDToken, frTokenSignature, frTokenIssuer, frTokenAudience, frTokenExpired, frTokenMalformed, frTokenInvalid, frNonceMismatch, frClaims:
		return "the identity provider's answer did not pass ferry's checks; ask your administrator (the server's log says why)"
	case frGroup:
		return "your account is not in a group allowed to use this service; ask your administrator for access"
	case frDomain:
		return "your email domain is not allowed to use this service"
	case frEmailUnverified:
		return "your email address is not verified at the identity provider; verify it there and sign in again"
	case frUserDisabled:
		return "your account is disabled in ferry; ask your administrator"
	case frNotAdmin:
		return "your account is not an administrator, and ferryctl needs one; ask your administrator for the admin role (the portal and the ferry app work with any account)"
	case frStateExpired:
		return "the sign-in took too long; start again"
	}
	return "the sign-in was refused; start again"
}

// loopbackErrorURL is the desktop client's redirect for a refused
// sign-in (RFC 6749 §4.1.2.1): error, a description for the person, and
// the client's state, so that the client stops waiting and says why.
func loopbackErrorURL(d *desktopRequest, reason string) string {
	v := url.Values{}
	v.Set("error", "access_denied")
	v.Set("error_description", reason)
	v.Set(paramState, d.State)
	return d.RedirectURI + "?" + v.Encode()
}

// refuseTold is refuse for a step whose sign-in record is known and
// belongs to this browser: the audit log gets everything as with refuse,
// a desktop client is sent the reason on its loopback address (instead of
// waiting for an answer that never comes), and a browser sign-in shows
// the reason and what to do.
func (f *Flow) refuseTold(ctx context.Context, w http.ResponseWriter, r *http.Request, d *desktopRequest, typ audit.Type, action string, id *Identity, src Source, err error) {
	reason := clientReason(err)
	if d == nil {
		f.log.Info("sign-in refused", "action", action, "reason", signinReason(err), "src", src.Addr, "err", err)
		_ = f.event(ctx, typ, action, id, src, audit.Failure, err, nil)
		status := http.StatusBadRequest
		if errors.Is(err, ErrForbidden) || errors.Is(err, ErrUserDisabled) {
			status = http.StatusForbidden
		}
		f.renderError(w, status, "Sign-in failed: "+reason+".")
		return
	}
	f.log.Info("sign-in refused", "action", action, "reason", signinReason(err), "src", src.Addr, "err", err, "client", "desktop")
	_ = f.event(ctx, typ, action, id, src, audit.Failure, err, nil)
	http.Redirect(w, r, loopbackErrorURL(d, reason), http.StatusSeeOther)
}
