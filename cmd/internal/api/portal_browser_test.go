package api_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/webpage/webpagetest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// TestPortalPagesInChromium walks the portal as a person does, on a
// desktop and on a phone, in headless Chromium: every page has a
// viewport, does not scroll sideways, shows no text under 16 px and
// passes axe-core; the forms post from the page (CSRF token and Origin);
// reusing a device name asks first; Revoke asks, then revokes. Issue: the
// phone rendered the portal zoomed out to 0.68, the QR was stretched, QR
// was the default on the phone itself, unknown pages were raw JSON.
func TestPortalPagesInChromium(t *testing.T) {
	s := apitest.Start(t)
	if _, err := clientFor(t, s, s.Admin(t)).CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	for i, size := range webpagetest.Sizes {
		t.Run(size.Name, func(t *testing.T) {
			ctx := webpagetest.Chromium(t, size)
			user := []string{"dora", "pete"}[i]
			tok := s.Token(t, authn.Identity{UserID: user, Email: user + "@example.com", Name: strings.ToUpper(user[:1]) + user[1:], Groups: []string{"engineering"}})
			step := webpagetest.Stepper(t, ctx)
			check := func(name string) { t.Helper(); webpagetest.CheckPage(t, ctx, size.Name+"-"+name) }

			step("unknown page", chromedp.Navigate(s.URL+"/nope"), chromedp.WaitVisible(chromedp.CSS("h1")))
			check("notfound")
			step("admin page", chromedp.Navigate(s.URL+"/admin"), chromedp.WaitVisible(chromedp.CSS("h1")))
			check("admin")
			webpagetest.SetCookie(t, ctx, authn.SessionCookie, tok)

			step("empty portal", chromedp.Navigate(s.URL+"/portal"), chromedp.WaitVisible(chromedp.ID("device")))
			check("portal-empty")
			if v := webpagetest.Text(t, ctx, "who"); !strings.Contains(v, user+"@example.com") {
				t.Errorf("portal names %q", v)
			}
			as, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('input[name=as]:checked').value`))
			if want := map[bool]string{true: "file", false: "qr"}[size.Phone]; as != want {
				t.Errorf("default delivery %q, want %q", as, want)
			}
			// The browser's own check of the device name works (issue: the
			// pattern was invalid under the v flag, so it checked nothing).
			bad, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const d = document.getElementById('device'); d.value = '-bad/name'; const ok = d.checkValidity(); d.value = ''; return !ok; })()`))
			if !bad {
				t.Error("the browser accepts an invalid device name")
			}

			get := func(what string) {
				t.Helper()
				step(what, chromedp.Navigate(s.URL+"/portal"), chromedp.WaitVisible(chromedp.ID("device")),
					chromedp.SendKeys(chromedp.ID("device"), "phone"),
					chromedp.Click(chromedp.CSS(`input[name="server_key"]`)),
					chromedp.Click(chromedp.ID("get")))
			}
			get("get a profile")
			if size.Phone {
				step("issued page", chromedp.WaitVisible(chromedp.ID("download")))
			} else {
				step("issued page", chromedp.WaitVisible(chromedp.ID("qr")))
				square, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const r = document.getElementById('qr').getBoundingClientRect(); return r.width > 100 && Math.abs(r.width - r.height) < 1; })()`))
				if !square {
					t.Error("the QR code is not square")
				}
			}
			check("issued")
			if name, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('download').getAttribute('download')`)); name != "ferry-phone.conf" {
				t.Errorf("download named %q", name)
			}

			step("portal with a device", chromedp.Navigate(s.URL+"/portal"), chromedp.WaitVisible(chromedp.ID("devices")))
			check("portal-devices")

			get("reuse the name")
			step("asked first", chromedp.WaitVisible(chromedp.ID("replace-warning")))
			check("replace")
			step("keep it", chromedp.Click(chromedp.ID("keep")), chromedp.WaitVisible(chromedp.ID("devices")))

			step("revoke", chromedp.Click(chromedp.CSS(`#devices a.button`)), chromedp.WaitVisible(chromedp.ID("revoke-warning")))
			check("revoke")
			step("revoked", chromedp.Click(chromedp.ID("revoke")), chromedp.WaitVisible(chromedp.ID("notice")))
			check("revoked")
			if n := webpagetest.Text(t, ctx, "notice"); !strings.Contains(n, "phone") || !strings.Contains(n, "revoked") {
				t.Errorf("notice %q", n)
			}
			peers, _ := s.Profiles.Peers(bg(t), profilesFilterUser(user))
			if len(peers) != 1 || peers[0].Revoked == nil {
				t.Errorf("after revoking in the browser: %+v", peers)
			}
		})
	}
}
