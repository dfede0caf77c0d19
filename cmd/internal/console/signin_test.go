package console_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/authn/webpage/webpagetest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// TestConsoleAfterRealSignIn: an administrator signs in in Chromium
// through the real flow (the development OpenID Provider's form, TOTP
// enrollment with a code from the page's otpauth URI, recovery codes) and
// then opens the console with the session that sign-in set; a person
// without the admin role signed in the same way gets 403.
func TestConsoleAfterRealSignIn(t *testing.T) {
	s := apitest.StartWith(t, apitest.Options{SignIn: true})[0]
	for _, who := range []struct {
		user  string
		admin bool
	}{{"demo", true}, {"alice", false}} {
		t.Run(who.user, func(t *testing.T) {
			ctx := webpagetest.Chromium(t, webpagetest.Sizes[0])
			csp := watchCSP(t, ctx)
			step := webpagetest.Stepper(t, ctx)
			step("identity provider", chromedp.Navigate(s.URL+authn.PathLogin), chromedp.WaitVisible(chromedp.ID("username")),
				chromedp.SendKeys(chromedp.ID("username"), who.user), chromedp.SendKeys(chromedp.ID("password"), who.user),
				chromedp.Click(chromedp.ID("submit")), chromedp.WaitVisible(chromedp.ID("otpauth")))
			code, err := authntest.TOTPCode(webpagetest.Text(t, ctx, "otpauth"), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			step("enrol", chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("submit")),
				chromedp.WaitVisible(chromedp.ID("recovery-codes")), chromedp.Click(chromedp.ID("continue")), chromedp.WaitVisible(chromedp.ID("who")))
			if !who.admin {
				step("console refused", chromedp.Navigate(s.URL+"/admin"), chromedp.WaitVisible(chromedp.CSS("h1")))
				if h := webpagetest.Text(t, ctx, "error"); !strings.Contains(h, "for ferry's administrators") {
					t.Errorf("a non-admin's console: %q", h)
				}
				return
			}
			step("console", chromedp.Navigate(s.URL+"/admin"), chromedp.WaitVisible(chromedp.ID("nodes")))
			webpagetest.CheckPage(t, ctx, "signed-in-overview")
			if v := webpagetest.Text(t, ctx, "who"); !strings.Contains(v, "demo@example.com") && !strings.Contains(v, "Demo User") {
				t.Errorf("console names %q", v)
			}
			step("people", chromedp.Navigate(s.URL+"/admin/people"), chromedp.WaitVisible(chromedp.ID("people")))
			if v := webpagetest.Text(t, ctx, "people"); !strings.Contains(v, "TOTP") {
				t.Errorf("the signed-in administrator's second factor is not shown: %q", v)
			}
			if v := csp.violations(); len(v) > 0 {
				t.Errorf("CSP violations: %v", v)
			}
		})
	}
}
