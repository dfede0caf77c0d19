package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/ferryvpn/ferry/profiles"
)

// maxApplyBytes bounds a declarative profile file sent to apply.
const maxApplyBytes = 4 << 20

// mountUsers adds the user and administration API to mux.
func (h *handler) mountUsers(mux *http.ServeMux) {
	mux.HandleFunc("GET "+wire.PathMe, h.authed(h.me))
	mux.HandleFunc("DELETE "+wire.PathMe, h.authed(h.logout))
	mux.HandleFunc("GET "+wire.PathProfiles, h.authed(h.listProfiles))
	mux.HandleFunc("POST "+wire.PathProfiles, h.admin(h.createProfile))
	mux.HandleFunc("GET "+wire.PathProfile, h.authed(h.getProfile))
	mux.HandleFunc("PUT "+wire.PathProfile, h.admin(h.updateProfile))
	mux.HandleFunc("DELETE "+wire.PathProfile, h.admin(h.deleteProfile))
	route(mux, http.MethodPost, wire.PathProfileApply, h.admin(h.applyProfiles))
	mux.HandleFunc("GET "+wire.PathPeers, h.authed(h.listPeers))
	mux.HandleFunc("POST "+wire.PathPeers, h.authed(h.issue))
	mux.HandleFunc("GET "+wire.PathPeer, h.authed(h.getPeer))
	mux.HandleFunc("DELETE "+wire.PathPeer, h.authed(h.revokePeer))
	mux.HandleFunc("DELETE "+wire.PathPeers, h.admin(h.revokePeers))
	route(mux, http.MethodGet, wire.PathUsers, h.admin(h.listUsers))
	route(mux, http.MethodGet, wire.PathUser, h.admin(h.getUser))
	route(mux, http.MethodPost, wire.PathUserDisable, h.admin(h.setDisabled(true)))
	route(mux, http.MethodPost, wire.PathUserEnable, h.admin(h.setDisabled(false)))
	route(mux, http.MethodPost, wire.PathUserResetMFA, h.admin(h.resetMFA))
	route(mux, http.MethodGet, wire.PathSessions, h.admin(h.listSessions))
	route(mux, http.MethodDelete, wire.PathSession, h.admin(h.killSession))
	h.mountPortal(mux)
	if h.users.SignIn != nil {
		for _, p := range authn.FlowPaths() {
			mux.Handle(p, h.users.SignIn)
		}
	}
}

func (h *handler) me(w http.ResponseWriter, r *http.Request, s authn.Session) {
	writeJSON(w, http.StatusOK, wire.Me{
		UserID: s.Identity.UserID, Email: s.Identity.Email, Name: s.Identity.Name, Groups: s.Identity.Groups,
		Role: s.Role, SessionID: s.ID, AuthTime: s.AuthTime, Expires: s.Expires, MFAMethod: s.MFAMethod,
	})
}

