package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/webpage/webpagetest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// cspWatch collects what Chromium logs about Content-Security-Policy
// violations in a tab.
type cspWatch struct {
	mu   sync.Mutex
	seen []string
}

func watchCSP(t *testing.T, ctx context.Context) *cspWatch {
	w := &cspWatch{}
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*log.EventEntryAdded); ok && e.Entry != nil && strings.Contains(e.Entry.Text, "Content Security Policy") {
			w.mu.Lock()
			w.seen = append(w.seen, e.Entry.URL+": "+e.Entry.Text)
			w.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *cspWatch) violations() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.seen...)
}

// TestCSPWatchSeesViolations: the watch itself catches a violation, so
// an empty list in the console test means something.
func TestCSPWatchSeesViolations(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'")
		w.Write([]byte(`<!doctype html><html lang="en"><title>x</title><p id="p">x</p><script>document.title="ran"</script></html>`))
	}))
	defer srv.Close()
	ctx := webpagetest.Chromium(t, webpagetest.Sizes[0])
	w := watchCSP(t, ctx)
	webpagetest.Step(t, ctx, "bad page", chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.ID("p")))
	if len(w.violations()) == 0 {
		t.Fatal("an inline script under script-src 'self' logged no violation")
	}
}

// TestConsoleInChromium walks the console as an administrator does, on
// a desktop and on a phone: every page has a viewport, does not scroll
// sideways, has no text under 16 px and passes axe-core; the pages show
// the cluster, the people and why they hold a profile, sessions and
// peers; disabling a person asks first, then disables her and is in the
// audit log; Chromium reports no CSP violation on any page.
func TestConsoleInChromium(t *testing.T) {
	s := apitest.Start(t)
	admin := newBrowser(t, s.URL, s.CAFile, s.Admin(t))
	if resp, body := admin.do(http.MethodGet, "/admin", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("console: %d\n%s", resp.StatusCode, body)
	}
	if _, err := s.Profiles.Put(bg(t), engProfile(t, s), nil, audit.Actor{UserID: "admin"}); err != nil {
		t.Fatal(err)
	}
	recordFlows(t, s)
	for i, size := range webpagetest.Sizes {
		t.Run(size.Name, func(t *testing.T) {
			ctx := webpagetest.Chromium(t, size)
			csp := watchCSP(t, ctx)
			user := []string{"dora", "pete"}[i]
			id := authn.Identity{UserID: user, Email: user + "@example.com", Name: strings.ToUpper(user[:1]) + user[1:], Groups: []string{"engineering"}}
			issue(t, s, s.Token(t, id), "laptop")
			adminID := []string{"root1", "root2"}[i]
			tok := s.Token(t, authn.Identity{UserID: adminID, Email: adminID + "@example.com", Name: "Root " + adminID[4:], Groups: []string{apitest.AdminGroup}})
			step := webpagetest.Stepper(t, ctx)
			check := func(name string) { t.Helper(); webpagetest.CheckPage(t, ctx, size.Name+"-"+name) }
			text := func(id string) string { t.Helper(); return webpagetest.Text(t, ctx, id) }

			step("signed out", chromedp.Navigate(s.URL+"/nope"), chromedp.WaitVisible(chromedp.CSS("h1")))
			webpagetest.SetCookie(t, ctx, authn.SessionCookie, tok)

			step("overview", chromedp.Navigate(s.URL+"/admin"), chromedp.WaitVisible(chromedp.ID("nodes")))
			check("overview")
			if v := text("nodes"); !strings.Contains(v, s.Cluster.ID(s.Node)) || !strings.Contains(v, "leader") {
				t.Errorf("nodes table: %q", v)
			}
			if v := text("alerts"); !strings.Contains(v, "No network audit sink") {
				t.Errorf("alerts: %q, want the missing network sink", v)
			}
			if v := text("count-peers"); v == "0" {
				t.Errorf("active peers %q", v)
			}

			step("people", chromedp.Navigate(s.URL+"/admin/people"), chromedp.WaitVisible(chromedp.ID("people")))
			check("people")
			if v := text("people"); !strings.Contains(v, user+"@example.com") || !strings.Contains(v, "engineering") {
				t.Errorf("people table lacks %s: %q", user, v)
			}
			step("find", chromedp.SendKeys(chromedp.ID("q"), user), chromedp.Submit(chromedp.ID("q")),
				chromedp.WaitVisible(chromedp.CSS(`#people-count[data-query="`+user+`"]`)))
			if v := text("people-count"); !strings.HasPrefix(v, "1 person") {
				t.Errorf("search for %s: %q", user, v)
			}
			step("person", chromedp.Click(chromedp.CSS("#people a")), chromedp.WaitVisible(chromedp.ID("grants")))
			check("person")
			if v := text("grants"); !strings.Contains(v, "profile eng") || !strings.Contains(v, "group engineering") {
				t.Errorf("grants: %q, want eng held via group engineering", v)
			}
			if v := text("devices"); !strings.Contains(v, "laptop") || !strings.Contains(v, "active") {
				t.Errorf("devices: %q", v)
			}

			step("sessions", chromedp.Navigate(s.URL+"/admin/sessions?user="+user+"@example.com"), chromedp.WaitVisible(chromedp.ID("peers")))
			check("sessions")
			if v := text("peers"); !strings.Contains(v, "laptop") || !strings.Contains(v, "eng") {
				t.Errorf("peers of %s: %q", user, v)
			}
			if v := text("sessions-count"); !strings.HasPrefix(v, "1 live session") {
				t.Errorf("sessions of %s: %q", user, v)
			}

			step("disable asks", chromedp.Navigate(s.URL+"/admin/people/"+user), chromedp.WaitVisible(chromedp.ID("disable")),
				chromedp.Click(chromedp.ID("disable")), chromedp.WaitVisible(chromedp.ID("confirm-warning")))
			check("confirm-disable")
			step("disabled", chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("notice")))
			check("done")
			if v := text("notice"); !strings.Contains(v, "is disabled") {
				t.Errorf("notice %q", v)
			}
			if u, _, _ := s.Users.Get(bg(t), user); !u.Disabled {
				t.Errorf("%s not disabled by the browser", user)
			}
			if !auditHas(t, s, string(audit.TypeUserDisable), func(e *audit.Event) bool {
				return e.Actor.UserID == adminID && e.Target.User == user
			}) {
				t.Errorf("no user.disable event for %s", user)
			}
			step("person after", chromedp.Navigate(s.URL+"/admin/people/"+user), chromedp.WaitVisible(chromedp.ID("enable")))
			if v := text("state"); v != "disabled" {
				t.Errorf("state %q", v)
			}
			step("audit view", chromedp.Navigate(s.URL+"/admin/audit?type=user.disable&user="+user), chromedp.WaitVisible(chromedp.ID("records")))
			check("audit")
			if v := text("records"); !strings.Contains(v, "user.disable") || !strings.Contains(v, adminID+"@example.com") || !strings.Contains(v, "user "+user) {
				t.Errorf("audit view of %s's disable: %q", user, v)
			}
			if v := text("verified"); !strings.Contains(v, "the hash chain is intact") {
				t.Errorf("verification status %q", v)
			}

			step("traffic", chromedp.Navigate(s.URL+"/admin/traffic"), chromedp.WaitVisible(chromedp.CSS("#chart-bytes svg.chart")))
			check("traffic")
			if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.chart polyline").length`)); n != 4 {
				t.Errorf("%d chart lines, want 4 (sent, received, flows, denied)", n)
			}
			if v := text("talkers"); !strings.Contains(v, "dora@example.com") {
				t.Errorf("top talkers %q", v)
			}
			step("traffic range", chromedp.SetValue(chromedp.ID("range"), "90d"), chromedp.Click(chromedp.ID("show")),
				chromedp.WaitReady(chromedp.CSS(`#range option[value="90d"][selected]`)))
			check("traffic-90d")

			step("reports", chromedp.Navigate(s.URL+"/admin/reports"), chromedp.WaitVisible(chromedp.ID("report-rows")))
			check("reports")
			if v := text("report-rows"); !strings.Contains(v, "pete@example.com") || !strings.Contains(v, "10.20.0.5") {
				t.Errorf("access report %q", v)
			}
			step("unused report", chromedp.Navigate(s.URL+"/admin/reports?kind=unused"), chromedp.WaitVisible(chromedp.ID("unused-rules")))
			check("reports-unused")

			step("profiles", chromedp.Navigate(s.URL+"/admin/profiles"), chromedp.WaitVisible(chromedp.ID("rules-eng")))
			check("profiles")
			if v := text("rules-eng"); !strings.Contains(v, "10.20.0.0/16") || !strings.Contains(v, "tcp") {
				t.Errorf("rules of eng: %q", v)
			}
			step("edit", chromedp.Click(chromedp.ID("edit")), chromedp.WaitVisible(chromedp.ID("file")))
			check("edit")
			bad := strings.Replace(narrowYAML, "protocol: tcp", "protocol: tcpp", 1)
			step("bad file", chromedp.SetValue(chromedp.ID("file"), bad), chromedp.Click(chromedp.ID("preview")), chromedp.WaitVisible(chromedp.ID("bad-line")))
			check("edit-error")
			if v := text("bad-line"); !strings.Contains(v, "4: ") || !strings.Contains(v, "tcpp") {
				t.Errorf("bad line %q, want line 4 with tcpp", v)
			}
			if v := text("error"); !strings.HasPrefix(v, "Line 4:") {
				t.Errorf("error %q", v)
			}
			good := narrowYAML
			if size.Phone {
				good = strings.Replace(narrowYAML, "    rules:", "    description: engineers\n    rules:", 1)
			}
			step("preview", chromedp.SetValue(chromedp.ID("file"), good), chromedp.Click(chromedp.ID("preview")), chromedp.WaitVisible(chromedp.ID("apply")))
			check("preview")
			if v := text("plan"); !strings.Contains(v, "profile eng") {
				t.Errorf("plan %q", v)
			}
			step("apply", chromedp.Click(chromedp.ID("apply")), chromedp.WaitVisible(chromedp.ID("notice")))
			if p, err := s.Profiles.Get(bg(t), "eng"); err != nil || len(p.Rules[0].Ports) != 1 || (size.Phone && p.Description != "engineers") {
				t.Errorf("eng after apply in the browser: %+v %v", p, err)
			}
			if v := csp.violations(); len(v) > 0 {
				t.Errorf("CSP violations: %v", v)
			}
		})
	}
}
