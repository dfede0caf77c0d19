package authn_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
	"github.com/ferryvpn/ferry/authn/webpage/webpagetest"
)

// TestBackNeverResubmitsInChromium answers "Back after sign-in shows
// Confirm Form Resubmission" (issue #20): every form of the sign-in and
// enrollment flow answers with a redirect (POST-redirect-GET), so going
// Back through the whole history in Chromium loads each page with a GET:
// no browser error page, and no POST reaches the servers again (counted
// at the load balancer). Wrong codes on the enrollment, code and recovery
// pages, the recovery codes, and signing out are all on the way.
func TestBackNeverResubmitsInChromium(t *testing.T) {
	for _, size := range webpagetest.Sizes {
		t.Run(size.Name, func(t *testing.T) {
			ctx := webpagetest.Chromium(t, size)
			e := flowtest.Start(t, flowtest.Options{})
			step := webpagetest.Stepper(t, ctx)
			submit := func(what, code string, wait string) {
				t.Helper()
				step(what, chromedp.WaitVisible(chromedp.ID("code")),
					chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("submit")),
					chromedp.WaitVisible(chromedp.ID(wait)))
			}
			idpLogin := func() {
				step("IdP form", chromedp.Navigate(e.URLOf(authn.PathLogin)), chromedp.WaitVisible(chromedp.ID("username")),
					chromedp.SendKeys(chromedp.ID("username"), "demo"), chromedp.SendKeys(chromedp.ID("password"), "demo"),
					chromedp.Click(chromedp.ID("submit")))
			}
			// backThrough goes Back n times; each page must be a page of
			// ours, loaded without posting anything.
			backThrough := func(what string, n int) {
				t.Helper()
				posts := e.Posts()
				for i := range n {
					sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
					err := chromedp.Do(sctx, chromedp.NavigateBack())
					cancel()
					loc, _ := chromedp.Run(ctx, chromedp.Location())
					body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
					if err != nil || strings.HasPrefix(loc, "chrome-error:") || strings.Contains(body, "ERR_CACHE_MISS") || strings.Contains(body, "Confirm Form Resubmission") {
						webpagetest.Screenshot(t, ctx, size.Name+"-"+what+"-back-failed")
						t.Fatalf("%s: Back #%d: %v at %s:\n%s", what, i+1, err, loc, body)
					}
					hasMain, _ := chromedp.Run(ctx, chromedp.Evaluate[bool]("document.querySelector('main') !== null"))
					if !hasMain {
						t.Fatalf("%s: Back #%d at %s is not one of ferry's pages:\n%s", what, i+1, loc, body)
					}
					if got := e.Posts(); got != posts {
						t.Fatalf("%s: Back #%d to %s posted %d forms again", what, i+1, loc, got-posts)
					}
				}
			}

			// Enrollment: a wrong first code, then the right one, the
			// recovery codes, on to the signed-in page.
			idpLogin()
			step("enrollment page", chromedp.WaitVisible(chromedp.ID("qr")))
			uri := webpagetest.Text(t, ctx, "otpauth")
			e.Enrolled("demo", uri)
			submit("wrong enrollment code", "000000", "error")
			if got := webpagetest.Text(t, ctx, "otpauth"); got != uri {
				t.Errorf("after a wrong code the key changed: %q, was %q", got, uri)
			}
			submit("right enrollment code", e.TOTP("demo"), "recovery-codes")
			codes := webpagetest.Text(t, ctx, "recovery-codes")
			step("continue", chromedp.Click(chromedp.ID("continue")), chromedp.WaitVisible(chromedp.ID("who")))
			// Back from the signed-in page through the recovery codes, the
			// wrong code and the enrollment page.
			backThrough("after enrollment", 3)
			webpagetest.CheckPage(t, ctx, size.Name+"-back-after-enrollment")
			if msg := webpagetest.Text(t, ctx, "message"); !strings.Contains(msg, "you are signed in as demo@example.com") {
				t.Errorf("Back after enrollment: %q", msg)
			}

			// Sign out (a form too), then sign in with a wrong code, then
			// a wrong recovery code, then a right one.
			step("sign out", chromedp.Navigate(e.URLOf(authn.PathLogout)), chromedp.WaitVisible(chromedp.ID("logout")),
				chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("message")))
			idpLogin()
			e.Clock.Advance(30 * time.Second) // the enrollment's code is used
			submit("wrong code", "000000", "error")
			step("recovery page", chromedp.Navigate(e.URLOf(authn.PathMFARecovery)))
			submit("wrong recovery code", "AAAAA-AAAAA", "error")
			first := strings.Fields(codes)[0]
			submit("recovery code", first, "who")
			backThrough("after a recovery code", 4)
			if msg := webpagetest.Text(t, ctx, "message"); !strings.Contains(msg, "you are signed in as demo@example.com") {
				t.Errorf("Back after signing in: %q", msg)
			}
			// Forward again, sign out, and Back over the signed-out page.
			step("sign out again", chromedp.Navigate(e.URLOf(authn.PathLogout)), chromedp.WaitVisible(chromedp.ID("logout")),
				chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("message")),
				chromedp.Navigate(e.URLOf(authn.PathSignedIn)))
			backThrough("after signing out", 1)
		})
	}
}
