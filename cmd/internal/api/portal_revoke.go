package api

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// portalRevokeAsk shows one of the person's devices and asks before
// revoking it. Another person's device is not found.
func (h *handler) portalRevokeAsk(w http.ResponseWriter, r *http.Request, s authn.Session, tok string) {
	p, err := h.users.Profiles.Peer(r.Context(), r.PathValue("id"))
	if err != nil || p.UserID != s.Identity.UserID {
		h.writeHTMLError(w, http.StatusNotFound, "No such device", "This device is not one of yours, or it no longer exists.")
		return
	}
	h.writePortalPage(w, http.StatusOK, pageRevoke, s, tok, portalData{Title: "Revoke “" + p.Device + "”?", Existing: h.toPortalPeer(p)})
}

// portalRevoke revokes one of the person's own devices (audited like
// its API twin, DELETE /v1/peers/{id}, and ferryctl's) and sends the browser back
// to the portal, so reloading does not post again.
func (h *handler) portalRevoke(w http.ResponseWriter, r *http.Request, s authn.Session, tok string) {
	if !h.checkForm(w, r, s, tok) {
		return
	}
	p, err := h.users.Profiles.RevokeOwn(r.Context(), s.Identity.UserID, r.PathValue("id"), "revoked by "+s.Identity.Display()+" in the portal", actor(s))
	switch {
	case errors.Is(err, profiles.ErrNotFound):
		h.writeHTMLError(w, http.StatusNotFound, "No such device", "This device is not one of yours, or it no longer exists.")
		return
	case err != nil:
		h.log.Error("portal: revoking", "err", err)
		h.renderPortal(w, r, http.StatusInternalServerError, s, tok, portalData{Error: "The device could not be revoked. Try again in a moment."})
		return
	}
	http.Redirect(w, r, pathPortal+"?revoked="+url.QueryEscape(p.ID), http.StatusSeeOther)
}
