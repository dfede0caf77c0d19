package api_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/webpage/webpagetest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// TestPortalBackNeverResubmitsInChromium: getting a profile in the portal
// answers with a redirect (POST-redirect-GET), so Back to the profile's
// page never asks to resubmit the form (which would issue a new key, or
// ask to replace the device just made); the page of a profile is shown
// once, as it holds the device's private key, and says so when loaded
// again. At desktop and phone sizes.
func TestPortalBackNeverResubmitsInChromium(t *testing.T) {
	s := apitest.Start(t)
	if _, err := clientFor(t, s, s.Admin(t)).CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	for i, size := range webpagetest.Sizes {
		t.Run(size.Name, func(t *testing.T) {
			ctx := webpagetest.Chromium(t, size)
			user := []string{"bea", "cleo"}[i]
			tok := s.Token(t, authn.Identity{UserID: user, Email: user + "@example.com", Groups: []string{"engineering"}})
			step := webpagetest.Stepper(t, ctx)
			step("blank", chromedp.Navigate(s.URL+"/nope"))
			webpagetest.SetCookie(t, ctx, authn.SessionCookie, tok)
			step("get a profile", chromedp.Navigate(s.URL+"/portal"), chromedp.WaitVisible(chromedp.ID("device")),
				chromedp.SendKeys(chromedp.ID("device"), "tablet"),
				chromedp.Click(chromedp.CSS(`input[name="server_key"]`)),
				chromedp.Click(chromedp.ID("get")), chromedp.WaitVisible(chromedp.ID("issued")))
			webpagetest.CheckPage(t, ctx, size.Name+"-issued-after-redirect")
			step("back to the portal", chromedp.Click(chromedp.CSS(`main a[href="/portal"]`)), chromedp.WaitVisible(chromedp.ID("devices")))
			peers, _ := s.Profiles.Peers(bg(t), profilesFilterUser(user))
			// Back (as the person presses it), then wait for a page of
			// ours or the browser's error page.
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("history.back(), true")); err != nil {
				t.Fatal(err)
			}
			var err error
			for deadline := time.Now().Add(20 * time.Second); ; {
				wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				ready, _ := chromedp.Run(wctx, chromedp.Evaluate[bool](`location.pathname === "/portal/issued" && document.readyState === "complete" && document.querySelector("main h1") !== null || location.protocol === "chrome-error:"`))
				cancel()
				if ready {
					break
				}
				if time.Now().After(deadline) {
					err = errors.New("no page after Back")
					break
				}
				wctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
				<-wctx.Done() // poll interval
				cancel()
			}
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
			if err != nil || strings.HasPrefix(loc, "chrome-error:") || strings.Contains(body, "Confirm Form Resubmission") {
				t.Fatalf("Back to the profile's page: %v at %s:\n%s", err, loc, body)
			}
			// Chromium may restore the page from its memory (back/forward
			// cache); loaded again, it is a GET that shows nothing twice.
			step("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("main h1")))
			if body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body.innerText")); !strings.Contains(body, "shown once") || strings.Contains(body, "PrivateKey") {
				t.Errorf("the profile's page loaded again says:\n%s", body)
			}
			webpagetest.CheckPage(t, ctx, size.Name+"-issued-again")
			if again, _ := s.Profiles.Peers(bg(t), profilesFilterUser(user)); len(again) != len(peers) || again[0].PublicKey != peers[0].PublicKey {
				t.Errorf("Back changed the devices: %+v, was %+v", again, peers)
			}
		})
	}
}

// TestPortalIssueRedirects: the form answers 303 to the profile's page,
// which shows the configuration once; its cookie opens only with the
// session that made it.
func TestPortalIssueRedirects(t *testing.T) {
	s := apitest.Start(t)
	if _, err := clientFor(t, s, s.Admin(t)).CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	tok := s.Token(t, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"engineering"}})
	other := s.Token(t, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"engineering"}})
	c := rawBrowser(t, s)
	do := func(method, path, token string, form url.Values, cookies ...*http.Cookie) *http.Response {
		t.Helper()
		var body *strings.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		} else {
			body = strings.NewReader("")
		}
		req, _ := http.NewRequest(method, s.URL+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", s.URL)
		}
		req.AddCookie(&http.Cookie{Name: authn.SessionCookie, Value: token})
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	page := readBody(t, do(http.MethodGet, "/portal", tok, nil))
	csrf := csrfField.FindStringSubmatch(page)[1]
	resp := do(http.MethodPost, "/portal/config", tok, url.Values{"csrf": {csrf}, "profile": {"eng"}, "device": {"tablet"}, "server_key": {"1"}, "as": {"file"}})
	resp.Body.Close()
	var issued *http.Cookie
	for _, ck := range resp.Cookies() {
		if strings.Contains(ck.Name, "issued") {
			issued = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/portal/issued" || issued == nil {
		t.Fatalf("the form answered %d to %q (cookie %v), want 303 to /portal/issued", resp.StatusCode, resp.Header.Get("Location"), issued)
	}
	if !issued.HttpOnly || !issued.Secure || strings.Contains(issued.Value, "PrivateKey") {
		t.Errorf("cookie %+v", issued)
	}
	// Another session of the same person cannot open it.
	if r := do(http.MethodGet, "/portal/issued", other, nil, issued); strings.Contains(readBody(t, r), "data:application/octet-stream") {
		t.Error("another session opened the configuration")
	}
	r := do(http.MethodGet, "/portal/issued", tok, nil, issued)
	downloaded(t, readBody(t, r), "ferry-tablet.conf")
	if r.StatusCode != http.StatusOK {
		t.Errorf("profile page: %d", r.StatusCode)
	}
}

// rawBrowser is an HTTPS client that trusts s and follows no redirect.
func rawBrowser(t *testing.T, s *apitest.Server) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func readBody(t *testing.T, r *http.Response) string {
	t.Helper()
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
