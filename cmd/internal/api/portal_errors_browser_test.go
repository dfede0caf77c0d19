package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/webpage/webpagetest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// TestPortalErrorsNeverResubmitInChromium: a rejected device name and the
// "replace this device?" question answered the form's POST directly, so
// Reload asked to post it again (issue). Both now answer with a redirect
// to a page of their own (POST-redirect-GET) that keeps the entered name
// and shows the error next to its field; Reload and Back load them again
// without posting anything. At desktop and phone sizes.
func TestPortalErrorsNeverResubmitInChromium(t *testing.T) {
	s := apitest.Start(t)
	if _, err := clientFor(t, s, s.Admin(t)).CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	for i, size := range webpagetest.Sizes {
		t.Run(size.Name, func(t *testing.T) {
			ctx := webpagetest.Chromium(t, size)
			user := []string{"gil", "hana"}[i]
			tok := s.Token(t, authn.Identity{UserID: user, Email: user + "@example.com", Groups: []string{"engineering"}})
			step := webpagetest.Stepper(t, ctx)
			eval := func(js string) string {
				t.Helper()
				v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
				if err != nil {
					t.Fatalf("%s: %v", js, err)
				}
				return v
			}
			// navType is how the page on show was loaded: a POST answered
			// directly is "navigate" at /portal/config, and its reload
			// posts again.
			where := func() string {
				return eval(`location.pathname + " " + performance.getEntriesByType("navigation")[0].type`)
			}
			step("blank", chromedp.Navigate(s.URL+"/nope"))
			webpagetest.SetCookie(t, ctx, authn.SessionCookie, tok)

			// A device name the server refuses (the browser's own check
			// is switched off, as an old browser's would be).
			step("a refused name", chromedp.Navigate(s.URL+"/portal"), chromedp.WaitVisible(chromedp.ID("device")))
			eval(`document.getElementById("device").removeAttribute("pattern"), ""`)
			step("submit it", chromedp.SendKeys(chromedp.ID("device"), "-bad name"),
				chromedp.Click(chromedp.CSS(`input[name="server_key"]`)),
				chromedp.Click(chromedp.ID("get")), chromedp.WaitVisible(chromedp.ID("device-error")))
			if w := where(); !strings.HasPrefix(w, "/portal ") {
				t.Errorf("the refused name is shown at %q, want a GET of /portal after a redirect", w)
			}
			webpagetest.CheckPage(t, ctx, size.Name+"-device-error")
			step("reload it", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("device-error")))
			if v := eval(`document.getElementById("device").value`); v != "-bad name" {
				t.Errorf("after reload the name field holds %q", v)
			}
			if w := where(); w != "/portal reload" {
				t.Errorf("reload loaded %q", w)
			}

			// The question before replacing a device.
			step("get a profile", chromedp.Navigate(s.URL+"/portal"), chromedp.WaitVisible(chromedp.ID("device")),
				chromedp.SendKeys(chromedp.ID("device"), "tablet"),
				chromedp.Click(chromedp.CSS(`input[name="server_key"]`)),
				chromedp.Click(chromedp.ID("get")), chromedp.WaitVisible(chromedp.ID("issued")))
			first, _ := s.Profiles.Peers(bg(t), profilesFilterUser(user))
			if len(first) != 1 {
				t.Fatalf("%d devices", len(first))
			}
			step("reuse the name", chromedp.Navigate(s.URL+"/portal"), chromedp.WaitVisible(chromedp.ID("device")),
				chromedp.SendKeys(chromedp.ID("device"), "tablet"),
				chromedp.Click(chromedp.CSS(`input[name="server_key"]`)),
				chromedp.Click(chromedp.ID("get")), chromedp.WaitVisible(chromedp.ID("replace-warning")))
			if w := where(); strings.HasPrefix(w, "/portal/config") {
				t.Errorf("the question is the POST's answer (%q), want a page of its own", w)
			}
			webpagetest.CheckPage(t, ctx, size.Name+"-replace-after-redirect")
			step("reload the question", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("replace-warning")))
			if body := eval(`document.body.innerText`); !strings.Contains(body, "tablet") {
				t.Errorf("the question loaded again says:\n%s", body)
			}
			// Back (as the person presses it) leads to the portal's form,
			// never to a question to post again.
			eval(`history.back(), ""`)
			for deadline := time.Now().Add(20 * time.Second); ; {
				wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				ready, _ := chromedp.Run(wctx, chromedp.Evaluate[bool](`location.pathname === "/portal" && document.readyState === "complete" && document.getElementById("device") !== null || location.protocol === "chrome-error:"`))
				cancel()
				if ready {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no page after Back: at %s", where())
				}
				wctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
				<-wctx.Done() // poll interval
				cancel()
			}
			if loc, _ := chromedp.Run(ctx, chromedp.Location()); strings.HasPrefix(loc, "chrome-error:") {
				t.Fatalf("Back: %s", loc)
			}
			if body := eval(`document.body.innerText`); strings.Contains(body, "Confirm Form Resubmission") {
				t.Errorf("Back asks to post again:\n%s", body)
			}
			if again, _ := s.Profiles.Peers(bg(t), profilesFilterUser(user)); len(again) != 1 || again[0].PublicKey != first[0].PublicKey {
				t.Errorf("reload or Back changed the devices: %+v, was %+v", again, first)
			}
		})
	}
}
