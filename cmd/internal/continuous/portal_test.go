package continuous_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// TestPortalDeviceChoicesThroughTheDataPlane: the portal's two device
// decisions, through the domain calls its handlers make, checked with a
// WireGuard client in its own namespace. Reusing a device name used to
// replace the device's key without a word, so the phone that scanned the
// first QR code stopped connecting (issue); now the issuance asks first
// (KeepExisting), and declining leaves the old key working. Revoke in the
// portal (RevokeOwn) cuts that device's tunnel on every node.
func TestPortalDeviceChoicesThroughTheDataPlane(t *testing.T) {
	e := startEnv(t, testUsers)
	alice := e.signIn("alice", 1)
	peer, key := e.issue(alice, 2, "phone")
	e.client.Must(t, tunneltest.Request{Op: "wgup", WG: &tunneltest.WGClient{Interface: e.cliIf, PrivateKey: key.String(),
		Address: peer.Address.String(), ServerKey: e.srvKey.PublicKey().String(), Endpoint: "10.210.0.1:51820",
		AllowedIPs: []string{"10.99.0.0/24"}}})
	probe := func() error {
		_, err := e.client.Do(tunneltest.Request{Op: "probe", Proto: "tcp", Addr: "10.99.0.1:7001", Timeout: 500 * time.Millisecond})
		return err
	}
	clustertest.WaitFor(t, 30*time.Second, "the phone's tunnel carries TCP to 10.99.0.1:7001", probe)

	// A second profile under the same name, not yet agreed to: refused,
	// and the phone keeps working.
	other, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(issueReq{Identity: alice, PublicKey: other.PublicKey().String(), Device: "phone", KeepExisting: true})
	if _, err := e.nodes[0].Do(tunneltest.Request{Op: "access.issue", Value: b}); err == nil || !strings.Contains(err.Error(), "device name in use") {
		t.Fatalf("issuing over a working device without asking: %v", err)
	}
	if err := probe(); err != nil {
		t.Fatalf("after declining to replace it, the phone no longer connects: %v", err)
	}

	// Revoke in the portal: the tunnel is cut on every node.
	start := time.Now()
	e.nodes[1].Must(t, tunneltest.Request{Op: "access.revokeown", ID: peer.ID, Key: alice.UserID})
	worst, err := e.goneEverywhere(peer.Address.String(), start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURED: portal revoke to the client gone from all three nodes' client maps: %s", worst.Round(time.Millisecond))
	if err := probe(); err == nil {
		t.Error("a new connection through the revoked tunnel succeeded")
	}
}
