package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
)

// csp allows the console's own stylesheet and script files and nothing
// inline: no script runs that the server did not serve as a file. Forms
// post only to this origin, and no page may frame the console.
const csp = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

// stepUpCookie records the time of the administrator's last fresh TOTP
// code, signed and bound to the session. It is a __Host- cookie: Secure,
// no Domain, Path /, so no other host or path can set or read it.
const stepUpCookie = "__Host-ferry_stepup"

// maxFormBytes bounds a console form; a profile file is the largest.
const maxFormBytes = 4 << 20

// call is one request of a signed-in administrator.
type call struct {
	s   authn.Session
	tok string // the session token: the CSRF key
}

// actor is who the administrator is, for audit events, as on the API.
func (k call) actor() audit.Actor {
	s := k.s
	return audit.Actor{UserID: s.Identity.UserID, Email: s.Identity.Email, Groups: s.Identity.Groups, Session: s.ID, Role: s.Role}
}

// pageHandler serves a console page for an administrator.
type pageHandler func(w http.ResponseWriter, r *http.Request, k call)

// admin sets the console's headers, then serves next only to a valid
// session of an administrator, checked on this request (a demoted or
// signed-out administrator loses the console at once). Without a session
// the browser goes to sign in; anyone else gets 403.
func (c *Console) admin(next pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// Signed out: sign in, then come back to this page (a form's
		// POST comes back to the console's first page).
		back := "/admin"
		if r.Method == http.MethodGet {
			back = r.URL.RequestURI()
		}
		ck, err := r.Cookie(authn.SessionCookie)
		if err != nil {
			http.Redirect(w, r, authn.LoginURL(back), http.StatusSeeOther)
			return
		}
		s, err := c.cfg.Sessions.Validate(r.Context(), authn.SessionToken(ck.Value))
		switch {
		case errors.Is(err, authn.ErrSessionInvalid):
			http.Redirect(w, r, authn.LoginURL(back), http.StatusSeeOther)
			return
		case err != nil:
			c.cfg.Logger.Error("console: validating session", "err", err)
			c.errorPage(w, http.StatusInternalServerError, "Something went wrong", "The server could not check your session. Try again in a moment.")
			return
		case s.Role != authn.RoleAdmin:
			c.errorPage(w, http.StatusForbidden, "Administrators only", "This console is for ferry's administrators. Your own devices are on the portal.")
			return
		}
		next(w, r, call{s: s, tok: ck.Value})
	}
}

// formToken binds the console's forms to the session: a page of another
// site cannot know it. It differs from the portal's token.
func formToken(tok string) string {
	m := hmac.New(sha256.New, []byte(tok))
	m.Write([]byte("ferry admin console form"))
	return hex.EncodeToString(m.Sum(nil))
}

// sameOrigin reports whether a state-changing browser request comes from
// a page of this site: its Origin (or, from browsers that send none, its
// Referer) names this host. A request with neither is refused.
func sameOrigin(r *http.Request) bool {
	from := r.Header.Get("Origin")
	if from == "" || from == "null" {
		from = r.Header.Get("Referer")
	}
	if from == "" || from == "null" {
		return false
	}
	u, err := url.Parse(from)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) && (u.Scheme == "https" || u.Scheme == "http")
}

// checkForm parses a POSTed form and reports whether it comes from this
// site's console page of this session; if not it has answered 403.
func (c *Console) checkForm(w http.ResponseWriter, r *http.Request, k call) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.errorPage(w, http.StatusBadRequest, "The form could not be read", "Nothing was changed. Go back and try again.")
		return false
	}
	if !sameOrigin(r) || !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(formToken(k.tok))) {
		c.errorPage(w, http.StatusForbidden, "The form had expired", "Nothing was changed: the form did not come from this console's page, or it had expired. Go back, reload the page and try again.")
		return false
	}
	return true
}

// stepUpMAC signs a step-up time for one session.
func (c *Console) stepUpMAC(sessionID string, unix int64) string {
	m := hmac.New(sha256.New, c.cfg.StepUpKey)
	m.Write([]byte("ferry console step-up\x00" + sessionID + "\x00" + strconv.FormatInt(unix, 10)))
	return hex.EncodeToString(m.Sum(nil))
}

// lastCode is when the administrator last proved a fresh TOTP code in
// this session: at sign-in, or at a step-up (the signed cookie).
func (c *Console) lastCode(r *http.Request, s authn.Session) time.Time {
	var last time.Time
	if s.MFAMethod == authn.MethodTOTP {
		last = s.AuthTime
	}
	if ck, err := r.Cookie(stepUpCookie); err == nil {
		ts, mac, ok := strings.Cut(ck.Value, ".")
		unix, err := strconv.ParseInt(ts, 10, 64)
		if ok && err == nil && hmac.Equal([]byte(mac), []byte(c.stepUpMAC(s.ID, unix))) {
			if t := time.Unix(unix, 0); t.After(last) {
				last = t
			}
		}
	}
	return last
}

// fresh reports whether the session's last TOTP code is recent enough
// for an action that changes access.
func (c *Console) fresh(r *http.Request, s authn.Session) bool {
	last := c.lastCode(r, s)
	age := c.cfg.Now().Sub(last)
	return !last.IsZero() && age >= -time.Minute && age < c.cfg.StepUpWindow
}

// stepUp checks the form's TOTP code (with the replay guard and lockout
// of every sign-in; the attempt is an auth.mfa audit event) and, when it
// is accepted, remembers the time in the step-up cookie. It returns what
// to tell the administrator when it is not.
func (c *Console) stepUp(w http.ResponseWriter, r *http.Request, k call) (problem string) {
	code := strings.TrimSpace(r.PostForm.Get("totp"))
	if code == "" {
		return "This change needs a fresh code from your authenticator app."
	}
	err := c.cfg.MFA.Verify(r.Context(), k.s.Identity, code, source(r))
	switch {
	case err == nil:
	case errors.Is(err, authn.ErrLocked):
		return "Too many wrong codes: your second factor is locked for now. Nothing was changed."
	case errors.Is(err, authn.ErrReplayed):
		return "That code was already used. Wait for the next one. Nothing was changed."
	case errors.Is(err, authn.ErrNotEnrolled):
		return "You have no authenticator enrolled, so this change cannot be confirmed."
	case errors.Is(err, authn.ErrBadCode), errors.Is(err, authn.ErrInvalidInput):
		return "That code is not right. Nothing was changed."
	default:
		c.cfg.Logger.Error("console: verifying step-up code", "err", err)
		return "The code could not be checked just now. Nothing was changed."
	}
	now := c.cfg.Now().Unix()
	http.SetCookie(w, &http.Cookie{Name: stepUpCookie, Value: strconv.FormatInt(now, 10) + "." + c.stepUpMAC(k.s.ID, now),
		Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: int(c.cfg.StepUpWindow / time.Second)})
	return ""
}

// source is where a request came from, for audit events.
func source(r *http.Request) authn.Source {
	host, port, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	p, _ := strconv.Atoi(port)
	return authn.Source{Addr: host, Port: p, UserAgent: r.UserAgent()}
}
