package api_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/authn/webpage/webpagetest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// TestReturnAfterSignInChromium: a person who opens the portal or a
// console page signed out signs in (the real sign-in pages and the
// development OP) and ends on the page they opened, not on a stop page
// (issue #20); a sign-in link whose return address leads off this server
// is refused and stays on it. At desktop and phone sizes.
func TestReturnAfterSignInChromium(t *testing.T) {
	for _, size := range webpagetest.Sizes {
		t.Run(size.Name, func(t *testing.T) {
			ctx := webpagetest.Chromium(t, size)
			s := apitest.StartWith(t, apitest.Options{SignIn: true})[0]
			base, err := url.Parse(s.URL)
			if err != nil {
				t.Fatal(err)
			}
			step := webpagetest.Stepper(t, ctx)
			idp := func(what string) {
				t.Helper()
				step(what+": IdP form", chromedp.WaitVisible(chromedp.ID("username")),
					chromedp.SendKeys(chromedp.ID("username"), "demo"), chromedp.SendKeys(chromedp.ID("password"), "demo"),
					chromedp.Click(chromedp.ID("submit")), chromedp.WaitVisible(chromedp.ID("code")))
			}
			at := func(what, want string) {
				t.Helper()
				loc, err := chromedp.Run(ctx, chromedp.Location())
				if err != nil {
					t.Fatal(err)
				}
				u, err := url.Parse(loc)
				if err != nil || u.Host != base.Host || u.RequestURI() != want {
					t.Fatalf("%s: at %s, want %s%s", what, loc, s.URL, want)
				}
			}

			// The portal, signed out: sign in, enroll, end on the portal.
			step("portal signed out", chromedp.Navigate(s.URL+"/portal"))
			idp("portal")
			uri := webpagetest.Text(t, ctx, "otpauth")
			code, err := authntest.TOTPCode(uri, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			step("enrollment", chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("submit")),
				chromedp.WaitVisible(chromedp.ID("recovery-codes")))
			codes := strings.Fields(webpagetest.Text(t, ctx, "recovery-codes"))
			step("continue", chromedp.Click(chromedp.ID("continue")), chromedp.WaitVisible(chromedp.ID("who")))
			at("after signing in from the portal", "/portal")
			webpagetest.CheckPage(t, ctx, size.Name+"-returned-to-portal")

			// Signed out, a console page with a query: back to it (with a
			// recovery code: the TOTP code of this window is used).
			step("sign out", chromedp.Navigate(s.URL+"/logout"), chromedp.WaitVisible(chromedp.ID("logout")),
				chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("message")))
			const page = "/admin/people?q=demo"
			step("console signed out", chromedp.Navigate(s.URL+page))
			idp("console")
			step("recovery code", chromedp.Navigate(s.URL+"/mfa/recovery"), chromedp.WaitVisible(chromedp.ID("code")),
				chromedp.SendKeys(chromedp.ID("code"), codes[0]), chromedp.Click(chromedp.ID("submit")),
				chromedp.WaitVisible(chromedp.ID("people")))
			at("after signing in from the console", page)
			webpagetest.CheckPage(t, ctx, size.Name+"-returned-to-console")

			// A return address off this server is refused at /login.
			for _, ret := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example/"} {
				step("return "+ret, chromedp.Navigate(s.URL+"/login?return="+url.QueryEscape(ret)), chromedp.WaitVisible(chromedp.ID("message")))
				at("return "+ret, "/login?return="+url.QueryEscape(ret))
				if msg := webpagetest.Text(t, ctx, "message"); !strings.Contains(msg, "not valid") {
					t.Errorf("return %q: %q", ret, msg)
				}
			}
			webpagetest.CheckPage(t, ctx, size.Name+"-return-refused")
		})
	}
}
