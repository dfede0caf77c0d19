package local_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

const chromiumPath = "/usr/bin/chromium"

// browser is headless Chromium on this host, which reaches the load
// balancer's public address (and the loopback addresses `ferry login` and
// `ferryctl login` listen on), plus each user's authenticator app.
type browser struct {
	ctx context.Context
	mu  sync.Mutex
	// totp holds each enrolled user's key and the last 30 s step used:
	// ferry accepts each code once.
	totp map[string]*authenticator
}

type authenticator struct {
	key  *otp.Key
	last int64
}

func newBrowser(tb testing.TB) *browser {
	tb.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// The API's certificate is from the cluster CA and the IdP's from
		// the demo CA, neither in the browser's store.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(tb.TempDir()),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	tb.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		tb.Fatalf("starting chromium: %v", err)
	}
	return &browser{ctx: ctx, totp: map[string]*authenticator{}}
}

// step runs actions with a deadline and fails with the page's text.
func (b *browser) step(tb testing.TB, what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	if err := b.try(what, actions...); err != nil {
		tb.Fatal(err)
	}
}

// try runs actions with a deadline; its error says where the browser was
// and what the page said.
func (b *browser) try(what string, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
		return fmt.Errorf("browser: %s: %v (at %s)\n%s", what, err, loc, body)
	}
	return nil
}

func (b *browser) text(tb testing.TB, id string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		tb.Fatalf("browser: text of #%s: %v", id, err)
	}
	return strings.TrimSpace(s)
}

// code returns a TOTP code for user from a 30 s step not used before,
// waiting for the next step when needed.
func (b *browser) code(tb testing.TB, user string) string {
	tb.Helper()
	b.mu.Lock()
	a := b.totp[user]
	b.mu.Unlock()
	if a == nil {
		tb.Fatalf("no TOTP key for %s", user)
	}
	period := int64(a.key.Period())
	for {
		now := time.Now()
		step := now.Unix() / period
		if step > a.last {
			c, err := totp.GenerateCodeCustom(a.key.Secret(), now, totp.ValidateOpts{
				Period: uint(period), Digits: a.key.Digits(), Algorithm: a.key.Algorithm(),
			})
			if err != nil {
				tb.Fatal(err)
			}
			a.last = step
			return c
		}
		// The next step starts at a known instant: wait for it.
		time.Sleep(time.Until(time.Unix((step+1)*period, 0)) + 100*time.Millisecond)
	}
}

// trySignIn completes a sign-in that starts at url: the IdP's form, TOTP
// enrollment (first time: the QR page, a code, the recovery codes) or a
// code, then whatever the flow shows last (the client's loopback page or
// ferry's signed-in page). It returns what went wrong, with the page.
func (b *browser) trySignIn(tb testing.TB, url, user string) error {
	tb.Helper()
	if err := b.try("start", chromedp.Navigate(url)); err != nil {
		return err
	}
	// /login answers with a redirect to the IdP, or with an error page.
	if loc, _ := chromedp.Run(b.ctx, chromedp.Location()); strings.HasPrefix(loc, lbURL+"/") {
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
		return fmt.Errorf("browser: sign-in did not reach the IdP (at %s)\n%s", loc, body)
	}
	if err := b.try("IdP sign-in form",
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), user),
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.ID("code")),
	); err != nil {
		return err
	}
	b.mu.Lock()
	enrolled := b.totp[user] != nil
	b.mu.Unlock()
	if !enrolled {
		uri := b.text(tb, "otpauth")
		key, err := otp.NewKeyFromURL(uri)
		if err != nil {
			tb.Fatalf("enrollment page's otpauth URI %q: %v", uri, err)
		}
		b.mu.Lock()
		b.totp[user] = &authenticator{key: key}
		b.mu.Unlock()
		return b.try("confirm TOTP enrollment",
			chromedp.SendKeys(chromedp.ID("code"), b.code(tb, user)),
			chromedp.Click(chromedp.ID("submit")),
			chromedp.WaitVisible(chromedp.ID("recovery-codes")),
			chromedp.Click(chromedp.ID("continue")),
		)
	}
	return b.try("TOTP code",
		chromedp.SendKeys(chromedp.ID("code"), b.code(tb, user)),
		chromedp.Click(chromedp.ID("submit")),
	)
}
