package loginflow

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// EndPage is what the browser shows on the loopback address once the
// sign-in has ended: the browser waits for it while the client redeems the
// code (and, with Options.Finish, does its own next step), so that the
// page can name the account and say what happens next, or why it failed.
type EndPage struct {
	// Title heads the page, e.g. "ferry is signed in".
	Title string
	// Lines are paragraphs of plain text.
	Lines []string
	// Next, when set, is a command to run next, e.g. "sudo ferry up".
	Next string
	// Failed marks a refusal or an error.
	Failed bool
}

// endWait bounds how long the browser's request waits for the end page
// (the token request and Options.Finish); after it the page says only
// to return to the terminal.
const endWait = 2 * time.Minute

// endStyle is the page's only style: system fonts at 16 px or more, a
// column that fits a phone.
const endStyle = `body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:1rem;line-height:1.5;color:#1b1b1b;background:#fff;margin:0;overflow-wrap:anywhere}` +
	`main{max-width:40rem;margin:0 auto;padding:1rem}h1{font-size:1.5rem;line-height:1.25}` +
	`code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:1rem;background:#f0f0f0;padding:.1rem .3rem;border-radius:.2rem}` +
	`.failed h1{color:#a4000f}`

// endCSP allows that style by hash and nothing else.
var endCSP = func() string {
	h := sha256.Sum256([]byte(endStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'; frame-ancestors 'none'; base-uri 'none'"
}()

var endTemplate = template.Must(template.New("end").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>` + endStyle + `</style>
</head>
<body>
<main{{if .Failed}} class="failed"{{end}}>
<h1 id="title">{{.Title}}</h1>
<div id="message">{{range .Lines}}<p>{{.}}</p>
{{end}}</div>
{{if .Next}}<p id="next">Next, in the terminal: <code>{{.Next}}</code></p>
{{end}}<p>You can close this window.</p>
</main>
</body>
</html>
`))

// writeEnd writes p.
func writeEnd(w http.ResponseWriter, status int, p EndPage) {
	var b strings.Builder
	if err := endTemplate.Execute(&b, p); err != nil {
		http.Error(w, "ferry: "+p.Title, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Security-Policy", endCSP)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// failedPage is the end page of a sign-in that failed with err.
func failedPage(err error) EndPage {
	return EndPage{Title: "Sign-in failed", Lines: []string{sentence(strings.TrimPrefix(err.Error(), "loginflow: ")), "The terminal says the same."}, Failed: true}
}

// sentence capitalises s and ends it with a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
