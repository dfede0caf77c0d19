package continuous_test

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// TestConsoleDisableCutsTheTunnel: an administrator disables a person in
// the admin console of one node (confirmation page, form token, Origin,
// a TOTP fresh from sign-in); her WireGuard client in its own namespace,
// connected through another node, loses its tunnel on every node, and
// the console's audit view shows the event.
func TestConsoleDisableCutsTheTunnel(t *testing.T) {
	e := startEnv(t, testUsers)
	alice := e.signIn("alice", 1)
	peer, key := e.issue(alice, 2, "laptop")
	e.client.Must(t, tunneltest.Request{Op: "wgup", WG: &tunneltest.WGClient{Interface: e.cliIf, PrivateKey: key.String(),
		Address: peer.Address.String(), ServerKey: e.srvKey.PublicKey().String(), Endpoint: "10.210.0.1:51820",
		AllowedIPs: []string{"10.99.0.0/24"}}})
	probe := func() error {
		_, err := e.client.Do(tunneltest.Request{Op: "probe", Proto: "tcp", Addr: "10.99.0.1:7001", Timeout: 500 * time.Millisecond})
		return err
	}
	clustertest.WaitFor(t, 30*time.Second, "alice's tunnel carries TCP to 10.99.0.1:7001", probe)

	root := authn.Identity{Issuer: opIssuer, Subject: "root-console", Email: "root@example.com", EmailVerified: true, Name: "Root", Groups: []string{"eng", adminGroup}}
	b, _ := json.Marshal(root)
	root.UserID = e.nodes[0].Must(t, tunneltest.Request{Op: "access.upsert", Value: b}).Text
	b, _ = json.Marshal(root)
	tok := e.nodes[0].Must(t, tunneltest.Request{Op: "access.session", Value: b}).Text
	page := func(method, path string, form url.Values) (string, string) {
		t.Helper()
		var body []byte
		if form != nil {
			body = []byte(form.Encode())
		}
		out := e.nodes[0].Must(t, tunneltest.Request{Op: "access.console", Key: method + " " + path, ID: tok, Value: body}).Text
		status, html, _ := strings.Cut(out, "\n")
		return status, html
	}
	path := "/admin/people/" + url.PathEscape(alice.UserID) + "/disable"
	status, html := page("GET", path, nil)
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(html)
	if status != "200" || m == nil {
		t.Fatalf("confirmation page: %s\n%s", status, html)
	}
	start := time.Now()
	if status, html = page("POST", path, url.Values{"csrf": {m[1]}}); status != "200" || !strings.Contains(html, "is disabled") {
		t.Fatalf("disable: %s\n%s", status, html)
	}
	worst, err := e.goneEverywhere(peer.Address.String(), start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURED: console disable to the client gone from all three nodes' client maps: %s", worst.Round(time.Millisecond))
	if err := probe(); err == nil {
		t.Error("a new connection through the disabled person's tunnel succeeded")
	}
	if status, html = page("GET", "/admin/audit?type=user.disable&user="+url.QueryEscape(alice.UserID), nil); status != "200" ||
		!strings.Contains(html, "user.disable") || !strings.Contains(html, "root@example.com") || !strings.Contains(html, "1 matching record") {
		t.Errorf("the console's audit view after the disable: %s\n%s", status, html)
	}
}
