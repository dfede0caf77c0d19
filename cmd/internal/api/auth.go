package api

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// Users configures the user and administration API. Without it the handler
// serves only health, readiness and joining.
type Users struct {
	Sessions *authn.Sessions
	Users    *authn.Users
	MFA      *authn.MFA
	Profiles *profiles.Store
	// Server is what issued configurations name: the cluster's WireGuard
	// public key and the load balancer's endpoint.
	Server profiles.Server
	// SignIn serves the browser and desktop sign-in pages (authn.Flow),
	// mounted at the paths it owns; optional.
	SignIn http.Handler
	// NodeID names this node on issued peers.
	NodeID string
}

func (u *Users) validate() error {
	if u.Sessions == nil || u.Users == nil || u.MFA == nil || u.Profiles == nil {
		return errors.New("api config: users: sessions, users, mfa and profiles are required")
	}
	return nil
}

// sessionHandler is a handler that runs with the caller's session. It
// returns its error for fail to translate (errors.go).
type sessionHandler func(w http.ResponseWriter, r *http.Request, s authn.Session) error

// authed authenticates the caller by bearer token only. The browser's
// session cookie is not accepted here: a browser attaches it to any
// request, including a form another site posts (CSRF), whereas a bearer
// token must be set by code that holds it. The portal, which does use the
// cookie, checks a CSRF token and the Origin on every change. authed says
// little on failure: the sign-in flow and the session store audit the
// details.
func (h *handler) authed(next sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := sessionToken(r)
		if tok == "" {
			h.refuse(w, r, http.StatusUnauthorized, "not signed in", nil)
			writeError(w, http.StatusUnauthorized, "not signed in")
			return
		}
		s, err := h.users.Sessions.Validate(r.Context(), authn.SessionToken(tok))
		if err == nil {
			err = next(w, r, s)
		}
		if err != nil {
			h.fail(w, r, err)
		}
	}
}

// admin is authed plus the admin role.
func (h *handler) admin(next sessionHandler) http.HandlerFunc {
	return h.authed(func(w http.ResponseWriter, r *http.Request, s authn.Session) error {
		if s.Role != authn.RoleAdmin {
			return errorf(http.StatusForbidden, "admin role required")
		}
		return next(w, withAdminProof(r), s)
	})
}

// sessionToken is the caller's session token on the /v1 API: the bearer
// token, never the cookie (see authed).
func sessionToken(r *http.Request) string { return bearer(r) }

func bearer(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

// actor is who the session is, for audit events.
func actor(s authn.Session) audit.Actor {
	return audit.Actor{UserID: s.Identity.UserID, Email: s.Identity.Email, Groups: s.Identity.Groups, Session: s.ID, Role: s.Role}
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

func auditSource(r *http.Request) audit.Source {
	s := source(r)
	return audit.Source{Addr: s.Addr, Port: s.Port, UserAgent: s.UserAgent}
}
