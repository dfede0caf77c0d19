package api

import (
	"net/http"
	"strings"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/scim"
	"github.com/ferryvpn/ferry/authn/signals"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// IdP is what the identity provider talks to, served under its own paths
// with its own authentication (a SCIM bearer token, signed tokens), and
// its administration under /v1/idp.
type IdP struct {
	// SCIM serves /scim/v2; nil when provisioning is off.
	SCIM *scim.Service
	// SCIMGroupName is reported to administrators.
	SCIMGroupName string
	// Signals serves back-channel logout and Shared Signals push; nil
	// when neither is configured.
	Signals *signals.Receiver
	// Issuer is the sign-in provider's issuer, SSFIssuer the transmitter's.
	Issuer, SSFIssuer string
	// PublicURL makes the endpoints shown to administrators absolute.
	PublicURL string
}

// mountIdP adds the identity provider's endpoints and their
// administration.
func (h *handler) mountIdP(mux *http.ServeMux) {
	idp := h.idp
	if idp.SCIM != nil {
		mux.Handle(scim.PathPrefix+"/", idp.SCIM)
	}
	if idp.Signals != nil {
		for _, p := range idp.Signals.Paths() {
			route(mux, http.MethodPost, p, idp.Signals.ServeHTTP)
		}
	}
	route(mux, http.MethodGet, wire.PathIdP, h.admin(h.idpInfo))
	route(mux, http.MethodPost, wire.PathSCIMToken, h.admin(h.rotateSCIMToken))
}

func (h *handler) endpoint(path string) string {
	return strings.TrimSuffix(h.idp.PublicURL, "/") + path
}

func (h *handler) idpInfo(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	idp := h.idp
	out := wire.IdP{Issuer: idp.Issuer, SSFIssuer: idp.SSFIssuer}
	if idp.SCIM != nil {
		info, err := idp.SCIM.TokenInfo(r.Context())
		if err != nil {
			return err
		}
		out.SCIMBaseURL, out.SCIMGroupName = h.endpoint(scim.PathPrefix), idp.SCIMGroupName
		out.SCIMTokenSet, out.SCIMRotated, out.SCIMRotatedBy = info.Set, info.Rotated, info.RotatedBy
	}
	if idp.Signals != nil {
		for _, p := range idp.Signals.Paths() {
			switch p {
			case signals.PathBackChannelLogout:
				out.BackChannelURL = h.endpoint(p)
			case signals.PathSSFEvents:
				out.SSFPushURL = h.endpoint(p)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// rotateSCIMToken mints a SCIM token; the service records the rotation
// (never the token) before it is answered.
func (h *handler) rotateSCIMToken(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	if h.idp.SCIM == nil {
		return errorf(http.StatusNotFound, "SCIM is off: set scim.enabled in ferryd's configuration")
	}
	tok, err := h.idp.SCIM.RotateToken(r.Context(), actor(s))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.SCIMToken{Token: tok.Reveal(), BaseURL: h.endpoint(scim.PathPrefix)})
	return nil
}
