package authn_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
	"golang.org/x/oauth2"
)

// TestRefusalReachesTheDesktopClient: when the browser part of a desktop
// sign-in is refused (here: not in a required group), the loopback client
// gets the refusal and a reason it can print, instead of waiting out its
// timeout; a browser sign-in's page says the reason and what to do (issue:
// the page said "Please start again" and the clients waited 10 minutes).
func TestRefusalReachesTheDesktopClient(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{RequiredGroups: []string{"ferry-only"}})
	verifier := oauth2.GenerateVerifier()
	redirect := "http://127.0.0.1:49152/callback"
	q := desktopQuery(redirect, oauth2.S256ChallengeFromVerifier(verifier), "client-state-7", false)
	b := e.NewBrowser()
	authURL, err := b.StartLogin(e.URLOf(authn.PathLogin) + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.IdPLogin(authURL, "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Get(cb)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != http.StatusSeeOther {
		t.Fatalf("refused desktop sign-in: status %d, want a redirect to the client", p.Status)
	}
	loc, err := url.Parse(p.Location)
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirect {
		t.Fatalf("sent to %q, want the client's %q", p.Location, redirect)
	}
	lq := loc.Query()
	if lq.Get("error") != "access_denied" || lq.Get("state") != "client-state-7" || lq.Get("code") != "" {
		t.Errorf("loopback answer %v", lq)
	}
	if desc := lq.Get("error_description"); !strings.Contains(desc, "not in a group allowed") || strings.Contains(desc, "ferry-only") {
		t.Errorf("reason %q: want what to do, without the server's configuration", desc)
	}

	// A browser sign-in: the page says the reason.
	b = e.NewBrowser()
	authURL, err = b.StartLogin(e.URLOf(authn.PathLogin))
	if err != nil {
		t.Fatal(err)
	}
	if cb, err = b.IdPLogin(authURL, "alice", "alice"); err != nil {
		t.Fatal(err)
	}
	p, err = b.Get(cb)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != http.StatusForbidden || !strings.Contains(string(p.Body), "not in a group allowed") {
		t.Errorf("browser refusal: %d\n%s", p.Status, p.Body)
	}
}
