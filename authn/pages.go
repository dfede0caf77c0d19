package authn

import (
	"bytes"
	"embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/authn/webpage"
)

//go:embed templates/*.html
var templateFS embed.FS

// Pages of the sign-in flow.
const (
	pageError     = "error.html"
	pageEnroll    = "enroll.html"
	pageVerify    = "verify.html"
	pageRecovery  = "recovery.html"
	pageCodes     = "codes.html"
	pageSignedIn  = "signedin.html"
	pageSignedOut = "signedout.html"
	pageLogout    = "logout.html"
)

// signinPages holds the parsed templates, each wrapped in the layout
// shared with the portal (package webpage). Parsing happens once; a
// broken template is a build defect, caught by every test.
var signinPages = mustParsePages()

func mustParsePages() map[string]*template.Template {
	p := make(map[string]*template.Template)
	for _, name := range []string{pageError, pageEnroll, pageVerify, pageRecovery, pageCodes, pageSignedIn, pageSignedOut, pageLogout} {
		p[name] = template.Must(webpage.Parse(templateFS, "templates/"+name))
	}
	return p
}

// pageData is what every page template may use.
type pageData struct {
	Title   string
	Error   string
	Message string
	CSRF    string
	// Org is the organisation's name shown on every page.
	Org string

	Identity *Identity
	// Who names the person: email, else name, else user ID.
	Who string

	// Enrollment.
	QR     template.URL
	Secret string
	URI    string

	RecoveryCodes []string

	Session *Session
	Expires string

	// Client names the client being signed in, on the code pages.
	Client string
	// RecoveryLeft is how many recovery codes remain; -1 unknown.
	RecoveryLeft int
	// LockedUntil, when set, is when a lockout ends.
	LockedUntil time.Time
	// OTPAuth is URI as a link that opens an authenticator app.
	OTPAuth template.URL
	// SecretGroups is Secret in groups of four, for reading aloud or
	// typing.
	SecretGroups string
	// CodesFile is the recovery codes as a text file to download.
	CodesFile template.URL
}

// contentSecurityPolicy allows the inline stylesheet by hash, inline
// data: images (the QR code), and forms posting to this origin. A form's
// redirect must pass form-action too, so desktop steps also allow the
// IPv4 loopback; browsers ignore IPv6 literals in CSP, so a step
// redirecting to [::1] is served without form-action.
func contentSecurityPolicy(withFormAction bool) string {
	csp := "default-src 'none'; img-src data:; style-src " + webpage.StyleHash + "; script-src " + webpage.ScriptHash +
		"; frame-ancestors 'none'; base-uri 'none'"
	if withFormAction {
		csp += "; form-action 'self' http://127.0.0.1:*"
	}
	return csp
}

// securityHeaders sets the headers every sign-in response carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy(true))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// Codes and states travel in URLs: never leak them to other sites.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Strict-Transport-Security", HSTS)
		next.ServeHTTP(w, r)
	})
}

// allowIPv6Loopback drops form-action from the CSP of a response whose
// form may redirect to an IPv6 loopback client (see contentSecurityPolicy).
func allowIPv6Loopback(w http.ResponseWriter, d *desktopRequest) {
	if d == nil {
		return
	}
	if u, err := url.Parse(d.RedirectURI); err == nil && u.Hostname() == "::1" {
		w.Header().Set("Content-Security-Policy", contentSecurityPolicy(false))
	}
}

// render writes a page. Rendering into a buffer first means a template
// error becomes a clean 500, not half a page.
func (f *Flow) render(w http.ResponseWriter, status int, page string, d pageData) {
	d.Org = f.org
	if strings.HasPrefix(d.URI, "otpauth://") {
		d.OTPAuth = template.URL(d.URI)
	}
	d.SecretGroups = groupsOfFour(d.Secret)
	if len(d.RecoveryCodes) > 0 {
		text := "Recovery codes for " + d.Who + " (" + orgName(f.org) + "). Each works once.\n" + strings.Join(d.RecoveryCodes, "\n") + "\n"
		d.CodesFile = template.URL("data:text/plain;charset=utf-8;base64," + base64.StdEncoding.EncodeToString([]byte(text)))
	}
	var buf bytes.Buffer
	if err := signinPages[page].ExecuteTemplate(&buf, "layout", d); err != nil {
		f.log.Error("rendering sign-in page", "page", page, "err", err)
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderError shows a generic failure: the client learns nothing of why.
func (f *Flow) renderError(w http.ResponseWriter, status int, msg string) {
	if msg == "" {
		msg = "Sign-in failed. Please start again."
	}
	f.render(w, status, pageError, pageData{Title: "Sign-in failed", Message: msg})
}

// groupsOfFour writes s in groups of four characters.
func groupsOfFour(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func orgName(org string) string {
	if org == "" {
		return "ferry"
	}
	return org
}

// qrDataURI returns png as a data: URI for an img element. The bytes are
// our own PNG, so the URL is safe to mark as such.
func qrDataURI(png []byte) template.URL {
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
}

// otpauthSecret returns the secret parameter of an otpauth:// URI, for
// entering by hand.
func otpauthSecret(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	return u.Query().Get("secret")
}
