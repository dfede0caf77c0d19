package webpage

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io/fs"
	"time"
)

//go:embed layout.html style.css local.js
var files embed.FS

var (
	css    = mustRead("style.css")
	script = mustRead("local.js")

	// StyleHash is the CSP source allowing the shared stylesheet, as in
	// "style-src " + StyleHash.
	StyleHash = hashSource(css)
	// ScriptHash is the CSP source allowing the shared script (local
	// times, copy buttons), as in "script-src " + ScriptHash.
	ScriptHash = hashSource(script)
)

func mustRead(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("webpage: reading " + name + ": " + err.Error())
	}
	return string(b)
}

func hashSource(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// Stylesheet returns the shared stylesheet, for a server that serves it
// as a file under a CSP of style-src 'self' (the admin console).
func Stylesheet() string { return css }

// Script returns the shared script, for a server that serves it as a file
// under a CSP of script-src 'self' (the admin console).
func Script() string { return script }

// Funcs are the template functions the layout and pages may use:
// css and script (the shared assets), org (a name or "ferry"), and
// relative (a time relative to now, as "in 11 hours").
func Funcs() template.FuncMap {
	return template.FuncMap{
		"css":    func() template.CSS { return template.CSS(css) },
		"script": func() template.JS { return template.JS(script) },
		"org": func(name string) string {
			if name == "" {
				return "ferry"
			}
			return name
		},
		"relative": Relative,
		"rfc3339":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"utc":      func(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04 UTC") },
	}
}

// Parse parses the layout with the page templates matched by patterns in
// fsys. Execute the result's "layout" template.
func Parse(fsys fs.FS, patterns ...string) (*template.Template, error) {
	t, err := template.New("webpage").Funcs(Funcs()).ParseFS(files, "layout.html")
	if err != nil {
		return nil, err
	}
	return t.ParseFS(fsys, patterns...)
}

// Relative says how far t is from now in words a person reads at a
// glance: "in 11 hours", "5 minutes ago", "in 3 days".
func Relative(now, t time.Time) string {
	d := t.Sub(now)
	future := d >= 0
	if !future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		if future {
			return "in less than a minute"
		}
		return "just now"
	case d < time.Hour:
		s = plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		s = plural(int(d/time.Hour), "hour")
	default:
		s = plural(int(d/(24*time.Hour)), "day")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
