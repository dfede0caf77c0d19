package continuous_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// narrowEng is profile eng without port 7002.
const narrowEng = `profiles:
  - name: eng
    rules:
      - {cidr: 10.99.0.1/32, protocol: tcp, ports: [7001]}
    max_session: 1h
    max_devices: 5
    groups: [eng]
`

// TestConsoleProfileApplyReachesEveryNode: an administrator edits
// profile eng in the admin console of one node, dropping port 7002 that
// alice's WireGuard client uses: the preview, then Apply, which (the
// sign-in's code being older than the step-up window) needs a fresh TOTP
// code. Afterwards the store on another node has the change, and through
// each of the three nodes (the client's endpoint moved from one to the
// next) port 7002 is refused while port 7001 still works.
func TestConsoleProfileApplyReachesEveryNode(t *testing.T) {
	e := startEnv(t, testUsers)
	wide := profiles.Profile{Name: "eng", MaxSession: time.Hour, MaxDevices: 5, Groups: []string{"eng"},
		Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.99.0.1/32"), Protocol: "tcp", Ports: []profiles.PortRange{{From: 7001, To: 7002}}}}}
	data, err := json.Marshal(wide)
	if err != nil {
		t.Fatal(err)
	}
	e.nodes[0].Must(t, tunneltest.Request{Op: "put", Key: profiles.ProfilePrefix + "eng", Value: data})
	alice := e.signIn("alice", 1)
	peer, key := e.issue(alice, 2, "laptop")
	e.client.Must(t, tunneltest.Request{Op: "wgup", WG: &tunneltest.WGClient{Interface: e.cliIf, PrivateKey: key.String(),
		Address: peer.Address.String(), ServerKey: e.srvKey.PublicKey().String(), Endpoint: "10.210.0.1:51820",
		AllowedIPs: []string{"10.99.0.0/24"}}})
	probe := func(port int) error {
		_, err := e.client.Do(tunneltest.Request{Op: "probe", Proto: "tcp", Addr: fmt.Sprintf("10.99.0.1:%d", port), Timeout: 500 * time.Millisecond})
		return err
	}
	for _, port := range []int{7001, 7002} {
		clustertest.WaitFor(t, 30*time.Second, fmt.Sprintf("alice's tunnel carries TCP to 10.99.0.1:%d", port), func() error { return probe(port) })
	}

	// The administrator, enrolled for TOTP, signed in on node 1.
	root := authn.Identity{Issuer: opIssuer, Subject: "root-console", Email: "root@example.com", EmailVerified: true, Name: "Root", Groups: []string{"eng", adminGroup}}
	b, _ := json.Marshal(root)
	root.UserID = e.nodes[0].Must(t, tunneltest.Request{Op: "access.upsert", Value: b}).Text
	b, _ = json.Marshal(root)
	uri := e.nodes[0].Must(t, tunneltest.Request{Op: "access.enroll", Value: b}).Text
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
	status, html := page("GET", "/admin/profiles/edit", nil)
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(html)
	if status != "200" || m == nil || !strings.Contains(html, "7001-7002") {
		t.Fatalf("the profile editor: %s\n%s", status, html)
	}
	csrf := m[1]
	status, html = page("POST", "/admin/profiles/edit", url.Values{"csrf": {csrf}, "file": {narrowEng}})
	pm := previewToken.FindStringSubmatch(html)
	if status != "200" || !strings.Contains(html, "~ profile eng: rules") || pm == nil {
		t.Fatalf("the preview: %s\n%s", status, html)
	}
	stored := func(node int) string {
		var p profiles.Profile
		if err := json.Unmarshal([]byte(e.nodes[node].Must(t, tunneltest.Request{Op: "access.profile", Key: "eng"}).Text), &p); err != nil {
			t.Fatal(err)
		}
		var ports []string
		for _, r := range p.Rules {
			for _, pr := range r.Ports {
				ports = append(ports, pr.String())
			}
		}
		return strings.Join(ports, ",")
	}

	// The sign-in's code is now older than the step-up window (10
	// minutes) on node 1's clock: Apply without a code changes nothing.
	const ahead = 11 * time.Minute
	e.nodes[0].Must(t, tunneltest.Request{Op: "access.advance", Timeout: ahead})
	if status, html = page("POST", "/admin/profiles/apply", url.Values{"csrf": {csrf}, "file": {narrowEng}, "preview": {pm[1]}}); status != "401" ||
		!strings.Contains(html, "needs a fresh code") {
		t.Fatalf("apply without a code: %s, want 401 asking for a code\n%s", status, html)
	}
	if got := stored(0); got != "7001-7002" {
		t.Fatalf("apply without a code changed the store to %s", got)
	}
	code, err := authntest.TOTPCode(uri, time.Now().Add(ahead))
	if err != nil {
		t.Fatal(err)
	}
	if status, html = page("POST", "/admin/profiles/apply", url.Values{"csrf": {csrf}, "file": {narrowEng}, "preview": {pm[1]}, "totp": {code}}); status != "200" ||
		!strings.Contains(html, "The profiles are applied") {
		t.Fatalf("apply with a fresh code: %s\n%s", status, html)
	}

	// The store, read on node 3.
	clustertest.WaitFor(t, 10*time.Second, "node 3's store has eng with port 7001 only", func() error {
		if got := stored(2); got != "7001" {
			return fmt.Errorf("ports %s", got)
		}
		return nil
	})

	// The data plane of every node: the client's endpoint moves from
	// node to node, and the client's namespace drops WireGuard to and
	// from the other two (else a packet from the node it left would
	// roam it back); 7001 works through each (which also shows the
	// tunnel runs through it) and 7002 does not.
	wc, err := wgctrl.New()
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	nft := func(cmd string) { e.net.Must("ip", "netns", "exec", e.cliNS, "nft", cmd) }
	nft("add table inet faonly")
	nft("add chain inet faonly in { type filter hook input priority 0 ; }")
	nft("add chain inet faonly out { type filter hook output priority 0 ; }")
	for i := range e.nodes {
		ep := &net.UDPAddr{IP: net.IPv4(10, 210, 0, byte(i+1)), Port: 51820}
		nft("flush chain inet faonly in")
		nft("flush chain inet faonly out")
		for j := range e.nodes {
			if j != i {
				nft(fmt.Sprintf("add rule inet faonly in ip saddr 10.210.0.%d udp sport 51820 drop", j+1))
				nft(fmt.Sprintf("add rule inet faonly out ip daddr 10.210.0.%d udp dport 51820 drop", j+1))
			}
		}
		if err := wc.ConfigureDevice(e.cliIf, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: e.srvKey.PublicKey(), UpdateOnly: true, Endpoint: ep}}}); err != nil {
			t.Fatalf("moving the client to node %d: %v", i+1, err)
		}
		clustertest.WaitFor(t, 30*time.Second, fmt.Sprintf("node %d carries alice's TCP to 10.99.0.1:7001", i+1), func() error { return probe(7001) })
		d, err := wc.Device(e.cliIf)
		if err != nil || len(d.Peers) != 1 || d.Peers[0].Endpoint.String() != ep.String() {
			t.Fatalf("the client's endpoint is not node %d: %v %+v", i+1, err, d)
		}
		clustertest.WaitFor(t, 30*time.Second, fmt.Sprintf("node %d refuses alice's TCP to 10.99.0.1:7002", i+1), func() error {
			if probe(7002) == nil {
				return fmt.Errorf("a new connection to port 7002 through node %d succeeded", i+1)
			}
			return nil
		})
		clustertest.WaitFor(t, 30*time.Second, fmt.Sprintf("node %d still carries alice's TCP to 10.99.0.1:7001", i+1), func() error { return probe(7001) })
	}
}

var previewToken = regexp.MustCompile(`name="preview" value="([0-9a-f]+)"`)
