package api

import (
	"errors"
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
	route(mux, http.MethodPost, wire.PathUserUnlock, h.admin(h.unlockUser))
	route(mux, http.MethodPost, wire.PathPeerClear, h.admin(h.clearRevocation))
	route(mux, http.MethodGet, wire.PathSessions, h.admin(h.listSessions))
	route(mux, http.MethodDelete, wire.PathSession, h.admin(h.killSession))
	h.mountPortal(mux)
	if h.users.SignIn != nil {
		for _, p := range authn.FlowPaths() {
			mux.Handle(p, h.users.SignIn)
		}
	}
}

func (h *handler) me(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	writeJSON(w, http.StatusOK, wire.Me{
		UserID: s.Identity.UserID, Email: s.Identity.Email, Name: s.Identity.Name, Groups: s.Identity.Groups,
		Role: s.Role, SessionID: s.ID, AuthTime: s.AuthTime, Expires: s.Expires, MFAMethod: s.MFAMethod,
	})
	return nil
}

// logout ends the caller's own session.
func (h *handler) logout(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	if err := h.users.Sessions.Revoke(r.Context(), s.ID, actor(s)); err != nil && !errors.Is(err, authn.ErrSessionInvalid) && !errors.Is(err, authn.ErrUnknownSession) {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// listProfiles lists the caller's profiles; admins may ask for all.
func (h *handler) listProfiles(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	var ps []profiles.Profile
	var err error
	if r.URL.Query().Get("all") == "1" {
		if s.Role != authn.RoleAdmin {
			return errorf(http.StatusForbidden, "admin role required to list every profile")
		}
		ps, err = h.users.Profiles.List(r.Context())
	} else {
		ps, err = h.users.Profiles.Allowed(r.Context(), s.Identity)
	}
	if err != nil {
		return err
	}
	out := wire.ProfileList{Profiles: []wire.Profile{}}
	for _, p := range ps {
		out.Profiles = append(out.Profiles, profileToWire(p))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *handler) getProfile(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	p, err := h.users.Profiles.Get(r.Context(), r.PathValue("name"))
	if err == nil && s.Role != authn.RoleAdmin && !h.users.Profiles.Assigned(&p, s.Identity) {
		err = profiles.ErrNotFound // do not reveal profiles that are not yours
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, profileToWire(p))
	return nil
}

func (h *handler) createProfile(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	return h.putProfile(w, r, s, "", 0)
}

// updateProfile replaces a profile; If-Match carries the version the
// caller edited, so concurrent edits conflict instead of overwriting.
func (h *handler) updateProfile(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	v, err := strconv.ParseUint(strings.Trim(r.Header.Get("If-Match"), `"`), 10, 64)
	if err != nil || v == 0 {
		return errorf(http.StatusPreconditionRequired, "If-Match: the version of the profile being edited is required")
	}
	return h.putProfile(w, r, s, r.PathValue("name"), v)
}

func (h *handler) putProfile(w http.ResponseWriter, r *http.Request, s authn.Session, name string, version uint64) error {
	var in wire.Profile
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if name != "" && in.Name != name {
		return errorf(http.StatusBadRequest, "name: the body names %q but the path %q", in.Name, name)
	}
	p, err := profileFromWire(in)
	if err == nil {
		p, err = h.users.Profiles.Put(r.Context(), p, &version, actor(s))
	}
	if err != nil {
		if version == 0 && errors.Is(err, profiles.ErrConflict) {
			return errorf(http.StatusConflict, "profile %q already exists", in.Name)
		}
		return err
	}
	writeJSON(w, http.StatusOK, profileToWire(p))
	return nil
}

func (h *handler) deleteProfile(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	if err := h.users.Profiles.Delete(r.Context(), r.PathValue("name"), actor(s)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (h *handler) applyProfiles(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	var in wire.ApplyRequest
	if err := decodeLimit(w, r, &in, maxApplyBytes); err != nil {
		return err
	}
	want, err := profiles.ParseFile([]byte(in.File), h.users.Profiles.Pool())
	if err != nil {
		return err
	}
	plan, err := h.users.Profiles.Apply(r.Context(), want, in.DryRun, actor(s))
	if err != nil {
		return err
	}
	conv := func(cs []profiles.Change) []wire.Change {
		out := []wire.Change{}
		for _, c := range cs {
			out = append(out, wire.Change{Name: c.Name, Fields: c.Fields})
		}
		return out
	}
	writeJSON(w, http.StatusOK, wire.ApplyResponse{Create: conv(plan.Create), Update: conv(plan.Update), Delete: conv(plan.Delete), Diff: plan.String()})
	return nil
}

// issue gives the caller's device a peer and its configuration.
func (h *handler) issue(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	var in wire.IssueRequest
	if err := decode(w, r, &in); err != nil {
		return err
	}
	peer, prof, err := h.users.Profiles.Issue(r.Context(), s, profiles.IssueRequest{
		PublicKey: in.PublicKey, Device: in.Device, Profile: in.Profile, Source: auditSource(r), Node: h.users.NodeID,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.IssueResponse{
		Peer:   peerToWire(peer, h.now()),
		Config: profiles.RenderConfig(peer, prof, h.users.Server, ""),
	})
	return nil
}

// listPeers lists the caller's peers; admins see every peer, filtered.
func (h *handler) listPeers(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	q := r.URL.Query()
	f := profiles.PeerFilter{UserID: q.Get("user"), Profile: q.Get("profile"), Node: q.Get("node")}
	if s.Role == authn.RoleAdmin && f.UserID != "" {
		u, err := h.users.Users.Resolve(r.Context(), f.UserID)
		if err != nil {
			return err
		}
		f.UserID = u.ID
	}
	if s.Role != authn.RoleAdmin {
		if f.UserID != "" && f.UserID != s.Identity.UserID && !strings.EqualFold(f.UserID, s.Identity.Email) {
			return errorf(http.StatusForbidden, "you may list only your own devices")
		}
		f.UserID = s.Identity.UserID
	}
	ps, err := h.users.Profiles.Peers(r.Context(), f)
	if err != nil {
		return err
	}
	out := wire.PeerList{Peers: []wire.Peer{}}
	now := h.now()
	for _, p := range ps {
		out.Peers = append(out.Peers, peerToWire(p, now))
	}
	if q.Get("counters") == "1" && s.Role == authn.RoleAdmin && h.counters != nil {
		var byKey map[string][]wire.PeerCounters
		out.Nodes, byKey = h.counters(withAdminProof(r).Context())
		for i := range out.Peers {
			out.Peers[i].Counters = byKey[out.Peers[i].PublicKey]
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// ownPeer loads a peer the caller may see: their own, or any for admins.
// Another user's peer is reported as not found.
func (h *handler) ownPeer(r *http.Request, s authn.Session) (profiles.Peer, error) {
	p, err := h.users.Profiles.Peer(r.Context(), r.PathValue("id"))
	if err == nil && s.Role != authn.RoleAdmin && p.UserID != s.Identity.UserID {
		err = profiles.ErrNotFound
	}
	return p, err
}

func (h *handler) getPeer(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	p, err := h.ownPeer(r, s)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, peerToWire(p, h.now()))
	return nil
}

func (h *handler) revokePeer(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	p, err := h.ownPeer(r, s)
	if err != nil {
		return err
	}
	if p.Revoked != nil { // revoking again is a no-op, for scripts
		writeJSON(w, http.StatusOK, wire.RevokeResponse{Revoked: 0})
		return nil
	}
	var in wire.RevokeRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &in); err != nil {
			return err
		}
	}
	reason := in.Reason
	if reason == "" {
		reason = "revoked by " + s.Identity.Display()
	}
	if err := h.users.Profiles.RevokePeer(r.Context(), p.ID, reason, actor(s)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.RevokeResponse{Revoked: 1})
	return nil
}

// revokePeers revokes every device of a user (?user=, an ID or an email
// address) or every peer issued under a profile (?profile=).
func (h *handler) revokePeers(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	q := r.URL.Query()
	user, prof := q.Get("user"), q.Get("profile")
	if (user == "") == (prof == "") {
		return errorf(http.StatusBadRequest, "give exactly one of ?user= or ?profile=")
	}
	var in wire.RevokeRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &in); err != nil {
			return err
		}
	}
	reason := in.Reason
	if reason == "" {
		reason = "revoked by " + s.Identity.Display()
	}
	var n int
	if user != "" {
		u, err := h.users.Users.Resolve(r.Context(), user)
		if err != nil {
			return err
		}
		if n, err = h.users.Profiles.RevokeUser(r.Context(), u.ID, reason, actor(s)); err != nil {
			return err
		}
	} else {
		var err error
		if n, err = h.users.Profiles.RevokeProfile(r.Context(), prof, reason, actor(s)); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, wire.RevokeResponse{Revoked: n})
	return nil
}

func (h *handler) userToWire(r *http.Request, u authn.User) (wire.User, error) {
	enrolled, err := h.users.MFA.Enrolled(r.Context(), u.ID)
	out := wire.User{ID: u.ID, Email: u.Email, Name: u.Name, Groups: u.Groups, Disabled: u.Disabled,
		MFAEnrolled: enrolled, Created: u.Created, LastLogin: u.LastLogin, Issuer: u.Issuer, Suspended: u.Suspended,
		GroupsClaimMissing: u.GroupsClaimMissing}
	if c := u.Change; c != nil {
		out.LastChange = &wire.UserChange{What: c.What, By: c.By, At: c.At}
	}
	return out, err
}

// userDetail is userToWire plus why the user holds (or lost) each
// profile and role, and their lockout state.
func (h *handler) userDetail(r *http.Request, u authn.User) (wire.User, error) {
	out, err := h.userToWire(r, u)
	if err != nil {
		return out, err
	}
	all, err := h.users.Profiles.List(r.Context())
	if err != nil {
		return out, err
	}
	for _, g := range h.users.Profiles.Explain(u, all) {
		out.Grants = append(out.Grants, wire.Grant{Profile: g.Profile, Role: g.Role, Held: g.Held, Via: g.Via, Why: g.Why})
	}
	peers, err := h.users.Profiles.Peers(r.Context(), profiles.PeerFilter{UserID: u.ID})
	if err != nil {
		return out, err
	}
	for _, p := range peers {
		if p.Revoked != nil {
			out.Revoked = append(out.Revoked, wire.Revocation{Peer: p.ID, Device: p.Device, Profile: p.Profile,
				Revoked: *p.Revoked, Reason: p.RevokedReason, ByAdmin: p.RevokedByAdmin})
		}
	}
	lk, err := h.users.MFA.Lockout(r.Context(), u.ID)
	if err != nil {
		return out, err
	}
	out.Lockout = &wire.Lockout{Failures: lk.Failures, LockedUntil: lk.LockedUntil}
	return out, nil
}

func (h *handler) unlockUser(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	u, err := h.users.Users.Resolve(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := h.users.MFA.Unlock(r.Context(), u.ID, actor(s), source(r)); err != nil {
		return err
	}
	return h.writeUser(w, r, u.ID)
}

func (h *handler) clearRevocation(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	if err := h.users.Profiles.ClearRevocation(r.Context(), r.PathValue("id"), actor(s)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (h *handler) listUsers(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	us, err := h.users.Users.List(r.Context())
	if err != nil {
		return err
	}
	out := wire.UserList{Users: []wire.User{}}
	for _, u := range us {
		wu, err := h.userToWire(r, u)
		if err != nil {
			return err
		}
		out.Users = append(out.Users, wu)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// writeUser answers with the current record of the user named by ID or
// email address.
func (h *handler) writeUser(w http.ResponseWriter, r *http.Request, idOrEmail string) error {
	u, err := h.users.Users.Resolve(r.Context(), idOrEmail)
	if err != nil {
		return err
	}
	wu, err := h.userDetail(r, u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wu)
	return nil
}

func (h *handler) getUser(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	return h.writeUser(w, r, r.PathValue("id"))
}

// setDisabled disables (ending every session and revoking every device of
// the user) or enables a user.
func (h *handler) setDisabled(disabled bool) sessionHandler {
	return func(w http.ResponseWriter, r *http.Request, s authn.Session) error {
		u, err := h.users.Users.Resolve(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		if _, err := h.users.Profiles.SetUserDisabled(r.Context(), u.ID, disabled, actor(s), source(r)); err != nil {
			return err
		}
		return h.writeUser(w, r, u.ID)
	}
}

func (h *handler) resetMFA(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	u, err := h.users.Users.Resolve(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := h.users.MFA.Reset(r.Context(), u.ID, actor(s), source(r)); err != nil {
		return err
	}
	return h.writeUser(w, r, u.ID)
}

// listSessions lists the valid sessions, of one user (?user=, an ID or an
// email address) or of everyone.
func (h *handler) listSessions(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	id := r.URL.Query().Get("user")
	if id != "" {
		u, err := h.users.Users.Resolve(r.Context(), id)
		if err != nil {
			return err
		}
		id = u.ID
	}
	ss, err := h.users.Sessions.List(r.Context(), id)
	if err != nil {
		return err
	}
	out := wire.SessionList{Sessions: []wire.Session{}}
	for _, x := range ss {
		out.Sessions = append(out.Sessions, sessionToWire(x))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *handler) killSession(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	if err := h.users.Sessions.Revoke(r.Context(), r.PathValue("id"), actor(s)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}