// logout ends the caller's own session.
func (h *handler) logout(w http.ResponseWriter, r *http.Request, s authn.Session) {
	if err := h.users.Sessions.Revoke(r.Context(), s.ID, actor(s)); err != nil && !errors.Is(err, authn.ErrSessionInvalid) {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// listProfiles lists the caller's profiles; admins may ask for all.
func (h *handler) listProfiles(w http.ResponseWriter, r *http.Request, s authn.Session) {
	var ps []profiles.Profile
	var err error
	if r.URL.Query().Get("all") == "1" {
		if s.Role != authn.RoleAdmin {
			writeError(w, http.StatusForbidden, "admin role required to list every profile")
			return
		}
		ps, err = h.users.Profiles.List(r.Context())
	} else {
		ps, err = h.users.Profiles.Allowed(r.Context(), s.Identity)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := wire.ProfileList{Profiles: []wire.Profile{}}
	for _, p := range ps {
		out.Profiles = append(out.Profiles, profileToWire(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) getProfile(w http.ResponseWriter, r *http.Request, s authn.Session) {
	p, err := h.users.Profiles.Get(r.Context(), r.PathValue("name"))
	if err == nil && s.Role != authn.RoleAdmin && !h.users.Profiles.Assigned(&p, s.Identity) {
		err = profiles.ErrNotFound // do not reveal profiles that are not yours
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, profileToWire(p))
}

func (h *handler) createProfile(w http.ResponseWriter, r *http.Request, s authn.Session) {
	h.putProfile(w, r, s, "", 0)
}

// updateProfile replaces a profile; If-Match carries the version the
// caller edited, so concurrent edits conflict instead of overwriting.
func (h *handler) updateProfile(w http.ResponseWriter, r *http.Request, s authn.Session) {
	v, err := strconv.ParseUint(strings.Trim(r.Header.Get("If-Match"), `"`), 10, 64)
	if err != nil || v == 0 {
		writeError(w, http.StatusPreconditionRequired, "If-Match: the version of the profile being edited is required")
		return
	}
	h.putProfile(w, r, s, r.PathValue("name"), v)
}

func (h *handler) putProfile(w http.ResponseWriter, r *http.Request, s authn.Session, name string, version uint64) {
	var in wire.Profile
	if !decode(w, r, &in) {
		return
	}
	if name != "" && in.Name != name {
		writeError(w, http.StatusBadRequest, "name: the body names "+strconv.Quote(in.Name)+" but the path "+strconv.Quote(name))
		return
	}
	p, err := profileFromWire(in)
	if err == nil {
		p, err = h.users.Profiles.Put(r.Context(), p, &version, actor(s))
	}
	if err != nil {
		if version == 0 && errors.Is(err, profiles.ErrConflict) {
			err = errors.New("profile " + strconv.Quote(in.Name) + " already exists")
			writeError(w, http.StatusConflict, err.Error())
			return
		}
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, profileToWire(p))
}

func (h *handler) deleteProfile(w http.ResponseWriter, r *http.Request, s authn.Session) {
	if err := h.users.Profiles.Delete(r.Context(), r.PathValue("name"), actor(s)); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (h *handler) applyProfiles(w http.ResponseWriter, r *http.Request, s authn.Session) {
	var in wire.ApplyRequest
	if !decodeLimit(w, r, &in, maxApplyBytes) {
		return
	}
	want, err := profiles.ParseFile([]byte(in.File), h.users.Profiles.Pool())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	plan, err := h.users.Profiles.Apply(r.Context(), want, in.DryRun, actor(s))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	conv := func(cs []profiles.Change) []wire.Change {
		out := []wire.Change{}
		for _, c := range cs {
			out = append(out, wire.Change{Name: c.Name, Fields: c.Fields})
		}
		return out
	}
	writeJSON(w, http.StatusOK, wire.ApplyResponse{Create: conv(plan.Create), Update: conv(plan.Update), Delete: conv(plan.Delete), Diff: plan.String()})
}

// issue gives the caller's device a peer and its configuration.
func (h *handler) issue(w http.ResponseWriter, r *http.Request, s authn.Session) {
	var in wire.IssueRequest
	if !decode(w, r, &in) {
		return
	}
	peer, prof, err := h.users.Profiles.Issue(r.Context(), s, profiles.IssueRequest{
		PublicKey: in.PublicKey, Device: in.Device, Profile: in.Profile, Source: auditSource(r), Node: h.users.NodeID,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.IssueResponse{
		Peer:   peerToWire(peer, h.now()),
		Config: profiles.RenderConfig(peer, prof, h.users.Server, ""),
	})
}

// listPeers lists the caller's peers; admins see every peer, filtered.
func (h *handler) listPeers(w http.ResponseWriter, r *http.Request, s authn.Session) {
	q := r.URL.Query()
	f := profiles.PeerFilter{UserID: q.Get("user"), Profile: q.Get("profile"), Node: q.Get("node")}
	if s.Role == authn.RoleAdmin && f.UserID != "" {
		id, ok := h.resolveUser(w, r, f.UserID)
		if !ok {
			return
		}
		f.UserID = id
	}
	if s.Role != authn.RoleAdmin {
		if f.UserID != "" && f.UserID != s.Identity.UserID {
			writeError(w, http.StatusForbidden, "you may list only your own devices")
			return
		}
		f.UserID = s.Identity.UserID
	}
	ps, err := h.users.Profiles.Peers(r.Context(), f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := wire.PeerList{Peers: []wire.Peer{}}
	now := h.now()
	for _, p := range ps {
		out.Peers = append(out.Peers, peerToWire(p, now))
	}
	writeJSON(w, http.StatusOK, out)
}

// ownPeer loads a peer the caller may see: their own, or any for admins.
// Another user's peer is reported as not found.
func (h *handler) ownPeer(w http.ResponseWriter, r *http.Request, s authn.Session) (profiles.Peer, bool) {
	p, err := h.users.Profiles.Peer(r.Context(), r.PathValue("id"))
	if err == nil && s.Role != authn.RoleAdmin && p.UserID != s.Identity.UserID {
		err = profiles.ErrNotFound
	}
	if err != nil {
		h.fail(w, r, err)
		return p, false
	}
	return p, true
}

func (h *handler) getPeer(w http.ResponseWriter, r *http.Request, s authn.Session) {
	if p, ok := h.ownPeer(w, r, s); ok {
		writeJSON(w, http.StatusOK, peerToWire(p, h.now()))
	}
}

func (h *handler) revokePeer(w http.ResponseWriter, r *http.Request, s authn.Session) {
	p, ok := h.ownPeer(w, r, s)
	if !ok {
		return
	}
	if p.Revoked != nil { // revoking again is a no-op, for scripts
		writeJSON(w, http.StatusOK, wire.RevokeResponse{Revoked: 0})
		return
	}
	var in wire.RevokeRequest
	if r.ContentLength != 0 && !decode(w, r, &in) {
		return
	}
	reason := in.Reason
	if reason == "" {
		reason = "revoked by " + s.Identity.UserID
	}
	if err := h.users.Profiles.RevokePeer(r.Context(), p.ID, reason, actor(s)); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.RevokeResponse{Revoked: 1})
}

// revokePeers revokes every device of a user (?user=) or every peer issued
// under a profile (?profile=).
func (h *handler) revokePeers(w http.ResponseWriter, r *http.Request, s authn.Session) {
	q := r.URL.Query()
	user, prof := q.Get("user"), q.Get("profile")
	if (user == "") == (prof == "") {
		writeError(w, http.StatusBadRequest, "give exactly one of ?user= or ?profile=")
		return
	}
	var in wire.RevokeRequest
	if r.ContentLength != 0 && !decode(w, r, &in) {
		return
	}
	reason := in.Reason
	if reason == "" {
		reason = "revoked by " + s.Identity.UserID
	}
	var n int
	var err error
	if user != "" {
		id, ok := h.resolveUser(w, r, user)
		if !ok {
			return
		}
		n, err = h.users.Profiles.RevokeUser(r.Context(), id, reason, actor(s))
	} else {
		n, err = h.users.Profiles.RevokeProfile(r.Context(), prof, reason, actor(s))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.RevokeResponse{Revoked: n})
}

func (h *handler) userToWire(r *http.Request, u authn.User) (wire.User, error) {
	enrolled, err := h.users.MFA.Enrolled(r.Context(), u.ID)
	return wire.User{ID: u.ID, Email: u.Email, Name: u.Name, Groups: u.Groups, Disabled: u.Disabled,
		MFAEnrolled: enrolled, Created: u.Created, LastLogin: u.LastLogin}, err
}

func (h *handler) listUsers(w http.ResponseWriter, r *http.Request, s authn.Session) {
	us, err := h.users.Users.List(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := wire.UserList{Users: []wire.User{}}
	for _, u := range us {
		wu, err := h.userToWire(r, u)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		out.Users = append(out.Users, wu)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) writeUser(w http.ResponseWriter, r *http.Request, id string) {
	u, ok, err := h.users.Users.Get(r.Context(), id)
	if err == nil && !ok {
		err = profiles.ErrNotFound
	}
	var wu wire.User
	if err == nil {
		wu, err = h.userToWire(r, u)
	}
	if err != nil {
		if errors.Is(err, profiles.ErrNotFound) {
			writeError(w, http.StatusNotFound, "no user "+strconv.Quote(id))
			return
		}
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wu)
}

func (h *handler) getUser(w http.ResponseWriter, r *http.Request, s authn.Session) {
	if id, ok := h.resolveUser(w, r, r.PathValue("id")); ok {
		h.writeUser(w, r, id)
	}
}

// resolveUser maps what an administrator named, a user ID or an email
// address, to a user ID. It answers 404 when no user matches, and 409 when
// several users share the address, and then reports false.
func (h *handler) resolveUser(w http.ResponseWriter, r *http.Request, v string) (string, bool) {
	_, ok, err := h.users.Users.Get(r.Context(), v)
	if err != nil {
		h.fail(w, r, err)
		return "", false
	}
	if ok {
		return v, true
	}
	var ids []string
	if strings.Contains(v, "@") {
		us, err := h.users.Users.List(r.Context())
		if err != nil {
			h.fail(w, r, err)
			return "", false
		}
		for _, u := range us {
			if strings.EqualFold(u.Email, v) {
				ids = append(ids, u.ID)
			}
		}
	}
	switch len(ids) {
	case 0:
		writeError(w, http.StatusNotFound, "no user "+strconv.Quote(v)+" (give a user ID or email address; ferryctl user list shows them)")
		return "", false
	case 1:
		return ids[0], true
	}
	writeError(w, http.StatusConflict, fmt.Sprintf("several users have the email %q: give one of their IDs %s", v, strings.Join(ids, ", ")))
	return "", false
}

// setDisabled disables (ending every session and revoking every device of
// the user) or enables a user.
func (h *handler) setDisabled(disabled bool) sessionHandler {
	return func(w http.ResponseWriter, r *http.Request, s authn.Session) {
		id, ok := h.resolveUser(w, r, r.PathValue("id"))
		if !ok {
			return
		}
		if err := h.users.Users.SetDisabled(r.Context(), id, disabled, actor(s), source(r)); err != nil {
			h.fail(w, r, err)
			return
		}
		if disabled {
			if _, err := h.users.Profiles.RevokeUser(r.Context(), id, "user disabled", actor(s)); err != nil {
				h.fail(w, r, err)
				return
			}
		}
		h.writeUser(w, r, id)
	}
}

func (h *handler) resetMFA(w http.ResponseWriter, r *http.Request, s authn.Session) {
	id, ok := h.resolveUser(w, r, r.PathValue("id"))
	if !ok {
		return
	}
	if err := h.users.MFA.Reset(r.Context(), id, actor(s), source(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeUser(w, r, id)
}

func (h *handler) listSessions(w http.ResponseWriter, r *http.Request, s authn.Session) {
	ss, err := h.users.Sessions.List(r.Context(), r.URL.Query().Get("user"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := wire.SessionList{Sessions: []wire.Session{}}
	for _, x := range ss {
		out.Sessions = append(out.Sessions, sessionToWire(x))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) killSession(w http.ResponseWriter, r *http.Request, s authn.Session) {
	if err := h.users.Sessions.Revoke(r.Context(), r.PathValue("id"), actor(s)); err != nil {
		if errors.Is(err, authn.ErrSessionInvalid) {
			writeError(w, http.StatusNotFound, "no session "+strconv.Quote(r.PathValue("id")))
			return
		}
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}
