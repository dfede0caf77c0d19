package authn_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
	"github.com/ferryvpn/ferry/authn/webpage/webpagetest"
)

// TestLockPageInChromium walks wrong codes to the lockout in Chromium at
// desktop and phone sizes, as the person sees it (issue #20): no warning
// early, "3 tries left" at three, then the lock page with its end in the
// viewer's own time zone (here New York's, not the server's UTC) and what
// to do; a right code while locked shows the same page and a way on. Every
// page passes webpagetest's checks.
func TestLockPageInChromium(t *testing.T) {
	const zone = "America/New_York"
	ny, err := time.LoadLocation(zone)
	if err != nil {
		t.Skipf("no time zone data for %s: %v", zone, err)
	}
	for _, size := range webpagetest.Sizes {
		t.Run(size.Name, func(t *testing.T) {
			ctx := webpagetest.Chromium(t, size)
			e := flowtest.Start(t, flowtest.Options{})
			if _, err := e.NewBrowser().SignIn(e.URLOf(authn.PathLogin), "demo", "demo"); err != nil {
				t.Fatal(err)
			}
			step := webpagetest.Stepper(t, ctx)
			step("time zone", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: zone})
				return err
			}))
			step("IdP form", chromedp.Navigate(e.URLOf(authn.PathLogin)), chromedp.WaitVisible(chromedp.ID("username")),
				chromedp.SendKeys(chromedp.ID("username"), "demo"), chromedp.SendKeys(chromedp.ID("password"), "demo"),
				chromedp.Click(chromedp.ID("submit")), chromedp.WaitVisible(chromedp.ID("code")))
			// submit types code and waits for the next page (not the
			// current one, which may show the same element).
			submit := func(what, code, wait string) {
				t.Helper()
				step(what, chromedp.WaitVisible(chromedp.ID("code")), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
					_, err := chromedp.Evaluate[bool]("(() => { const m = document.createElement('span'); m.id = 'stale-page'; document.body.append(m); return true; })()")(ctx, tg)
					return err
				}), chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("submit")),
					chromedp.WaitNotPresent(chromedp.ID("stale-page")), chromedp.WaitVisible(chromedp.ID(wait)))
			}
			wrong := "000000"
			if wrong == e.TOTP("demo") {
				wrong = "111111"
			}
			for i := 1; i < authn.MaxFailures; i++ {
				submit(fmt.Sprintf("wrong code %d", i), wrong, "error")
				msg := webpagetest.Text(t, ctx, "error")
				switch left := authn.MaxFailures - i; {
				case left == 3:
					if !strings.Contains(msg, "3 tries left") {
						t.Errorf("try %d: %q, want a warning of 3 tries left", i, msg)
					}
					webpagetest.CheckPage(t, ctx, size.Name+"-three-tries-left")
				case left > 3 && strings.Contains(msg, "left"):
					t.Errorf("try %d warns early: %q", i, msg)
				}
			}
			locked := e.Clock.Now()
			submit("the last wrong code", wrong, "locked-until")
			webpagetest.CheckPage(t, ctx, size.Name+"-locked")
			until := locked.Add(authn.LockoutDuration).In(ny)
			shown := webpagetest.Text(t, ctx, "locked-until")
			if !strings.Contains(shown, until.Format("3:04")) || strings.Contains(shown, "Z") || strings.Contains(shown, "UTC") {
				t.Errorf("lock page shows %q, want the end in New York time (%s)", shown, until.Format("3:04 PM"))
			}
			if msg := webpagetest.Text(t, ctx, "message"); !strings.Contains(msg, "locked until") || !strings.Contains(msg, "administrator") {
				t.Errorf("lock page: %q, want the end and what to do", msg)
			}

			// A right code while locked: the same page, and a way on.
			step("code page while locked", chromedp.Navigate(e.URLOf(authn.PathMFA)))
			submit("right code while locked", e.TOTP("demo"), "locked-until")
			if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('main a[href]').length`)); n == 0 {
				t.Error("the lock page after a right code offers no way on")
			}
		})
	}
}
