package continuous_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// scim sends one SCIM request through node i's SCIM service and returns
// the status and body.
func (e *env) scim(tok string, node int, method, path, body string) (int, string) {
	e.t.Helper()
	text := e.nodes[node].Must(e.t, tunneltest.Request{Op: "access.scim", Key: method + " /scim/v2" + path, ID: tok, Value: []byte(body)}).Text
	code, rest, _ := strings.Cut(text, "\n")
	var status int
	fmt.Sscan(code, &status)
	return status, rest
}

// The identity provider deprovisions a signed-in user over SCIM, in
// Okta's PATCH shape, through one node: the user's open TCP connection
// through the tunnel is cut and the client leaves every node's client
// map, their sessions end, and another user is untouched.
func TestSCIMDeactivateCutsTheTunnel(t *testing.T) {
	e := startEnv(t, testUsers)
	alice := e.signIn("alice", 1)
	carol := e.signIn("carol", 2)
	tok := e.nodes[0].Must(t, tunneltest.Request{Op: "access.scimtoken"}).Text

	// The provider provisions alice (externalId = her subject), as Okta
	// does after assignment; she keeps her sign-in groups (no SCIM groups).
	status, body := e.scim(tok, 0, "POST", "/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName":%q,"externalId":%q,"active":true,"emails":[{"value":%q,"primary":true,"type":"work"}]}`, alice.Email, alice.Subject, alice.Email))
	if status != 201 {
		t.Fatalf("SCIM create: %d %s", status, body)
	}
	var created struct{ ID string }
	json.Unmarshal([]byte(body), &created)

	peer, key := e.issue(alice, 2, "laptop")
	other, _ := e.issue(carol, 0, "laptop")
	e.client.Must(t, tunneltest.Request{Op: "wgup", WG: &tunneltest.WGClient{Interface: e.cliIf, PrivateKey: key.String(),
		Address: peer.Address.String(), ServerKey: e.srvKey.PublicKey().String(), Endpoint: "10.210.0.1:51820",
		AllowedIPs: []string{"10.99.0.0/24"}}})
	clustertest.WaitFor(t, 30*time.Second, "alice's tunnel carries TCP to 10.99.0.1:7001", func() error {
		_, err := e.client.Do(tunneltest.Request{Op: "probe", Proto: "tcp", Addr: "10.99.0.1:7001", Timeout: 500 * time.Millisecond})
		return err
	})
	held := e.client.Must(t, tunneltest.Request{Op: "hold", Addr: "10.99.0.1:7001"}).Conn
	cut := make(chan tunneltest.Response, 1)
	go func() {
		r, _ := e.client.Do(tunneltest.Request{Op: "watchcut", Conn: held, Timeout: 15 * time.Second})
		cut <- r
	}()

	start := time.Now()
	status, body = e.scim(tok, 1, "PATCH", "/Users/"+created.ID,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`)
	if status != 200 || !strings.Contains(body, `"active":false`) {
		t.Fatalf("SCIM PATCH active=false: %d %s", status, body)
	}
	worst, err := e.goneEverywhere(peer.Address.String(), start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURED: SCIM active=false to the client gone from all three nodes' client maps: %s", worst.Round(time.Millisecond))
	r := <-cut
	if r.Err != "" || r.FirstFail.IsZero() {
		t.Fatalf("the open TCP connection through the tunnel was not cut: %+v", r)
	}
	t.Logf("MEASURED: SCIM active=false to the open connection cut: <= %s", r.FirstFail.Sub(start).Round(time.Millisecond))
	if _, err := e.client.Do(tunneltest.Request{Op: "probe", Proto: "tcp", Addr: "10.99.0.1:7001", Timeout: 500 * time.Millisecond}); err == nil {
		t.Error("a new connection through the deprovisioned user's tunnel succeeded")
	}
	var got profiles.Peer
	json.Unmarshal([]byte(e.nodes[0].Must(t, tunneltest.Request{Op: "access.peer", ID: peer.ID}).Text), &got)
	if got.Revoked == nil || !strings.Contains(got.RevokedReason, "disabled by scim") {
		t.Errorf("alice's peer: revoked %v, reason %q", got.Revoked, got.RevokedReason)
	}
	var carols profiles.Peer
	json.Unmarshal([]byte(e.nodes[2].Must(t, tunneltest.Request{Op: "access.peer", ID: other.ID}).Text), &carols)
	if carols.ID != other.ID || carols.Revoked != nil {
		t.Errorf("carol's peer: %+v: want untouched", carols)
	}
	// Her sessions are gone too: a new one is refused.
	b, _ := json.Marshal(alice)
	if _, err := e.nodes[0].Do(tunneltest.Request{Op: "access.session", Value: b}); err == nil {
		t.Error("a deprovisioned user got a new session")
	}
}
