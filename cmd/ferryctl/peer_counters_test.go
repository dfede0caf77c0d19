package main

import (
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// TestPeerListCounters: `ferryctl peer list` asks every node of the
// cluster for its live WireGuard counters, through the node it is pointed
// at, with the administrator's session as proof (each node checks it); a
// non-administrator gets the peer list without them. The counters
// themselves come from real devices in tunnel's TestPeerStatsNetns.
func TestPeerListCounters(t *testing.T) {
	isolate(t)
	srvs := apitest.StartCluster(t, 3)
	srv := srvs[1]
	signIn(t, srv, srv.Admin(t))
	mustCtl(t, "profile", "create", "eng", "--rule", "10.0.0.0/16 tcp 22", "--group", "engineering")
	aliceTok := srv.Token(t, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"engineering"}})
	issue(t, srv, aliceTok, "laptop", "eng")

	var l wire.PeerList
	ctlJSON(t, &l, "peer", "list")
	if len(l.Peers) != 1 || len(l.Nodes) != 3 {
		t.Fatalf("peer list: %d peers, nodes %+v; want 1 peer and 3 nodes", len(l.Peers), l.Nodes)
	}
	seen := map[string]bool{}
	for _, n := range l.Nodes {
		seen[n.Node] = true
		if n.Error != "" {
			t.Errorf("node %s did not answer: %s", n.Node, n.Error)
		}
	}
	if l.Nodes[0].Node != srv.Cluster.ID(srv.Node) || len(seen) != 3 {
		t.Errorf("nodes: %+v (the asked node first, each once)", l.Nodes)
	}
	if out := mustCtl(t, "peer", "list"); !containsAll(out, "LIVE ON", "HANDSHAKE", "ENDPOINT", "RX", "TX") {
		t.Errorf("peer list table:\n%s", out)
	}

	own, err := userClient(t, srv, aliceTok).PeerList(t.Context(), client.PeerFilter{Counters: true})
	if err != nil || len(own.Peers) != 1 || own.Nodes != nil {
		t.Errorf("alice's own list with counters asked: %+v, %v (want her peer, no nodes asked)", own, err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
