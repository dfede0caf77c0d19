package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/webpage"
	"github.com/ferryvpn/ferry/profiles"
)

// The portal: after a browser sign-in, a person sees their devices,
// revokes one, and gets a profile for a phone or the official WireGuard
// apps, as a QR code or a file. Those apps cannot send a public key, so
// here the server makes the key pair, only on an explicit request that
// the audit log records; the private key is shown once and never stored.
// Every page shares the sign-in pages' layout and stylesheet (package
// webpage).

//go:embed templates/*.html
var portalFS embed.FS

// Portal pages.
const (
	pagePortal   = "portal.html"
	pageIssued   = "issued.html"
	pageReplace  = "replace.html"
	pageRevoke   = "revoke.html"
	pageNotFound = "notfound.html"
)

var portalPages = func() map[string]*template.Template {
	m := make(map[string]*template.Template)
	for _, name := range []string{pagePortal, pageIssued, pageReplace, pageRevoke, pageNotFound} {
		m[name] = template.Must(webpage.Parse(portalFS, "templates/"+name))
	}
	return m
}()

// PathPortal is the portal's main page, where a browser sign-in ends.
const PathPortal = pathPortal

const (
	pathPortal       = "/portal"
	pathPortalConfig = "/portal/config"
	// pathPortalReplace asks before a new profile replaces a device.
	pathPortalReplace = "/portal/replace"
	pathPortalRevoke  = "/portal/devices/{id}/revoke"
)

// portalCSP allows the shared stylesheet and script by hash and data:
// images (the QR code), nothing else; forms post only to this origin.
var portalCSP = "default-src 'none'; style-src " + webpage.StyleHash + "; script-src " + webpage.ScriptHash +
	"; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// portalData is what every portal page may use.
type portalData struct {
	Title, Error, Org string
	Who, CSRF         string
	// Notice is a confirmation shown at the top (a revoked device).
	Notice   string
	Profiles []profiles.Profile
	Peers    []portalPeer
	// Form holds the values to show in the issue form again.
	Form portalForm
	// DeviceError is shown next to the device name field.
	DeviceError string
	// Phone is set when the browser is a phone's: the file is the default
	// and the QR code is for scanning from another screen.
	Phone bool

	// The issued page.
	Peer     portalPeer
	QR       template.URL
	ConfURL  template.URL
	FileName string
	// The replace page: the device the issuance would replace.
	Existing portalPeer
}

type portalForm struct {
	Profile, Device, As string
}

// The issue form's refusals are shown after a redirect to the portal
// (POST-redirect-GET), so Reload and Back never post the form again. The
// redirect carries the entered values and a code naming the refusal in
// its query: none of them is secret (the form holds no key).
const (
	errServerKey   = "server-key"
	errKey         = "key"
	errDeviceName  = "device-name"
	errNotAllowed  = "not-allowed"
	errTooMany     = "too-many"
	errRevokedName = "revoked-name"
	errIssue       = "issue"
)

// formErrors are the refusals' messages; field ones are shown next to the
// device name.
var formErrors = map[string]struct {
	msg   string
	field bool
}{
	errServerKey:   {msg: "Tick the box to let the server make this device's key, or use the desktop client."},
	errKey:         {msg: "The key could not be made. Try again in a moment."},
	errDeviceName:  {msg: "Use 1 to 64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit.", field: true},
	errNotAllowed:  {msg: "That profile is not assigned to you."},
	errTooMany:     {msg: "You have reached this profile's device limit. Revoke a device you no longer use, then try again."},
	errRevokedName: {msg: "An administrator revoked the device of this name. Choose another name, or ask an administrator.", field: true},
	errIssue:       {msg: "The profile could not be issued. Try again in a moment."},
}

// query is the form's values for a redirect's URL.
func (f portalForm) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"profile": f.Profile, "device": f.Device, "as": f.As} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// formFromQuery reads back what query wrote, bounded like the form.
func formFromQuery(q url.Values) portalForm {
	cut := func(v string) string {
		if len(v) > 256 {
			v = v[:256]
		}
		return v
	}
	f := portalForm{Profile: cut(q.Get("profile")), Device: cut(q.Get("device")), As: q.Get("as")}
	if f.As != "file" && f.As != "qr" {
		f.As = ""
	}
	return f
}

// formAgain sends the browser back to the portal's form with the entered
// values and the refusal named by code.
func (h *handler) formAgain(w http.ResponseWriter, r *http.Request, form portalForm, code string) {
	q := form.query()
	q.Set("error", code)
	http.Redirect(w, r, pathPortal+"?"+q.Encode(), http.StatusSeeOther)
}

type portalPeer struct {
	ID, Device, Profile, Address, State string
	Expires                             time.Time
	// ExpiresIn is Expires relative to now, in words.
	ExpiresIn string
	Valid     bool
}

func (h *handler) toPortalPeer(p profiles.Peer) portalPeer {
	now := h.now()
	return portalPeer{ID: p.ID, Device: p.Device, Profile: p.Profile, Address: p.Address.String(), State: p.State(now),
		Expires: p.Expires, ExpiresIn: webpage.Relative(now, p.Expires), Valid: p.Valid(now)}
}

