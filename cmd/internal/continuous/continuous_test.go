package continuous_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/devop"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

var testUsers = []devop.User{
	{Username: "alice", Password: "alice", Name: "Alice", Groups: []string{"eng"}},
	{Username: "carol", Password: "carol", Name: "Carol", Groups: []string{"eng"}},
	{Username: "root", Password: "root", Name: "Root", Groups: []string{"eng", adminGroup}},
}

// A group removed at the identity provider ends the user's tunnel on
// every node within one revalidation: the refreshed ID token reaches the
// user record, the entitlement watcher on the leader revokes the peer,
// and every node's data plane drops the client and cuts the open TCP
// connection. Another user of the same profile keeps hers. An
// administrator removed from the admin group at the provider loses the
// role on the session she already has.
func TestGroupRemovalAtTheIdPCutsTheTunnel(t *testing.T) {
	e := startEnv(t, testUsers)
	alice := e.signIn("alice", 1)
	carol := e.signIn("carol", 2)
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

	// At the OP: alice leaves eng. One revalidation interval later...
	if err := e.op.SetGroups("alice", []string{"staff"}); err != nil {
		t.Fatal(err)
	}
	e.nodes[1].Must(t, tunneltest.Request{Op: "access.advance", Timeout: authn.DefaultRevalidateInterval + time.Second})
	cut := make(chan tunneltest.Response, 1)
	go func() {
		r, _ := e.client.Do(tunneltest.Request{Op: "watchcut", Conn: held, Timeout: 15 * time.Second})
		cut <- r
	}()
	start := time.Now()
	var rep authn.RevalidateReport
	if err := json.Unmarshal([]byte(e.nodes[1].Must(t, tunneltest.Request{Op: "access.revalidate"}).Text), &rep); err != nil || rep.OK < 1 {
		t.Fatalf("revalidation round: %+v, %v", rep, err)
	}
	worst, err := e.goneEverywhere(peer.Address.String(), start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURED: revalidation to the client gone from all three nodes' client maps: %s", worst.Round(time.Millisecond))
	r := <-cut
	if r.Err != "" || r.FirstFail.IsZero() {
		t.Fatalf("the open TCP connection through the tunnel was not cut: %+v", r)
	}
	t.Logf("MEASURED: revalidation to the open connection cut: <= %s", r.FirstFail.Sub(start).Round(time.Millisecond))
	var got profiles.Peer
	json.Unmarshal([]byte(e.nodes[0].Must(t, tunneltest.Request{Op: "access.peer", ID: peer.ID}).Text), &got)
	if got.Revoked == nil || !strings.Contains(got.RevokedReason, "removed: eng") || !strings.Contains(got.RevokedReason, "identity provider") {
		t.Errorf("peer after revalidation: revoked %v, reason %q", got.Revoked, got.RevokedReason)
	}
	if _, err := e.client.Do(tunneltest.Request{Op: "probe", Proto: "tcp", Addr: "10.99.0.1:7001", Timeout: 500 * time.Millisecond}); err == nil {
		t.Error("a new connection through the revoked tunnel succeeded")
	}
	var carols profiles.Peer
	json.Unmarshal([]byte(e.nodes[2].Must(t, tunneltest.Request{Op: "access.peer", ID: other.ID}).Text), &carols)
	if carols.ID != other.ID || carols.Revoked != nil {
		t.Errorf("carol's peer: %+v: want untouched", carols)
	}

	// The administrator demoted at the OP: her live session loses the
	// role at the next request, on every node.
	root := e.signIn("root", 0)
	b, _ := json.Marshal(root)
	tok := e.nodes[0].Must(t, tunneltest.Request{Op: "access.session", Value: b}).Text
	if role := e.nodes[2].Must(t, tunneltest.Request{Op: "access.validate", Key: tok}).Text; role != authn.RoleAdmin {
		t.Fatalf("root's session role %q", role)
	}
	if err := e.op.SetGroups("root", []string{"eng"}); err != nil {
		t.Fatal(err)
	}
	e.nodes[0].Must(t, tunneltest.Request{Op: "access.advance", Timeout: authn.DefaultRevalidateInterval + time.Second})
	e.nodes[0].Must(t, tunneltest.Request{Op: "access.revalidate"})
	for i, a := range e.nodes {
		if role := a.Must(t, tunneltest.Request{Op: "access.validate", Key: tok}).Text; role != authn.RoleUser {
			t.Errorf("node %d: the demoted administrator's session still has role %q", i+1, role)
		}
	}
}
