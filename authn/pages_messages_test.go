package authn_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
)

// pastOIDC signs user in at the IdP and returns the browser at the code
// step.
func pastOIDC(t *testing.T, e *flowtest.Env, b *flowtest.Browser, user string) {
	t.Helper()
	authURL, err := b.StartLogin(e.URLOf(authn.PathLogin))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.IdPLogin(authURL, user, user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(cb); err != nil {
		t.Fatal(err)
	}
}

// TestCodeMessagesTellTheTruth: a wrong recovery code was answered "Wait
// for the next code" under "Enter your code"; 0 typed for O was refused;
// no warning came before the lockout, and the lock page gave no end time
// (issue).
func TestCodeMessagesTellTheTruth(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{})
	res, err := e.NewBrowser().SignIn(e.URLOf(authn.PathLogin), "demo", "demo")
	if err != nil {
		t.Fatal(err)
	}
	b := e.NewBrowser()
	pastOIDC(t, e, b, "demo")

	rec, err := b.Get(e.URLOf(authn.PathMFARecovery))
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Text("recovery-left"); got != "You have 10 unused codes." {
		t.Errorf("recovery page says %q about codes left", got)
	}
	wrong, err := b.Submit(e.URLOf(authn.PathMFARecovery), url.Values{"csrf": {rec.Field("csrf")}, "code": {"AAAAA-AAAAA"}})
	if err != nil {
		t.Fatal(err)
	}
	if msg := wrong.Text("error"); !strings.Contains(msg, "recovery code was not accepted") || strings.Contains(msg, "next code") {
		t.Errorf("wrong recovery code: %q", msg)
	}
	if !strings.Contains(wrong.Body, "<title>Use a recovery code") {
		t.Error("a wrong recovery code left the recovery page")
	}

	// A code typed with 0 for O, 1 for I, lower case and spaces.
	var code string
	for _, c := range res.RecoveryCodes {
		if strings.ContainsAny(c, "OI") {
			code = c
			break
		}
	}
	if code == "" {
		t.Skip("no recovery code holds an O or I this time")
	}
	typed := strings.ToLower(strings.NewReplacer("O", "0", "I", "1", "-", " ").Replace(code))
	ok, err := b.Post(e.URLOf(authn.PathMFARecovery), url.Values{"csrf": {wrong.Field("csrf")}, "code": {typed}})
	if err != nil {
		t.Fatal(err)
	}
	if ok.Status != http.StatusSeeOther {
		t.Errorf("recovery code typed as %q (for %q): %d %s", typed, code, ok.Status, ok.Text("error"))
	}
}

// TestLockoutWarnsAndSaysUntil: a warning once three tries are left, and
// the lock page names its end.
func TestLockoutWarnsAndSaysUntil(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{})
	if _, err := e.NewBrowser().SignIn(e.URLOf(authn.PathLogin), "demo", "demo"); err != nil {
		t.Fatal(err)
	}
	b := e.NewBrowser()
	pastOIDC(t, e, b, "demo")
	page, err := b.Get(e.URLOf(authn.PathMFA))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= authn.MaxFailures; i++ {
		page, err = b.Submit(e.URLOf(authn.PathMFA), url.Values{"csrf": {page.Field("csrf")}, "code": {"000000"}})
		if err != nil {
			t.Fatal(err)
		}
		msg := page.Text("error")
		left := authn.MaxFailures - i
		switch {
		case i == authn.MaxFailures:
			if page.Status != http.StatusTooManyRequests || page.Attr("locked-until", "datetime") == "" || !strings.Contains(page.Text("message"), "locked until") {
				t.Errorf("lock page: %d %q\n%s", page.Status, page.Text("message"), page.Body)
			}
		case left == 3:
			if !strings.Contains(msg, "3 tries left") {
				t.Errorf("try %d: %q, want a warning", i, msg)
			}
		case left > 3:
			if strings.Contains(msg, "left") {
				t.Errorf("try %d warns early: %q", i, msg)
			}
		}
	}
}

// TestUsedLinkWhileSignedInLeadsOn: replaying a used sign-in link, or
// going Back to the code page, while signed in said "Sign-in failed"
// (issue). It now says who is signed in and leads to the portal.
func TestUsedLinkWhileSignedInLeadsOn(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{})
	b := e.NewBrowser()
	authURL, err := b.StartLogin(e.URLOf(authn.PathLogin))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.IdPLogin(authURL, "demo", "demo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(cb); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SecondFactor("demo"); err != nil {
		t.Fatal(err)
	}
	for name, u := range map[string]string{"callback again": cb, "back to the code page": e.URLOf(authn.PathMFA)} {
		p, err := b.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		if msg := p.Text("message"); !strings.Contains(msg, "already used") || !strings.Contains(msg, "signed in as demo@example.com") || p.Attr("portal", "href") != "/portal" {
			t.Errorf("%s: %d %q", name, p.Status, msg)
		}
	}
	// Another browser, not signed in, still gets the plain refusal.
	if p, _ := e.NewBrowser().Get(cb); p == nil || p.Status != http.StatusBadRequest || strings.Contains(p.Body, "signed in as") {
		t.Errorf("a stranger replaying the link: %+v", p)
	}
}

// TestCodePageNamesTheClient: the code page did not say which client
// (the browser, ferry on this computer, a ferryctl admin session) was
// being signed in (issue).
func TestCodePageNamesTheClient(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{})
	b := e.NewBrowser()
	pastOIDC(t, e, b, "demo")
	p, err := b.Get(e.URLOf(authn.PathMFA))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Text("client"); !strings.Contains(got, "Signing in:") {
		t.Errorf("code page: %q\n%s", got, p.Body)
	}
	if !strings.Contains(p.Body, "<strong>this browser</strong>") {
		t.Error("a browser sign-in is not named as this browser")
	}
}

// TestEnrollmentKeepsTheKeyAfterAWrongCode: enrollment lost its QR code
// and key after one wrong code (issue); the same key stays on the page.
func TestEnrollmentKeepsTheKeyAfterAWrongCode(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{})
	b := e.NewBrowser()
	pastOIDC(t, e, b, "demo")
	first, err := b.Get(e.URLOf(authn.PathMFA))
	if err != nil {
		t.Fatal(err)
	}
	uri := first.Text("otpauth")
	if !strings.HasPrefix(uri, "otpauth://") {
		t.Fatalf("no key on the enrollment page:\n%s", first.Body)
	}
	wrong, err := b.Submit(e.URLOf(authn.PathMFA), url.Values{"csrf": {first.Field("csrf")}, "code": {"000000"}})
	if err != nil {
		t.Fatal(err)
	}
	if wrong.Status != http.StatusUnauthorized || wrong.Text("otpauth") != uri || !strings.HasPrefix(wrong.Attr("qr", "src"), "data:image/png;base64,") {
		t.Fatalf("after a wrong code: %d, key %q (was %q)\n%s", wrong.Status, wrong.Text("otpauth"), uri, wrong.Body)
	}
	if !strings.Contains(wrong.Text("error"), "not accepted") {
		t.Errorf("error %q", wrong.Text("error"))
	}
	// The kept key still confirms.
	e.Enrolled("demo", uri)
	ok, err := b.Submit(e.URLOf(authn.PathMFA), url.Values{"csrf": {wrong.Field("csrf")}, "code": {e.TOTP("demo")}})
	if err != nil || ok.Status != http.StatusOK || !strings.Contains(ok.Body, `id="recovery-codes"`) {
		t.Fatalf("confirming with the kept key: %v %+v", err, ok)
	}
}
