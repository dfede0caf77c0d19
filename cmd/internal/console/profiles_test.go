package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/console"
)

// recordFlows puts accepted flow records of eng in the journal: dora and
// pete reached 10.20.0.5:8080, erin only 10.20.0.7:22.
func recordFlows(t testing.TB, s *apitest.Server) {
	t.Helper()
	at := time.Now().Add(-2 * time.Hour).UTC()
	for _, f := range []struct {
		user string
		dst  string
		port int
	}{{"dora", "10.20.0.5", 8080}, {"pete", "10.20.0.5", 8080}, {"erin", "10.20.0.7", 22}, {"dora", "10.20.0.7", 22}} {
		if _, err := s.Users.Upsert(bg(t), authn.Identity{UserID: f.user, Email: f.user + "@example.com", Groups: []string{"engineering"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Audit.Record(bg(t), audit.Event{Type: audit.TypeFlowAccept, Time: at, Outcome: audit.Success,
			Actor:   audit.Actor{UserID: f.user, Email: f.user + "@example.com"},
			Target:  audit.Target{Profile: "eng", DstAddr: f.dst, Protocol: "tcp", DstPort: f.port},
			Details: map[string]string{"flows": "3", "first": at.Format(time.RFC3339Nano), "last": at.Format(time.RFC3339Nano)}}); err != nil {
			t.Fatal(err)
		}
	}
}

// narrowYAML drops eng's ports 8000-8080: dora and pete would lose what
// they used; erin's port 22 stays.
const narrowYAML = `profiles:
  - name: eng
    rules:
      - {cidr: 10.20.0.0/16, protocol: tcp, ports: [22]}
    groups: [engineering]
`

var previewField = regexp.MustCompile(`name="preview" value="([0-9a-f]+)"`)

// TestProfileEditPreviewApply: a bad file is shown again with the error
// at its line and changes nothing; a good one is previewed (the plan,
// who would lose what in the replay of the last 7 days: exactly dora and
// pete) before it can be applied; apply needs the preview's token for
// this very file, and a fresh TOTP code, then the store has the change.
func TestProfileEditPreviewApply(t *testing.T) {
	s := apitest.Start(t)
	tok := s.Token(t, adminID)
	code := enroll(t, s, adminID)
	if _, err := s.Profiles.Put(bg(t), engProfile(t, s), nil, audit.Actor{UserID: "setup"}); err != nil {
		t.Fatal(err)
	}
	recordFlows(t, s)
	now := time.Now()
	base, ca := serveConsole(t, s, func(c *console.Config) {
		c.StepUpWindow = 5 * time.Minute
		c.Now = func() time.Time { return now.Add(6 * time.Minute) }
	})
	b := newBrowser(t, base, ca, tok)
	csrf := b.csrf("/admin/profiles/edit")
	_, page := b.do(http.MethodGet, "/admin/profiles/edit", nil)
	if !strings.Contains(page, "10.20.0.0/16") || !strings.Contains(page, "8000-8080") {
		t.Fatalf("the editor does not start from the stored profiles:\n%s", page)
	}

	bad := strings.Replace(narrowYAML, "ports: [22]", "ports: [22, 70000]", 1)
	resp, page := b.do(http.MethodPost, "/admin/profiles/edit", url.Values{"csrf": {csrf}, "file": {bad}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="bad-line"`) || !strings.Contains(page, "Line 4:") ||
		!regexp.MustCompile(`id="bad-line"[^>]*><span class="sr-only">Error on line </span>4: `).MatchString(page) {
		t.Fatalf("bad file: %d, want 422 with the error at line 4:\n%s", resp.StatusCode, page)
	}
	if strings.Contains(page, `name="preview"`) || strings.Contains(page, `id="apply"`) {
		t.Error("a bad file offers Apply")
	}

	resp, page = b.do(http.MethodPost, "/admin/profiles/edit", url.Values{"csrf": {csrf}, "file": {narrowYAML}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "~ profile eng: rules") {
		t.Fatalf("preview: %d\n%s", resp.StatusCode, page)
	}
	deny := regexp.MustCompile(`(?s)<table class="would-deny">.*?</table>`).FindString(page)
	rows := regexp.MustCompile(`<tr><td>([^<]+)</td><td>([^<]+)</td><td>tcp</td><td>(\d+)</td>`).FindAllStringSubmatch(deny, -1)
	var got []string
	for _, r := range rows {
		got = append(got, r[1]+" "+r[2]+":"+r[3])
	}
	if want := "dora@example.com 10.20.0.5:8080,pete@example.com 10.20.0.5:8080"; strings.Join(got, ",") != want {
		t.Errorf("would deny %v, want %s\n%s", got, want, deny)
	}
	m := previewField.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `name="totp"`) {
		t.Fatalf("the preview offers no Apply with a code:\n%s", page)
	}
	stored := func() string {
		p, err := s.Profiles.Get(bg(t), "eng")
		if err != nil {
			t.Fatal(err)
		}
		var ports []string
		for _, pr := range p.Rules[0].Ports {
			ports = append(ports, pr.String())
		}
		return strings.Join(ports, ",")
	}
	for name, f := range map[string]url.Values{
		"no preview":         {"csrf": {csrf}, "file": {narrowYAML}, "totp": {code(time.Now())}},
		"another file":       {"csrf": {csrf}, "file": {strings.Replace(narrowYAML, "[22]", "[23]", 1)}, "preview": {m[1]}},
		"no code":            {"csrf": {csrf}, "file": {narrowYAML}, "preview": {m[1]}},
		"cross-origin token": {"csrf": {"00"}, "file": {narrowYAML}, "preview": {m[1]}},
	} {
		if resp, _ := b.do(http.MethodPost, "/admin/profiles/apply", f); resp.StatusCode == http.StatusOK {
			t.Errorf("%s: applied", name)
		}
		if got := stored(); got != "22,8000-8080" {
			t.Fatalf("%s: the store changed to %s", name, got)
		}
	}
	// The "no preview" case used this step's code; the next step's is
	// fresh.
	resp, page = b.do(http.MethodPost, "/admin/profiles/apply", url.Values{"csrf": {csrf}, "file": {narrowYAML}, "preview": {m[1]}, "totp": {code(time.Now().Add(30 * time.Second))}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "The profiles are applied") {
		t.Fatalf("apply: %d\n%s", resp.StatusCode, page)
	}
	if got := stored(); got != "22" {
		t.Fatalf("after apply the store has ports %s, want 22", got)
	}
	if !auditHas(t, s, string(audit.TypeProfileChange), func(e *audit.Event) bool {
		return e.Actor.UserID == "admin" && e.Action == "profile.put" && e.Target.Profile == "eng"
	}) {
		t.Error("no admin profile event for the apply")
	}
}
