package tunnel_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/tunnel"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// peerStats asks agent a for every node's per-peer counters (the
// peer-stats cluster service), as an administrator unless noProof.
func peerStats(t *testing.T, a *tunneltest.Agent, noProof bool) map[string]tunnel.NodePeerStats {
	t.Helper()
	req := tunneltest.Request{Op: "peer_stats"}
	if noProof {
		req.Key = "noproof"
	}
	var nodes []tunnel.NodePeerStats
	if err := json.Unmarshal([]byte(a.Must(t, req).Text), &nodes); err != nil {
		t.Fatal(err)
	}
	out := map[string]tunnel.NodePeerStats{}
	for _, n := range nodes {
		out[n.Node] = n
	}
	return out
}

func statOf(n tunnel.NodePeerStats, key string) *tunnel.PeerStat {
	for i := range n.Peers {
		if n.Peers[i].PublicKey == key {
			return &n.Peers[i]
		}
	}
	return nil
}

// TestPeerStatsNetns: live per-peer counters (rx/tx, last handshake,
// endpoint) come from every node's WireGuard device, collected through the
// cluster from whichever node is asked: alice on the first gateway, bob
// moving to the second, each seen on the node that carries the tunnel.
// Without an administrator's proof the other node answers nothing.
func TestPeerStatsNetns(t *testing.T) {
	tp := startTopology(t)
	alice, bob := tp.alice.peer.PublicKey, tp.bob.peer.PublicKey
	waitFor(t, "c1 tcp 10.99.0.1:7001 through s1", 15*time.Second, probe(tp.c1, "tcp", "10.99.0.1:7001"))
	waitFor(t, "c2 tcp 10.99.0.1:7001 through s1", 15*time.Second, probe(tp.c2, "tcp", "10.99.0.1:7001"))
	tp.moveTo("10.200.0.1", "10.200.0.2")
	waitFor(t, "c2 through s2", 40*time.Second, probe(tp.c2, "tcp", "10.99.0.1:7001"))

	waitFor(t, "counters of both nodes, asked on s1", 20*time.Second, func() error {
		st := peerStats(t, tp.s1, false)
		n1, n2 := st["n1"], st["n2"]
		if n1.Err != "" || n2.Err != "" || len(st) != 2 {
			return fmt.Errorf("nodes: %+v", st)
		}
		a := statOf(n1, alice)
		if a == nil || a.LastHandshake.IsZero() || a.RxBytes == 0 || a.TxBytes == 0 || !strings.HasPrefix(a.Endpoint, "10.200.0.11:") || a.Peer != tp.alice.peer.ID {
			return fmt.Errorf("alice on n1: %+v", a)
		}
		b := statOf(n2, bob)
		if b == nil || b.LastHandshake.IsZero() || b.RxBytes == 0 || !strings.HasPrefix(b.Endpoint, "10.200.0.12:") || b.Peer != tp.bob.peer.ID {
			return fmt.Errorf("bob on n2: %+v", b)
		}
		if a2 := statOf(n2, alice); a2 != nil && !a2.LastHandshake.IsZero() {
			return fmt.Errorf("alice handshook with n2 too: %+v", a2)
		}
		return nil
	})
	if st := peerStats(t, tp.s2, false); statOf(st["n1"], alice) == nil || statOf(st["n2"], bob) == nil {
		t.Errorf("asked on s2: %+v", st)
	}

	st := peerStats(t, tp.s1, true)
	if st["n2"].Err == "" || len(st["n2"].Peers) != 0 {
		t.Errorf("n2 answered a call without an administrator's proof: %+v", st["n2"])
	}
}
