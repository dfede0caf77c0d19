package authn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

// What the code pages say when a code is refused: which kind of code, what
// to do next, how many tries are left once few are, and, when locked, until
// when. The counts come from MFA's own records; the pages learn nothing an
// attacker at the form could not count for themselves.

// warnTriesLeft is how few tries left the pages start to warn at.
const warnTriesLeft = 3

// refusedCodePage is the page data for a code page after a refused code,
// and whether this refusal started the lock.
func (f *Flow) refusedCodePage(ctx context.Context, userID, page string, err error) (pageData, bool) {
	var d pageData
	switch page {
	case pageRecovery:
		d = f.recoveryPage(ctx, userID, "That recovery code was not accepted. Check it against the list you saved: each code works once.")
	case pageEnroll:
		d = pageData{Title: "Set up your authenticator", Error: "That code was not accepted. Check that the app shows the code for this account, and enter the code it shows now."}
	default:
		d = pageData{Title: "Enter your code", Error: "That code was not accepted. Enter the code your authenticator app shows now."}
	}
	if errors.Is(err, ErrReplayed) {
		d.Error = "That code was already used. Wait for the app to show the next code (at most 30 seconds), then enter it."
	}
	if lo, lerr := f.mfa.Lockout(ctx, userID); lerr == nil {
		if !lo.LockedUntil.IsZero() {
			return d, true
		}
		if left := MaxFailures - lo.Failures; left > 0 && left <= warnTriesLeft {
			d.Error += fmt.Sprintf(" %s left before sign-in is locked for %s.", plural(left, "try", "tries"), duration(LockoutDuration))
		}
	}
	return d, false
}

// recoveryPage is the recovery code page, saying how many codes remain.
func (f *Flow) recoveryPage(ctx context.Context, userID, msg string) pageData {
	d := pageData{Title: "Use a recovery code", Error: msg, RecoveryLeft: -1}
	if n, err := f.mfa.RecoveryRemaining(ctx, userID); err == nil {
		d.RecoveryLeft = n
	}
	return d
}

// renderLocked says until when sign-in is locked and what to do.
func (f *Flow) renderLocked(ctx context.Context, w http.ResponseWriter, userID string) {
	d := pageData{Title: "Sign-in locked", Message: "Too many wrong codes, so sign-in to this account is locked for a while. Wait, then sign in again from the start; or ask an administrator to unlock it now."}
	if lo, err := f.mfa.Lockout(ctx, userID); err == nil && !lo.LockedUntil.IsZero() {
		d.LockedUntil = lo.LockedUntil
		d.Message = "Too many wrong codes, so sign-in to this account is locked until"
	}
	f.render(w, http.StatusTooManyRequests, pageError, d)
}

// refuseOrLeadOn is refuse for a sign-in link that is used up, unknown
// or expired: recorded the same way, but a browser that is signed in
// already is told so and led on instead of "Sign-in failed" (Back after
// signing in, or a link opened twice).
func (f *Flow) refuseOrLeadOn(ctx context.Context, w http.ResponseWriter, r *http.Request, typ audit.Type, action string, src Source, err error) {
	f.log.Info("sign-in refused", "action", action, "reason", signinReason(err), "src", src.Addr, "err", err)
	_ = f.event(ctx, typ, action, nil, src, audit.Failure, err, nil)
	if f.leadOn(ctx, w, r) {
		return
	}
	f.renderError(w, http.StatusBadRequest, "")
}

// leadOn answers a used-up sign-in step for a browser that holds a valid
// session: it names the account and leads to the portal. It reports
// whether it answered.
func (f *Flow) leadOn(ctx context.Context, w http.ResponseWriter, r *http.Request) bool {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return false
	}
	s, err := f.sessions.Validate(ctx, SessionToken(c.Value))
	if err != nil {
		return false
	}
	who := displayName(&s.Identity)
	f.render(w, http.StatusOK, pageError, pageData{Title: "You are signed in", Who: who,
		Message: "This sign-in link was already used or has expired, but you are signed in as " + who + "."})
	return true
}

// clientName says which client a sign-in is for, on its code pages.
func clientName(rec *signinRecord) string {
	switch {
	case rec.Desktop == nil:
		return "this browser"
	case rec.Admin:
		return "an administrator session of ferryctl on your computer"
	default:
		return "the ferry app on your computer"
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// duration says d in whole minutes or hours.
func duration(d time.Duration) string {
	if d >= time.Hour && d%time.Hour == 0 {
		return plural(int(d/time.Hour), "hour", "hours")
	}
	return plural(int(d/time.Minute), "minute", "minutes")
}
