package webpage

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestRelative(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		d    time.Duration
		want string
	}{
		{"seconds ahead", 20 * time.Second, "in less than a minute"},
		{"seconds ago", -20 * time.Second, "just now"},
		{"one minute", time.Minute + time.Second, "in 1 minute"},
		{"eleven hours", 11*time.Hour + 30*time.Minute, "in 11 hours"},
		{"a day and more", 30 * time.Hour, "in 30 hours"},
		{"days", 72 * time.Hour, "in 3 days"},
		{"hours ago", -5 * time.Hour, "5 hours ago"},
	} {
		if got := Relative(now, now.Add(tc.d)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestLayout: every page gets the viewport, the organisation's name and
// the stylesheet and script whose hashes the CSP allows.
func TestLayout(t *testing.T) {
	fsys := fstest.MapFS{"p.html": {Data: []byte(`{{define "content"}}<p>hello</p>{{end}}`)}}
	tmpl, err := Parse(fsys, "p.html")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.ExecuteTemplate(&b, "layout", struct{ Title, Error, Org string }{"Hi", "", "Acme"}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{`name="viewport"`, "<title>Hi — Acme</title>", "<style>" + css + "</style>", "<script>" + script + "</script>", "<p>hello</p>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %.60q", want)
		}
	}
}

// TestLayoutExternalAssets: a page set that redefines "style" and
// "script" (the admin console) gets no inline style or script at all.
func TestLayoutExternalAssets(t *testing.T) {
	fsys := fstest.MapFS{"p.html": {Data: []byte(`{{define "content"}}<p>hello</p>{{end}}` +
		`{{define "style"}}<link rel="stylesheet" href="/s.css">{{end}}{{define "script"}}<script src="/s.js"></script>{{end}}`)}}
	tmpl, err := Parse(fsys, "p.html")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.ExecuteTemplate(&b, "layout", struct{ Title, Error, Org string }{"Hi", "", ""}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if strings.Contains(page, "<style>") || strings.Contains(page, "<script>") {
		t.Errorf("inline style or script left:\n%s", page)
	}
	for _, want := range []string{`<link rel="stylesheet" href="/s.css">`, `<script src="/s.js"></script>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if Stylesheet() != css || Script() != script {
		t.Error("Stylesheet or Script is not the shared asset")
	}
}
