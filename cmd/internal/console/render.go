package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/webpage"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/report"
)

//go:embed templates/*.html static/*
var files embed.FS

// consoleCSS is the console's own stylesheet (tables, charts, wide
// pages), served after the shared one.
var consoleCSS = mustRead("static/console.css")

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("console: reading " + name + ": " + err.Error())
	}
	return b
}

// pages are the console's templates, each parsed with the common
// templates (navigation, the stylesheet and script as files) into the
// shared layout.
var pages = func() map[string]*template.Template {
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		panic(err)
	}
	m := make(map[string]*template.Template)
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "common.html" {
			continue
		}
		t, err := webpage.Parse(files, "templates/common.html", n)
		if err != nil {
			panic("console: parsing " + n + ": " + err.Error())
		}
		m[strings.TrimSuffix(base, ".html")] = t
	}
	return m
}()

// page is what every console page gets; D is the page's own data.
type page struct {
	Title, Error, Org string
	// Nav names the section the page belongs to, for aria-current.
	Nav    string
	Who    string
	CSRF   string
	Notice string
	D      any
}

// render writes page name with status.
func (c *Console) render(w http.ResponseWriter, status int, name string, k call, p page) {
	p.Org = c.cfg.Organization
	if k.tok != "" {
		p.Who, p.CSRF = k.s.Identity.Display(), formToken(k.tok)
	}
	var buf bytes.Buffer
	t, ok := pages[name]
	if !ok {
		c.cfg.Logger.Error("console: no such page template", "page", name)
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.cfg.Logger.Error("console: rendering page", "page", name, "err", err)
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errorPage answers with a message page in the console's style.
func (c *Console) errorPage(w http.ResponseWriter, status int, title, msg string) {
	c.render(w, status, "message", call{}, page{Title: title, Error: msg})
}

// fail answers for an error of a domain call: what a person can act on
// for the documented errors, a generic page (and a log line) for others.
func (c *Console) fail(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, profiles.ErrNotFound), errors.Is(err, authn.ErrUnknownUser), errors.Is(err, authn.ErrUnknownSession):
		c.errorPage(w, http.StatusNotFound, "Not found", "There is no such "+what+". It may have been removed meanwhile.")
	case errors.Is(err, profiles.ErrInvalid), errors.Is(err, authn.ErrInvalidInput), errors.Is(err, report.ErrInvalidQuery):
		c.errorPage(w, http.StatusBadRequest, "Not accepted", err.Error())
	case errors.Is(err, profiles.ErrConflict), errors.Is(err, authn.ErrContended):
		c.errorPage(w, http.StatusConflict, "Changed meanwhile", "Someone else changed the "+what+" meanwhile; nothing was done. Reload and try again.")
	case errors.Is(err, context.Canceled):
	default:
		c.cfg.Logger.Error("console: "+what, "err", err)
		c.errorPage(w, http.StatusInternalServerError, "Something went wrong", "The "+what+" could not be read or changed just now. Try again in a moment.")
	}
}

// static serves the console's stylesheets and the shared script as
// files, which the CSP allows as 'self'.
func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	var body, ctype string
	switch r.PathValue("name") {
	case "style.css":
		body, ctype = webpage.Stylesheet(), "text/css; charset=utf-8"
	case "console.css":
		body, ctype = string(consoleCSS), "text/css; charset=utf-8"
	case "local.js":
		body, ctype = webpage.Script(), "text/javascript; charset=utf-8"
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write([]byte(body))
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request, k call) {
	c.render(w, http.StatusNotFound, "message", k, page{Title: "Page not found", Error: "There is no console page at this address."})
}
