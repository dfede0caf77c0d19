package tunnel

import (
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/profiles"
)

// TestPublishStatsAllocs checks that the reconciler's poll, publishing
// 1,000 peers' counters every 2 s, allocates the snapshot and not a text
// form of every peer's key each time: those strings were most of what a
// 1,000-peer gateway allocated beyond a 1-peer one (BenchmarkIPv6CPU's
// allocation profile), and every allocation brings the next collection of
// a heap that 1,000 peers make expensive to mark.
func TestPublishStatsAllocs(t *testing.T) {
	peers := make([]wgtypes.Peer, 1000)
	byKey := map[wgtypes.Key]*profiles.Peer{}
	for i := range peers {
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		peers[i] = wgtypes.Peer{PublicKey: k.PublicKey(), ReceiveBytes: int64(i), LastHandshakeTime: time.Unix(int64(1e9+i), 0)}
		byKey[peers[i].PublicKey] = &profiles.Peer{ID: "p"}
	}
	var dst atomic.Pointer[NodePeerStats]
	names := keyNames{}
	at := time.Unix(2e9, 0)
	publishStats(&dst, "n1", at, peers, byKey, names)
	first := *dst.Load()
	allocs := testing.AllocsPerRun(10, func() {
		publishStats(&dst, "n1", at, peers, byKey, names)
	})
	// The snapshot, its slice of counters, the sort: a handful, not one
	// or two per peer.
	if allocs > 10 {
		t.Errorf("publishing 1,000 peers' counters: %.0f allocations, want at most 10", allocs)
	}
	got := *dst.Load()
	if len(got.Peers) != len(first.Peers) {
		t.Fatalf("%d peers published, then %d", len(first.Peers), len(got.Peers))
	}
	for i := range got.Peers {
		if got.Peers[i] != first.Peers[i] {
			t.Fatalf("peer %d: %+v, then %+v", i, first.Peers[i], got.Peers[i])
		}
		k, err := wgtypes.ParseKey(got.Peers[i].PublicKey)
		if err != nil || byKey[k] == nil {
			t.Fatalf("peer %d: key %q is not one of the device's (%v)", i, got.Peers[i].PublicKey, err)
		}
	}
	// Keys of peers gone do not accumulate.
	for range 5 {
		for i := range peers {
			k, _ := wgtypes.GeneratePrivateKey()
			peers[i].PublicKey = k.PublicKey()
		}
		publishStats(&dst, "n1", at, peers, byKey, names)
	}
	if len(names) > 3*len(peers) {
		t.Errorf("the key names hold %d keys for a device of %d peers", len(names), len(peers))
	}
}
