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
	again := func(status int, d portalData) {
		d.Form = form
		h.renderPortal(w, r, status, s, tok, d)
	}
	if r.PostForm.Get("server_key") != "1" {
		again(http.StatusBadRequest, portalData{Error: "Tick the box to let the server make this device's key, or use the desktop client."})
		return
	}
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		h.log.Error("portal: generating a key", "err", err)
		again(http.StatusInternalServerError, portalData{Error: "The key could not be made. Try again in a moment."})
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
			h.askReplace(w, r, s, tok, form)
		case errors.Is(err, profiles.ErrInvalid):
			again(http.StatusBadRequest, portalData{DeviceError: "Use 1 to 64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit."})
		case errors.Is(err, profiles.ErrNotAllowed):
			again(http.StatusForbidden, portalData{Error: "That profile is not assigned to you."})
		case errors.Is(err, profiles.ErrTooManyDevices):
			again(http.StatusConflict, portalData{Error: "You have reached this profile's device limit. Revoke a device you no longer use, then try again."})
		case errors.Is(err, profiles.ErrRevokedByAdmin):
			again(http.StatusForbidden, portalData{DeviceError: "An administrator revoked the device of this name. Choose another name, or ask an administrator."})
		default:
			h.log.Error("portal: issuing", "err", err)
			again(http.StatusInternalServerError, portalData{Error: "The profile could not be issued. Try again in a moment."})
		}
		return
	}
	conf := profiles.RenderConfig(peer, prof, h.users.Server, priv.String())
	// Shown by GET /portal/issued (portal_issued.go), so Back and Reload
	// never post this form again.
	h.handOver(w, r, tok, peer, conf, form.As == "qr")
}

// askReplace shows the device the issuance would replace and asks first.
func (h *handler) askReplace(w http.ResponseWriter, r *http.Request, s authn.Session, tok string, form portalForm) {
	peers, err := h.users.Profiles.Peers(r.Context(), profiles.PeerFilter{UserID: s.Identity.UserID})
	if err != nil {
		h.log.Error("portal: listing devices", "err", err)
		h.writeHTMLError(w, http.StatusInternalServerError, "Something went wrong", "Your devices could not be listed. Try again in a moment.")
		return
	}
	d := portalData{Title: "Replace “" + form.Device + "”?", Form: form}
	for _, p := range peers {
		if p.Device == form.Device {
			d.Existing = h.toPortalPeer(p)
		}
	}
	h.writePortalPage(w, http.StatusConflict, pageReplace, s, tok, d)
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
