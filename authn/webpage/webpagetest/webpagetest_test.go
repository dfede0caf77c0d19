package webpagetest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestCheckFindsProblems: the checker itself catches what it is for, so
// a clean page means something.
func TestCheckFindsProblems(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><html><head><title>bad</title></head><body>
<p style="font-size:12px;color:#bbb">faint small text</p><input name="x"><div style="width:2000px">wide</div></body></html>`))
	}))
	defer srv.Close()
	ctx := Chromium(t, Sizes[1])
	Step(t, ctx, "bad page", chromedp.Navigate(srv.URL))
	r, err := Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(r.Problems(), "\n")
	for _, want := range []string{"no viewport", "scrolls sideways", "text under 16 px", "axe color-contrast", "axe label", "axe html-has-lang"} {
		if !strings.Contains(got, want) {
			t.Errorf("missed %q in:\n%s", want, got)
		}
	}
}
