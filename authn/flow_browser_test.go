package authn_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
	"github.com/ferryvpn/ferry/authn/webpage/webpagetest"
)

// TestBrowserSignInChromium signs in with a real browser, without
// JavaScript of ours: the IdP's form, TOTP enrollment from the QR page (the
// image must load), the recovery codes, the signed-in page; then signs out
// and in again with a code.
func TestBrowserSignInChromium(t *testing.T) {
	ctx := webpagetest.Browser(t)
	e := flowtest.Start(t, flowtest.Options{})

	idpLogin := func(user string) {
		webpagetest.Step(t, ctx, "IdP form",
			chromedp.Navigate(e.URLOf(authn.PathLogin)),
			chromedp.WaitVisible(chromedp.ID("username")),
			chromedp.SendKeys(chromedp.ID("username"), user),
			chromedp.SendKeys(chromedp.ID("password"), user),
			chromedp.Click(chromedp.ID("submit")),
		)
	}

	idpLogin("demo")
	webpagetest.Step(t, ctx, "enrollment page", chromedp.WaitVisible(chromedp.ID("qr")))
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	width, err := chromedp.Run(sctx, chromedp.Evaluate[int]("document.getElementById('qr').complete ? document.getElementById('qr').naturalWidth : 0"))
	cancel()
	if err != nil || width <= 0 {
		t.Fatalf("QR image naturalWidth = %d, %v: the image did not load", width, err)
	}
	alt, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.getElementById('qr').alt"))
	if err != nil || alt == "" {
		t.Errorf("QR image alt = %q, %v", alt, err)
	}
	uri := webpagetest.Text(t, ctx, "otpauth")
	if !strings.HasPrefix(uri, "otpauth://totp/") {
		t.Fatalf("otpauth URI on the page = %q", uri)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil {
		_ = os.WriteFile(filepath.Join(t.TempDir(), "enroll.png"), shot, 0o600)
		if dir := os.Getenv("FERRY_SCREENSHOTS"); dir != "" {
			_ = os.WriteFile(filepath.Join(dir, "enroll.png"), shot, 0o600)
		}
	}
	e.Enrolled("demo", uri)
	webpagetest.Step(t, ctx, "confirm enrollment",
		chromedp.SendKeys(chromedp.ID("code"), e.TOTP("demo")),
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.ID("recovery-codes")),
		chromedp.Click(chromedp.ID("continue")),
		chromedp.WaitVisible(chromedp.ID("who")),
	)
	if who := webpagetest.Text(t, ctx, "who"); !strings.Contains(who, "demo@example.com") {
		t.Fatalf("signed-in page says %q", who)
	}
	if role := webpagetest.Text(t, ctx, "role"); role != authn.RoleAdmin {
		t.Errorf("role %q, want %q", role, authn.RoleAdmin)
	}
	// An administrator in the browser is told where administration
	// happens (issue: never told): the console at /admin, a link, and
	// ferryctl (issue: only ferryctl, after the console existed).
	if note := webpagetest.Text(t, ctx, "admin-note"); !strings.Contains(note, "admin console") || !strings.Contains(note, "ferryctl") {
		t.Errorf("admin note %q", note)
	}
	if href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("#admin-note a#console") || {}).getAttribute ? document.querySelector("#admin-note a#console").getAttribute("href") : ""`)); err != nil || href != "/admin" {
		t.Errorf("admin note links to %q (%v), want /admin", href, err)
	}
	if dir := os.Getenv("FERRY_SCREENSHOTS"); dir != "" {
		if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "signed-in.png"), shot, 0o600)
		}
	}

	webpagetest.Step(t, ctx, "sign out",
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("message")),
	)
	if msg := webpagetest.Text(t, ctx, "message"); !strings.Contains(msg, "devices keep working") {
		t.Fatalf("after sign-out: %q", msg)
	}

	// Enrolled now: the second sign-in asks for a code only.
	idpLogin("demo")
	webpagetest.Step(t, ctx, "code page",
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.SendKeys(chromedp.ID("code"), e.TOTP("demo")),
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.ID("who")),
	)
}
