package loginflow_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
	"github.com/ferryvpn/ferry/authn/webpage/webpagetest"
	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// TestEndPagesInChromium signs in `ferry login`'s and `ferryctl login`'s
// way with Chromium as the browser, at desktop and phone sizes (issue
// #20): the code page says which client is being signed in; a ferryctl
// sign-in by someone who is not an administrator is refused in the browser
// as in the terminal (it said "Signed in" while the terminal refused); the
// last page, served by the client while the browser waits, names the
// account and the next step, or says why the client's own next step
// failed. Every page passes webpagetest's checks.
func TestEndPagesInChromium(t *testing.T) {
	for _, size := range webpagetest.Sizes {
		t.Run(size.Name, func(t *testing.T) {
			ctx := webpagetest.Chromium(t, size)
			e := flowtest.Start(t, flowtest.Options{})
			step := webpagetest.Stepper(t, ctx)
			type result struct {
				res wire.AuthTokenResponse
				err error
			}
			// signIn runs Login with o, drives Chromium through the IdP's
			// form and the second factor as user, checks that the code page
			// names client, and returns Login's result once the browser
			// shows the end page.
			signIn := func(name, user, client string, o loginflow.Options) result {
				t.Helper()
				opened := make(chan string, 1)
				o.Server, o.TLSConfig, o.Out = e.URL, e.ClientTLS, nil
				o.OpenBrowser = func(u string) error { opened <- u; return nil }
				done := make(chan result, 1)
				lctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
				defer cancel()
				go func() {
					res, err := loginflow.Login(lctx, o)
					done <- result{res, err}
				}()
				var loginURL string
				select {
				case loginURL = <-opened:
				case r := <-done:
					t.Fatalf("%s: Login ended before opening the browser: %v", name, r.err)
				}
				step(name+": IdP form", chromedp.Navigate(loginURL), chromedp.WaitVisible(chromedp.ID("username")),
					chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), user),
					chromedp.Click(chromedp.ID("submit")), chromedp.WaitVisible(chromedp.ID("code")))
				if got := webpagetest.Text(t, ctx, "client"); !strings.Contains(got, client) {
					t.Errorf("%s: the code page says %q, want it to name %q", name, got, client)
				}
				webpagetest.CheckPage(t, ctx, size.Name+"-"+name+"-code")
				enrolling, _ := chromedp.Run(ctx, chromedp.Evaluate[bool]("document.getElementById('otpauth') !== null"))
				if enrolling {
					e.Enrolled(user, webpagetest.Text(t, ctx, "otpauth"))
				}
				e.Clock.Advance(30 * time.Second) // a fresh TOTP code each time
				step(name+": code", chromedp.SendKeys(chromedp.ID("code"), e.TOTP(user)), chromedp.Click(chromedp.ID("submit")))
				if enrolling {
					step(name+": recovery codes", chromedp.WaitVisible(chromedp.ID("continue")), chromedp.Click(chromedp.ID("continue")))
				}
				step(name+": end page", chromedp.WaitVisible(chromedp.ID("title")))
				webpagetest.CheckPage(t, ctx, size.Name+"-"+name+"-end")
				select {
				case r := <-done:
					return r
				case <-lctx.Done():
					t.Fatalf("%s: Login did not return", name)
				}
				return result{}
			}

			// ferryctl, by someone who is not an administrator: refused
			// before the browser goes back, and the browser says why.
			r := signIn("ferryctl-refused", "alice", "an administrator session of ferryctl", loginflow.Options{Admin: true})
			if !errors.Is(r.err, loginflow.ErrSignInFailed) || !strings.Contains(r.err.Error(), "not an administrator") {
				t.Errorf("ferryctl as a non-admin: Login: %v", r.err)
			}
			if title, msg := webpagetest.Text(t, ctx, "title"), webpagetest.Text(t, ctx, "message"); title != "Sign-in failed" || !strings.Contains(msg, "not an administrator") {
				t.Errorf("ferryctl as a non-admin: the browser shows %q: %q", title, msg)
			}

			// ferryctl, by an administrator: the page names the account.
			r = signIn("ferryctl", "demo", "an administrator session of ferryctl", loginflow.Options{Admin: true})
			if r.err != nil || r.res.Role != authn.RoleAdmin {
				t.Fatalf("ferryctl as an admin: %+v %v", r.res, r.err)
			}
			if msg := webpagetest.Text(t, ctx, "message"); !strings.Contains(msg, "demo@example.com") {
				t.Errorf("ferryctl end page: %q, want the account", msg)
			}

			// ferry: the client's own next step (the profile, in ferry)
			// runs while the browser waits, and its page is shown.
			finish := func(_ context.Context, res wire.AuthTokenResponse) (loginflow.EndPage, error) {
				return loginflow.EndPage{Title: "ferry is signed in on this computer",
					Lines: []string{"Signed in as " + res.Email + ".", `This computer is the device "laptop".`}, Next: "sudo ferry up"}, nil
			}
			r = signIn("ferry", "alice", "the ferry app on your computer", loginflow.Options{Finish: finish})
			if r.err != nil {
				t.Fatalf("ferry: %v", r.err)
			}
			if msg, next := webpagetest.Text(t, ctx, "message"), webpagetest.Text(t, ctx, "next"); !strings.Contains(msg, "alice@example.com") ||
				!strings.Contains(msg, `"laptop"`) || !strings.Contains(next, "sudo ferry up") {
				t.Errorf("ferry end page: %q / %q, want the account, the device and sudo ferry up", msg, next)
			}

			// ferry, when its next step fails: the browser says so too.
			fail := func(context.Context, wire.AuthTokenResponse) (loginflow.EndPage, error) {
				return loginflow.EndPage{}, fmt.Errorf("no VPN profile is assigned to you yet: ask your administrator")
			}
			r = signIn("ferry-no-profile", "alice", "the ferry app on your computer", loginflow.Options{Finish: fail})
			if r.err == nil || !strings.Contains(r.err.Error(), "no VPN profile") {
				t.Errorf("ferry without a profile: Login: %v", r.err)
			}
			if title, msg := webpagetest.Text(t, ctx, "title"), webpagetest.Text(t, ctx, "message"); title != "Sign-in failed" || !strings.Contains(msg, "No VPN profile is assigned") {
				t.Errorf("ferry without a profile: the browser shows %q: %q", title, msg)
			}
		})
	}
}
