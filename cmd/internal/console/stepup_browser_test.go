package console_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/webpage/webpagetest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/console"
)

// TestStepUpInChromium: with the sign-in's code older than the window,
// the confirmation page asks for a code; a wrong one is refused with a
// message and changes nothing; the right one makes the change, and the
// next change within the window asks for none.
func TestStepUpInChromium(t *testing.T) {
	s := apitest.Start(t)
	tok := s.Token(t, adminID)
	code := enroll(t, s, adminID)
	s.Token(t, alice)
	base, _ := serveConsole(t, s, func(c *console.Config) {
		c.Now = func() time.Time { return time.Now().Add(console.DefaultStepUpWindow + time.Minute) }
	})
	ctx := webpagetest.Chromium(t, webpagetest.Sizes[1])
	step := webpagetest.Stepper(t, ctx)
	step("origin", chromedp.Navigate(base+"/admin/static/style.css"))
	webpagetest.SetCookie(t, ctx, authn.SessionCookie, tok)
	step("asks for a code", chromedp.Navigate(base+"/admin/people/alice/disable"), chromedp.WaitVisible(chromedp.ID("totp")))
	webpagetest.CheckPage(t, ctx, "phone-step-up")
	step("wrong code", chromedp.SendKeys(chromedp.ID("totp"), "000000"), chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("error")))
	if v := webpagetest.Text(t, ctx, "error"); !strings.Contains(v, "not right") {
		t.Errorf("after a wrong code: %q", v)
	}
	if u, _, _ := s.Users.Get(bg(t), "alice"); u.Disabled {
		t.Fatal("disabled with a wrong code")
	}
	step("right code", chromedp.SendKeys(chromedp.ID("totp"), code(time.Now())), chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("notice")))
	if u, _, _ := s.Users.Get(bg(t), "alice"); !u.Disabled {
		t.Fatal("not disabled with the right code")
	}
	step("next change", chromedp.Navigate(base+"/admin/people/alice/enable"), chromedp.WaitVisible(chromedp.ID("confirm")))
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#totp").length`)); n != 0 {
		t.Error("the next change within the window asks for a code again")
	}
}
