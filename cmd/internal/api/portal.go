package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// The portal: after a browser sign-in, a person sees their devices and can
// get a profile for a phone or the official WireGuard apps, as a QR code or
// a file. Those apps cannot send a public key, so here the server makes the
// key pair, only on an explicit request that the audit log records; the
// private key is shown once and never stored.

//go:embed templates/portal.html
var portalFS embed.FS

var portalPage = template.Must(template.ParseFS(portalFS, "templates/portal.html"))

const (
	pathPortal       = "/portal"
	pathPortalConfig = "/portal/config"
	// portalCSP allows the page's own inline style and data: images (the
	// QR code), nothing else; forms post only to this origin.
	portalCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

type portalData struct {
	Title, Error, Who, CSRF string
	Profiles                []profiles.Profile
	Peers                   []portalPeer
	QR, Device, Profile     string
	Address, Expires        string
}

type portalPeer struct {
	Device, Profile, Address, State, Expires string
}

func (h *handler) mountPortal(mux *http.ServeMux) {
	mux.HandleFunc("GET "+pathPortal, h.portalSession(h.portal))
	mux.HandleFunc("POST "+pathPortalConfig, h.portalSession(h.portalConfig))
}

// portalSession authenticates by the browser's session cookie; without a
// valid one it sends the browser to sign in.
func (h *handler) portalSession(next func(w http.ResponseWriter, r *http.Request, s authn.Session, tok string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", portalCSP)
		c, err := r.Cookie(authn.SessionCookie)
		if err != nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		s, err := h.users.Sessions.Validate(r.Context(), authn.SessionToken(c.Value))
		if errors.Is(err, authn.ErrSessionInvalid) {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if err != nil {
			h.log.Error("portal: validating session", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		next(w, r, s, c.Value)
	}
}

// portalCSRF binds the portal's form to the session: a page from another
// site cannot know it.
func portalCSRF(tok string) string {
	m := hmac.New(sha256.New, []byte(tok))
	m.Write([]byte("ferry portal form"))
	return hex.EncodeToString(m.Sum(nil))
}

// sameOrigin reports whether a state-changing browser request comes from
// a page of this site: its Origin (or, from browsers that send none, its
// Referer) names this host. A request with neither is refused: every
// browser ferry supports sends Origin on a POST.
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

func (h *handler) portal(w http.ResponseWriter, r *http.Request, s authn.Session, tok string) {
	h.renderPortal(w, r, http.StatusOK, s, tok, "")
}

func (h *handler) renderPortal(w http.ResponseWriter, r *http.Request, status int, s authn.Session, tok, msg string) {
	id := s.Identity
	ps, err := h.users.Profiles.Allowed(r.Context(), id)
	if err != nil {
		h.log.Error("portal: listing profiles", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	peers, err := h.users.Profiles.Peers(r.Context(), profiles.PeerFilter{UserID: id.UserID})
	if err != nil {
		h.log.Error("portal: listing devices", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	d := portalData{Title: "Your VPN access", Error: msg, Who: who(id), CSRF: portalCSRF(tok), Profiles: ps}
	now := h.now()
	for _, p := range peers {
		d.Peers = append(d.Peers, portalPeer{Device: p.Device, Profile: p.Profile, Address: p.Address.String(), State: p.State(now), Expires: p.Expires.UTC().Format(time.RFC3339)})
	}
	writePage(w, status, d)
}

func who(id authn.Identity) string { return id.Display() }

func writePage(w http.ResponseWriter, status int, d portalData) {
	var buf bytes.Buffer
	if err := portalPage.Execute(&buf, d); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// portalConfig issues a peer with a server-made key and hands the config
// over once, as a QR code or a file.
func (h *handler) portalConfig(w http.ResponseWriter, r *http.Request, s authn.Session, tok string) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		h.renderPortal(w, r, http.StatusBadRequest, s, tok, "The form could not be read.")
		return
	}
	if !sameOrigin(r) || !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(portalCSRF(tok))) {
		h.renderPortal(w, r, http.StatusForbidden, s, tok, "The form expired; please try again.")
		return
	}
	if r.PostForm.Get("server_key") != "1" {
		h.renderPortal(w, r, http.StatusBadRequest, s, tok, "Tick the box to let the server generate the key, or use the desktop client.")
		return
	}
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	peer, prof, err := h.users.Profiles.Issue(r.Context(), s, profiles.IssueRequest{
		PublicKey: priv.PublicKey().String(), Device: r.PostForm.Get("device"), Profile: r.PostForm.Get("profile"),
		Source: auditSource(r), Node: h.users.NodeID, ServerKey: true,
	})
	if err != nil {
		status, msg := http.StatusInternalServerError, "The profile could not be issued."
		switch {
		case errors.Is(err, profiles.ErrInvalid):
			status, msg = http.StatusBadRequest, "Check the device name: letters, digits, spaces, '.', '_' or '-'."
		case errors.Is(err, profiles.ErrNotAllowed):
			status, msg = http.StatusForbidden, "That profile is not assigned to you."
		case errors.Is(err, profiles.ErrTooManyDevices):
			status, msg = http.StatusConflict, "You have reached this profile's device limit; revoke a device first."
		default:
			h.log.Error("portal: issuing", "err", err)
		}
		h.renderPortal(w, r, status, s, tok, msg)
		return
	}
	conf := profiles.RenderConfig(peer, prof, h.users.Server, priv.String())
	w.Header().Set("Cache-Control", "no-store")
	if r.PostForm.Get("as") == "file" {
		name := confFileName(prof.Name)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", "attachment; filename=\""+url.PathEscape(name)+"\"")
		w.Write([]byte(conf))
		return
	}
	png, err := qrcode.Encode(conf, qrcode.Medium, 384)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writePage(w, http.StatusOK, portalData{
		Title: "WireGuard profile for " + peer.Device, QR: base64.StdEncoding.EncodeToString(png),
		Device: peer.Device, Profile: prof.Name, Address: peer.Address.String(), Expires: peer.Expires.UTC().Format(time.RFC3339),
	})
}

// maxIfaceName is Linux's limit on interface names (IFNAMSIZ - 1), which
// wg-quick takes from the configuration file's name.
const maxIfaceName = 15

// confFileName names a downloaded configuration so that wg-quick accepts
// it: the interface name (the file name without .conf) keeps to the
// characters wg-quick allows and to maxIfaceName.
func confFileName(profile string) string {
	var b strings.Builder
	b.WriteString("ferry-")
	for _, r := range profile {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '=', r == '+', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := b.String()
	if len(name) > maxIfaceName {
		name = name[:maxIfaceName]
	}
	return name + ".conf"
}
