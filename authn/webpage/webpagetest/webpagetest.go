package webpagetest

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"
)

//go:embed axe/axe.min.js
var axeJS string

// ChromiumPath is where the tests look for Chromium.
const ChromiumPath = "/usr/bin/chromium"

// Size is a screen to test at.
type Size struct {
	Name          string
	Width, Height int64
	Phone         bool
}

// Sizes are a desktop screen and a phone's (an iPhone 12: 390×844, its
// user agent, touch).
var Sizes = []Size{{Name: "desktop", Width: 1280, Height: 800}, {Name: "phone", Width: 390, Height: 844, Phone: true}}

// Browser starts headless Chromium for t with the flags ferry's tests
// use (no sandbox, no GPU, no background traffic, test servers' own
// certificates accepted, a profile in t's temporary directory), or skips t
// where Chromium is missing. The browser ends with t.
func Browser(t testing.TB) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Skipf("headless browser test skipped: %s not found (apt-get install chromium)", ChromiumPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Test servers' certificates are their own CA's.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(t.Context()), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser and must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// Chromium starts headless Chromium (Browser) emulating size, or skips
// the test.
func Chromium(t *testing.T, size Size) context.Context {
	t.Helper()
	ctx := Browser(t)
	emulate := chromedp.EmulateViewport(size.Width, size.Height)
	if size.Phone {
		emulate = chromedp.Emulate(device.IPhone12)
	}
	if err := chromedp.Do(ctx, emulate); err != nil {
		t.Fatalf("emulating %s: %v", size.Name, err)
	}
	return ctx
}

// SetCookie sets the cookie name=value (Secure, Path=/, SameSite=Lax) for
// the site of the page the browser shows, as a server's Set-Cookie would,
// for example a session cookie that signs the browser in.
func SetCookie(t *testing.T, ctx context.Context, name, value string) {
	t.Helper()
	js := `document.cookie = "` + name + `=` + value + `; Secure; Path=/; SameSite=Lax", ""`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](js)); err != nil {
		t.Fatalf("setting cookie %s: %v", name, err)
	}
}

// Step runs actions with a deadline, so a broken page fails the test
// instead of hanging it, and shows where the browser was.
func Step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
		t.Fatalf("%s: %v (at %s)\n%s", what, err, loc, body)
	}
}

// Stepper returns Step bound to t and ctx, for a test of many steps:
// step := Stepper(t, ctx); step("sign in", ...).
func Stepper(t *testing.T, ctx context.Context) func(what string, actions ...chromedp.Action[chromedp.Void]) {
	return func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		Step(t, ctx, what, actions...)
	}
}

// Text returns the visible text of the element with id.
func Text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("text of #%s: %v", id, err)
	}
	return strings.TrimSpace(s)
}

// Report is what Check found on a page.
type Report struct {
	Viewport    bool        `json:"viewport"`
	ScrollWidth int         `json:"scrollWidth"`
	InnerWidth  int         `json:"innerWidth"`
	SmallText   []string    `json:"small"`
	Violations  []Violation `json:"violations"`
}

// Violation is one axe-core rule a page breaks.
type Violation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// Problems lists what is wrong, in words; empty when the page passes.
func (r Report) Problems() []string {
	var out []string
	if !r.Viewport {
		out = append(out, "no viewport meta element")
	}
	if r.ScrollWidth > r.InnerWidth {
		out = append(out, fmt.Sprintf("scrolls sideways: scrollWidth %d > innerWidth %d", r.ScrollWidth, r.InnerWidth))
	}
	for _, s := range r.SmallText {
		out = append(out, "text under 16 px: "+s)
	}
	for _, v := range r.Violations {
		out = append(out, fmt.Sprintf("axe %s (%s): %s at %s", v.ID, v.Impact, v.Help, strings.Join(v.Nodes, ", ")))
	}
	return out
}

// layoutJS measures the page: viewport, sideways scrolling, and every
// visible text or control under 16 px.
const layoutJS = `(() => {
  const small = [];
  const seen = new Set();
  const check = (el, what) => {
    const cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden' || el.closest('[hidden]')) return;
    const fs = parseFloat(cs.fontSize);
    if (fs < 16 && !seen.has(el)) { seen.add(el); small.push(el.tagName.toLowerCase() + ' ' + fs + 'px "' + what.slice(0, 40) + '"'); }
  };
  const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (w.nextNode()) {
    const n = w.currentNode, t = n.textContent.trim();
    if (!t || !n.parentElement || ['SCRIPT', 'STYLE'].includes(n.parentElement.tagName)) continue;
    check(n.parentElement, t);
  }
  document.querySelectorAll('input:not([type=hidden]),select,button,textarea').forEach(e => check(e, e.name || e.id || e.tagName));
  return JSON.stringify({viewport: !!document.querySelector('meta[name=viewport]'),
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, small: small});
})()`

// axeRunJS runs axe-core's WCAG 2 A and AA rules and best practices.
const axeRunJS = `axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})
  .then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact || '', help: v.help,
    nodes: v.nodes.map(n => n.target.join(' '))}))))`

// Check measures the page the browser shows and runs axe-core on it. The
// scripts run through the DevTools protocol, which the pages' CSP does
// not govern.
func Check(ctx context.Context) (Report, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var r Report
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](layoutJS))
	if err != nil {
		return r, fmt.Errorf("measuring the page: %w", err)
	}
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return r, err
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](axeJS+";true")); err != nil {
		return r, fmt.Errorf("loading axe-core: %w", err)
	}
	s, err = chromedp.Run(ctx, chromedp.Evaluate[string](axeRunJS, chromedp.EvalAwaitPromise))
	if err != nil {
		return r, fmt.Errorf("running axe-core: %w", err)
	}
	if err := json.Unmarshal([]byte(s), &r.Violations); err != nil {
		return r, err
	}
	return r, nil
}

// CheckPage runs Check, fails the test on every problem, and saves a
// full-page screenshot named name in the test's artefact directory.
func CheckPage(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	Screenshot(t, ctx, name)
	r, err := Check(ctx)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, p := range r.Problems() {
		t.Errorf("%s: %s", name, p)
	}
}

// Screenshot saves a full-page PNG named name in the test's artefact
// directory.
func Screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), name+".png"), png, 0o644); err != nil {
		t.Error(err)
	}
}
