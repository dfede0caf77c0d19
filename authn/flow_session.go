package authn

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

// csrfLogout is the purpose of the sign-out form's CSRF token, derived
// from the session token in the HttpOnly cookie.
const csrfLogout = "logout"

// browserSession returns the session of the request's session cookie.
func (f *Flow) browserSession(r *http.Request) (SessionToken, Session, error) {
	raw := cookieValue(r, SessionCookie)
	if raw == "" {
		return "", Session{}, ErrSessionInvalid
	}
	tok := SessionToken(raw)
	sess, err := f.sessions.Validate(r.Context(), tok)
	return tok, sess, err
}

// handleSignedIn shows who is signed in (the portal will grow from here).
func (f *Flow) handleSignedIn(w http.ResponseWriter, r *http.Request) {
	tok, sess, err := f.browserSession(r)
	switch {
	case errors.Is(err, ErrSessionInvalid):
		clearCookie(w, SessionCookie)
		http.Redirect(w, r, PathLogin, http.StatusSeeOther)
		return
	case err != nil:
		f.internalError(w, r, err)
		return
	}
	f.render(w, http.StatusOK, pageSignedIn, pageData{
		Title: "Signed in", Session: &sess, Who: displayName(&sess.Identity), Expires: sess.Expires.UTC().Format(time.RFC3339),
		CSRF: csrfToken(csrfLogout, tok.Reveal()),
	})
}

// handleLogoutPage asks to confirm signing out: a GET changes nothing.
func (f *Flow) handleLogoutPage(w http.ResponseWriter, r *http.Request) {
	tok, _, err := f.browserSession(r)
	switch {
	case errors.Is(err, ErrSessionInvalid):
		clearCookie(w, SessionCookie)
		f.render(w, http.StatusOK, pageSignedOut, pageData{Title: "Signed out"})
		return
	case err != nil:
		f.internalError(w, r, err)
		return
	}
	f.render(w, http.StatusOK, pageLogout, pageData{Title: "Sign out", CSRF: csrfToken(csrfLogout, tok.Reveal())})
}

// handleLogout revokes the browser's session and sends the browser to
// GET /logout, which then says it is signed out.
func (f *Flow) handleLogout(w http.ResponseWriter, r *http.Request) {
	src := f.source(r)
	tok, sess, err := f.browserSession(r)
	switch {
	case errors.Is(err, ErrSessionInvalid):
		clearCookie(w, SessionCookie)
		http.Redirect(w, r, PathLogout, http.StatusSeeOther)
		return
	case err != nil:
		f.internalError(w, r, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(csrfToken(csrfLogout, tok.Reveal()))) != 1 {
		f.refuse(r.Context(), w, audit.TypeLogout, ActionLogout, &sess.Identity, src, signinFail(frCSRF, err))
		return
	}
	actor := audit.Actor{
		UserID: sess.Identity.UserID, Email: sess.Identity.Email, Groups: append([]string(nil), sess.Identity.Groups...),
		Session: sess.ID, Role: sess.Role,
	}
	if err := f.sessions.Revoke(r.Context(), sess.ID, actor); err != nil && !errors.Is(err, ErrUnknownSession) {
		f.internalError(w, r, err)
		return
	}
	clearCookie(w, SessionCookie)
	// GET /logout says so: Back and Reload never post the form again.
	http.Redirect(w, r, PathLogout, http.StatusSeeOther)
}
