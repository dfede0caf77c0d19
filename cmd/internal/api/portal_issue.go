package api

import (
	"errors"
	"net/http"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// portalConfig issues a peer with a server-made key and hands the config
// over once, as a QR code and a file on one page. Reusing the name of a
// device that still works asks first: the old device would stop
// connecting.
func (h *handler) portalConfig(w http.ResponseWriter, r *http.Request, s authn.Session, tok string) {
	if !h.checkForm(w, r, s, tok) {
		return
	}
	form := portalForm{Profile: r.PostForm.Get("profile"), Device: strings.TrimSpace(r.PostForm.Get("device")), As: r.PostForm.Get("as")}
	if form.As != "file" {
		form.As = "qr"
	}
	if r.PostForm.Get("server_key") != "1" {
		h.formAgain(w, r, form, errServerKey)
		return
	}
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		h.log.Error("portal: generating a key", "err", err)
		h.formAgain(w, r, form, errKey)
		return
	}
	replace := r.PostForm.Get("replace") == "1"
	peer, prof, err := h.users.Profiles.Issue(r.Context(), s, profiles.IssueRequest{
		PublicKey: priv.PublicKey().String(), Device: form.Device, Profile: form.Profile,
		Source: auditSource(r), Node: h.users.NodeID, ServerKey: true, KeepExisting: !replace,
	})
	if err != nil {
		switch {
		case errors.Is(err, profiles.ErrDeviceInUse):
			// Asked on a page of its own (GET), so Reload asks again
			// instead of posting the form again.
			http.Redirect(w, r, pathPortalReplace+"?"+form.query().Encode(), http.StatusSeeOther)
		case errors.Is(err, profiles.ErrInvalid):
			h.formAgain(w, r, form, errDeviceName)
		case errors.Is(err, profiles.ErrNotAllowed):
			h.formAgain(w, r, form, errNotAllowed)
		case errors.Is(err, profiles.ErrTooManyDevices):
			h.formAgain(w, r, form, errTooMany)
		case errors.Is(err, profiles.ErrRevokedByAdmin):
			h.formAgain(w, r, form, errRevokedName)
		default:
			h.log.Error("portal: issuing", "err", err)
			h.formAgain(w, r, form, errIssue)
		}
		return
	}
	conf := profiles.RenderConfig(peer, prof, h.users.Server, priv.String())
	// Shown by GET /portal/issued (portal_issued.go), so Back and Reload
	// never post this form again.
	h.handOver(w, r, tok, peer, conf, form.As == "qr")
}

// portalReplace shows the device an issuance would replace and asks
// first (GET /portal/replace, where the form's redirect leads). Without
// such a device there is nothing to ask: the portal shows the form.
func (h *handler) portalReplace(w http.ResponseWriter, r *http.Request, s authn.Session, tok string) {
	w.Header().Set("Cache-Control", "no-store")
	form := formFromQuery(r.URL.Query())
	peers, err := h.users.Profiles.Peers(r.Context(), profiles.PeerFilter{UserID: s.Identity.UserID})
	if err != nil {
		h.log.Error("portal: listing devices", "err", err)
		h.writeHTMLError(w, http.StatusInternalServerError, "Something went wrong", "Your devices could not be listed. Try again in a moment.")
		return
	}
	d := portalData{Title: "Replace “" + form.Device + "”?", Form: form}
	for _, p := range peers {
		if p.Device == form.Device && p.Valid(h.now()) {
			d.Existing = h.toPortalPeer(p)
		}
	}
	if d.Existing.Device == "" {
		h.renderPortal(w, r, http.StatusOK, s, tok, portalData{Form: form})
		return
	}
	h.writePortalPage(w, http.StatusOK, pageReplace, s, tok, d)
}

// maxIfaceName is Linux's limit on interface names (IFNAMSIZ - 1), which
// wg-quick takes from the configuration file's name.
const maxIfaceName = 15

// confFileName names a downloaded configuration after its device so that
// wg-quick accepts it: the interface name (the file name without .conf)
// keeps to the characters wg-quick allows and to maxIfaceName. It is
// "ferry-" and the device's name when that fits, else the device's name
// alone, cut to fit.
func confFileName(device string) string {
	var b strings.Builder
	for _, r := range device {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '=', r == '+', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := b.String()
	switch {
	case name == "":
		name = "ferry"
	case len("ferry-")+len(name) <= maxIfaceName:
		name = "ferry-" + name
	case len(name) > maxIfaceName:
		name = name[:maxIfaceName]
	}
	return name + ".conf"
}
