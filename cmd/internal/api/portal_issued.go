package api

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// A profile issued in the portal is shown by GET /portal/issued after the
// form's redirect (POST-redirect-GET), so that Back and Reload never post
// the form again, which would issue another key. Between the two requests
// the configuration (with the server-made private key) waits in a cookie
// of this browser only, sealed under a key derived from the session token
// (HttpOnly, like the session cookie), for at most issuedTTL; the server
// keeps no copy. The page shows it once and drops the cookie: opened again,
// it says so.

const (
	pathPortalIssued = "/portal/issued"
	// issuedCookie holds a sealed issued configuration. __Host- keeps
	// other hosts from planting or reading it.
	issuedCookie = "__Host-ferry_issued"
	// issuedTTL bounds how long a configuration waits for its page.
	issuedTTL = 5 * time.Minute
)

// issuedTicket is what the cookie holds.
// The peer travels too, so that any node shows the page without reading
// the store (a follower may not have the new peer yet).
type issuedTicket struct {
	Peer profiles.Peer `json:"peer"`
	Conf string        `json:"conf"`
	QR   bool          `json:"qr"`
}

func issuedAEAD(sessionToken string) (cipher.AEAD, error) {
	m := hmac.New(sha256.New, []byte(sessionToken))
	m.Write([]byte("ferry/portal-issued"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func sealIssued(sessionToken string, t issuedTicket) (string, error) {
	aead, err := issuedAEAD(sessionToken)
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(issuedCookie))), nil
}

func openIssued(sessionToken, value string) (issuedTicket, error) {
	aead, err := issuedAEAD(sessionToken)
	if err != nil {
		return issuedTicket{}, err
	}
	b, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(b) < aead.NonceSize() {
		return issuedTicket{}, errors.New("malformed")
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(issuedCookie))
	if err != nil {
		return issuedTicket{}, err
	}
	var t issuedTicket
	if err := json.Unmarshal(plain, &t); err != nil {
		return issuedTicket{}, err
	}
	return t, nil
}

// handOver sends the browser to the page of the profile just issued.
func (h *handler) handOver(w http.ResponseWriter, r *http.Request, tok string, peer profiles.Peer, conf string, qr bool) {
	v, err := sealIssued(tok, issuedTicket{Peer: peer, Conf: conf, QR: qr})
	if err != nil {
		h.log.Error("portal: sealing the configuration", "err", err)
		h.writeHTMLError(w, http.StatusInternalServerError, "Something went wrong", "The profile was issued but cannot be shown. Get a new profile for this device.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: issuedCookie, Value: v, Path: "/", MaxAge: int(issuedTTL / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, pathPortalIssued, http.StatusSeeOther)
}

// portalIssued shows the profile the form just issued, once.
func (h *handler) portalIssued(w http.ResponseWriter, r *http.Request, s authn.Session, tok string) {
	w.Header().Set("Cache-Control", "no-store")
	gone := func() {
		h.writeHTMLError(w, http.StatusGone, "Profile already shown",
			"A profile is shown once and only here: it holds the device's private key, which the server does not keep. To see it again, get a new profile for the device in the portal (the old key then stops working).")
	}
	c, err := r.Cookie(issuedCookie)
	http.SetCookie(w, &http.Cookie{Name: issuedCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	if err != nil {
		gone()
		return
	}
	t, err := openIssued(tok, c.Value)
	if err != nil {
		gone()
		return
	}
	if t.Peer.UserID != s.Identity.UserID {
		gone()
		return
	}
	peer := &t.Peer
	d := portalData{
		Title: "Profile for " + peer.Device, Peer: h.toPortalPeer(*peer), Phone: isPhone(r),
		FileName: confFileName(peer.Device),
		ConfURL:  template.URL("data:application/octet-stream;base64," + base64.StdEncoding.EncodeToString([]byte(t.Conf))),
	}
	if t.QR {
		png, err := qrcode.Encode(t.Conf, qrcode.Medium, 384)
		if err != nil {
			h.log.Error("portal: drawing the QR code", "err", fmt.Errorf("encoding: %w", err))
		} else {
			d.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
		}
	}
	h.writePortalPage(w, http.StatusOK, pageIssued, s, tok, d)
}