func (h *handler) mountPortal(mux *http.ServeMux) {
	mux.HandleFunc("GET "+pathPortal, h.portalSession(h.portal))
	mux.HandleFunc("POST "+pathPortalConfig, h.portalSession(h.portalConfig))
	mux.HandleFunc("GET "+pathPortalIssued, h.portalSession(h.portalIssued))
	mux.HandleFunc("GET "+pathPortalReplace, h.portalSession(h.portalReplace))
	mux.HandleFunc("GET "+pathPortalRevoke, h.portalSession(h.portalRevokeAsk))
	mux.HandleFunc("POST "+pathPortalRevoke, h.portalSession(h.portalRevoke))
}

// portalSession authenticates by the browser's session cookie; without a
// valid one it sends the browser to sign in.
func (h *handler) portalSession(next func(w http.ResponseWriter, r *http.Request, s authn.Session, tok string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", portalCSP)
		// Signed out: sign in, then come back to this page (a form's
		// POST comes back to the portal).
		back := pathPortal
		if r.Method == http.MethodGet {
			back = r.URL.RequestURI()
		}
		c, err := r.Cookie(authn.SessionCookie)
		if err != nil {
			http.Redirect(w, r, authn.LoginURL(back), http.StatusSeeOther)
			return
		}
		s, err := h.users.Sessions.Validate(r.Context(), authn.SessionToken(c.Value))
		if errors.Is(err, authn.ErrSessionInvalid) {
			http.Redirect(w, r, authn.LoginURL(back), http.StatusSeeOther)
			return
		}
		if err != nil {
			h.log.Error("portal: validating session", "err", err)
			h.writeHTMLError(w, http.StatusInternalServerError, "Something went wrong", "The server could not check your session. Try again in a moment.")
			return
		}
		next(w, r, s, c.Value)
	}
}

// portalCSRF binds the portal's forms to the session: a page from another
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

// checkForm parses a portal form and reports whether it comes from this
// site's page with this session's token; if not, it has already answered.
func (h *handler) checkForm(w http.ResponseWriter, r *http.Request, s authn.Session, tok string) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		h.renderPortal(w, r, http.StatusBadRequest, s, tok, portalData{Error: "The form could not be read. Please try again."})
		return false
	}
	if !sameOrigin(r) || !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(portalCSRF(tok))) {
		h.renderPortal(w, r, http.StatusForbidden, s, tok, portalData{Error: "The form had expired, so nothing was done. Please try again."})
		return false
	}
	return true
}

// isPhone reports whether the browser says it runs on a phone.
func isPhone(r *http.Request) bool {
	ua := r.UserAgent()
	return strings.Contains(ua, "Mobi") || strings.Contains(ua, "Android")
}

func (h *handler) portal(w http.ResponseWriter, r *http.Request, s authn.Session, tok string) {
	var d portalData
	if e, ok := formErrors[r.URL.Query().Get("error")]; ok {
		w.Header().Set("Cache-Control", "no-store")
		d.Form = formFromQuery(r.URL.Query())
		if e.field {
			d.DeviceError = e.msg
		} else {
			d.Error = e.msg
		}
	}
	if id := r.URL.Query().Get("revoked"); id != "" {
		if p, err := h.users.Profiles.Peer(r.Context(), id); err == nil && p.UserID == s.Identity.UserID && p.Revoked != nil {
			d.Notice = "The device “" + p.Device + "” is revoked: it can no longer connect."
		}
	}
	h.renderPortal(w, r, http.StatusOK, s, tok, d)
}

// renderPortal shows the portal's main page with d's message and form
// values, filling in the person's profiles and devices.
func (h *handler) renderPortal(w http.ResponseWriter, r *http.Request, status int, s authn.Session, tok string, d portalData) {
	id := s.Identity
	ps, err := h.users.Profiles.Allowed(r.Context(), id)
	if err != nil {
		h.log.Error("portal: listing profiles", "err", err)
		h.writeHTMLError(w, http.StatusInternalServerError, "Something went wrong", "Your profiles could not be listed. Try again in a moment.")
		return
	}
	peers, err := h.users.Profiles.Peers(r.Context(), profiles.PeerFilter{UserID: id.UserID})
	if err != nil {
		h.log.Error("portal: listing devices", "err", err)
		h.writeHTMLError(w, http.StatusInternalServerError, "Something went wrong", "Your devices could not be listed. Try again in a moment.")
		return
	}
	d.Title, d.Profiles = "Your VPN access", ps
	for _, p := range peers {
		d.Peers = append(d.Peers, h.toPortalPeer(p))
	}
	d.Phone = isPhone(r)
	if d.Form.As == "" {
		d.Form.As = "qr"
		if d.Phone {
			d.Form.As = "file"
		}
	}
	h.writePortalPage(w, status, pagePortal, s, tok, d)
}

func (h *handler) writePortalPage(w http.ResponseWriter, status int, page string, s authn.Session, tok string, d portalData) {
	d.Who, d.CSRF, d.Org = s.Identity.Display(), portalCSRF(tok), h.org
	h.writeHTML(w, status, page, d)
}

func (h *handler) writeHTML(w http.ResponseWriter, status int, page string, d portalData) {
	var buf bytes.Buffer
	if err := portalPages[page].ExecuteTemplate(&buf, "layout", d); err != nil {
		h.log.Error("rendering page", "page", page, "err", err)
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Security-Policy", portalCSP)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// writeHTMLError answers with a page in the shared style.
func (h *handler) writeHTMLError(w http.ResponseWriter, status int, title, msg string) {
	h.writeHTML(w, status, pageNotFound, portalData{Title: title, Error: msg, Org: h.org})
}
