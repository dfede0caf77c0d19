package authn_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
	"github.com/ferryvpn/ferry/authn/webpage/webpagetest"
)

// TestSignInPagesInChromium walks every sign-in page on a desktop and on
// a phone: each has a viewport, does not scroll sideways at 390 px, shows
// no text under 16 px, and passes axe-core (labels, roles, contrast,
// focus order). Screenshots go to the test's artefacts.
func TestSignInPagesInChromium(t *testing.T) {
	for _, size := range webpagetest.Sizes {
		t.Run(size.Name, func(t *testing.T) {
			ctx := webpagetest.Chromium(t, size)
			e := flowtest.Start(t, flowtest.Options{})
			step := webpagetest.Stepper(t, ctx)
			check := func(name string) { t.Helper(); webpagetest.CheckPage(t, ctx, size.Name+"-"+name) }
			idpLogin := func() {
				step("IdP form", chromedp.Navigate(e.URLOf(authn.PathLogin)), chromedp.WaitVisible(chromedp.ID("username")),
					chromedp.SendKeys(chromedp.ID("username"), "demo"), chromedp.SendKeys(chromedp.ID("password"), "demo"),
					chromedp.Click(chromedp.ID("submit")))
			}

			step("error page", chromedp.Navigate(e.URLOf(authn.PathCallback+"?state=bogus&code=x")), chromedp.WaitVisible(chromedp.ID("message")))
			check("error")

			idpLogin()
			step("enrollment page", chromedp.WaitVisible(chromedp.ID("qr")))
			check("enroll")
			uri := webpagetest.Text(t, ctx, "otpauth")
			e.Enrolled("demo", uri)
			step("wrong code", chromedp.SendKeys(chromedp.ID("code"), "000000"), chromedp.Click(chromedp.ID("submit")), chromedp.WaitVisible(chromedp.ID("error")))
			check("enroll-wrong-code")
			step("right code", chromedp.SendKeys(chromedp.ID("code"), e.TOTP("demo")), chromedp.Click(chromedp.ID("submit")), chromedp.WaitVisible(chromedp.ID("recovery-codes")))
			check("recovery-codes")
			step("continue", chromedp.Click(chromedp.ID("continue")), chromedp.WaitVisible(chromedp.ID("who")))
			check("signed-in")
			step("sign-out page", chromedp.Navigate(e.URLOf(authn.PathLogout)), chromedp.WaitVisible(chromedp.ID("logout")))
			check("sign-out")
			step("signed out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("message")))
			check("signed-out")
			if msg := webpagetest.Text(t, ctx, "message"); !strings.Contains(msg, "devices keep working") {
				t.Errorf("signed-out page: %q", msg)
			}

			idpLogin()
			step("code page", chromedp.WaitVisible(chromedp.ID("code")))
			check("verify")
			step("recovery page", chromedp.Navigate(e.URLOf(authn.PathMFARecovery)), chromedp.WaitVisible(chromedp.ID("code")))
			check("recovery")

			// Back after signing in shows where the browser is, not a
			// resubmitted form or "Sign-in failed" (issue).
			step("sign in with a code", chromedp.Navigate(e.URLOf(authn.PathMFA)), chromedp.WaitVisible(chromedp.ID("code")),
				chromedp.SendKeys(chromedp.ID("code"), e.TOTP("demo")), chromedp.Click(chromedp.ID("submit")),
				chromedp.WaitVisible(chromedp.ID("who")))
			step("back", chromedp.NavigateBack(), chromedp.WaitVisible(chromedp.ID("message")))
			check("back-after-sign-in")
			if msg := webpagetest.Text(t, ctx, "message"); !strings.Contains(msg, "you are signed in as demo@example.com") {
				t.Errorf("Back after signing in: %q", msg)
			}
		})
	}
}
