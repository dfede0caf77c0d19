package console

import (
	"context"
	"net/http"
)

// action is one change an administrator confirms on its own page: what
// will happen, in words, and the domain call that does it.
type action struct {
	// Title heads the confirmation page ("Disable Alice").
	Title string
	// Warning says what the change does, before it is made.
	Warning string
	// Button is the confirming button's label.
	Button string
	// Back is the page to return to.
	Back string
	// Done is the notice once the change is made.
	Done string
	// run makes the change, as the administrator of k.
	run func(ctx context.Context) error
}

// actionFunc builds the action a request names, or answers itself (an
// unknown user, say) and returns ok false.
type actionFunc func(w http.ResponseWriter, r *http.Request, k call) (a action, ok bool)

// confirmData is the confirmation page's.
type confirmData struct {
	Action action
	// Ask is set when the change needs a fresh TOTP code (step-up).
	Ask bool
}

// confirm shows the confirmation page of an action: nothing changes on
// a GET.
func (c *Console) confirm(af actionFunc) pageHandler {
	return func(w http.ResponseWriter, r *http.Request, k call) {
		a, ok := af(w, r, k)
		if !ok {
			return
		}
		c.render(w, http.StatusOK, "confirm", k, page{Title: a.Title, Nav: navOf(a.Back), D: confirmData{Action: a, Ask: !c.fresh(r, k.s)}})
	}
}

// change makes an action posted from its confirmation page: the form's
// token and Origin first, then the step-up when the last TOTP code is
// not fresh (asking for one, and changing nothing, without it), then the
// domain call, which records the audit event as its ferryctl twin does.
func (c *Console) change(af actionFunc) pageHandler {
	return func(w http.ResponseWriter, r *http.Request, k call) {
		if !c.checkForm(w, r, k) {
			return
		}
		a, ok := af(w, r, k)
		if !ok {
			return
		}
		if !c.fresh(r, k.s) {
			if problem := c.stepUp(w, r, k); problem != "" {
				c.render(w, http.StatusUnauthorized, "confirm", k, page{Title: a.Title, Nav: navOf(a.Back), Error: problem,
					D: confirmData{Action: a, Ask: true}})
				return
			}
		}
		if err := a.run(r.Context()); err != nil {
			c.fail(w, "change", err)
			return
		}
		c.render(w, http.StatusOK, "done", k, page{Title: "Done", Nav: navOf(a.Back), Notice: a.Done, D: a})
	}
}

// navOf names the section of a console path.
func navOf(path string) string {
	for _, s := range []struct{ prefix, nav string }{
		{pathPeople, "people"}, {pathSessions, "sessions"}, {pathProfiles, "profiles"},
		{pathTraffic, "traffic"}, {pathReports, "reports"}, {pathAudit, "audit"},
	} {
		if len(path) >= len(s.prefix) && path[:len(s.prefix)] == s.prefix {
			return s.nav
		}
	}
	return "overview"
}
