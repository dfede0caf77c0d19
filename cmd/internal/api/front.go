package api

import (
	"net/http"
	"strings"
)

// frontDoor answers every path no route serves. The server's bare address
// is where a person lands first: the portal (which sends them to sign in
// when they are not). A browser asking for anything else gets a page in
// the shared style that leads on; API clients, and anything that asks
// for JSON, get the API's JSON error.
func (h *handler) frontDoor(w http.ResponseWriter, r *http.Request) {
	page := wantsHTML(r) && (r.Method == http.MethodGet || r.Method == http.MethodHead)
	switch {
	case r.URL.Path == "/" && h.users != nil && page:
		http.Redirect(w, r, pathPortal, http.StatusSeeOther)
	case page && (r.URL.Path == "/admin" || strings.HasPrefix(r.URL.Path, "/admin/")):
		h.writeHTMLError(w, http.StatusNotFound, "Administration",
			"ferry is administered with ferryctl, the command-line tool: ferryctl login, then for example ferryctl user list.")
	case page:
		h.writeHTMLError(w, http.StatusNotFound, "Page not found", "There is no page at this address.")
	default:
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	}
}

// wantsHTML reports whether the request is a browser's: it does not
// prefer JSON, and it names text/html or asks for "/". Clients that send
// no Accept header or */* (curl, Go's http.Client) count as browsers only
// for "/", which has always led to the portal.
func wantsHTML(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	html, json := strings.Index(accept, "text/html"), strings.Index(accept, "application/json")
	switch {
	case json >= 0 && (html < 0 || json < html):
		return false
	case html >= 0:
		return true
	default:
		return r.URL.Path == "/"
	}
}
