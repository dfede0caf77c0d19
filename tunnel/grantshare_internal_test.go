package tunnel

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

// TestGrantShareWakesOnlyForWork: the sharer's writer wakes when an offer
// leaves a grant to write, not otherwise; an idle gateway with the DNS
// forwarder on has no timer running for it (it had a 100 ms ticker).
func TestGrantShareWakesOnlyForWork(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	grace := time.Minute
	s := newGrantSharer(nil, nil, grace, slog.New(slog.DiscardHandler))
	s.now = func() time.Time { return now }
	woken := func() bool {
		select {
		case <-s.wake:
			return true
		default:
			return false
		}
	}
	a := netip.MustParseAddr("192.0.2.1")
	if woken() {
		t.Fatal("a new sharer is woken with nothing to share")
	}
	s.offer("p1", "db.example", map[netip.Addr]time.Time{a: now.Add(grace)})
	if !woken() {
		t.Fatal("a grant to share did not wake the writer")
	}
	if woken() {
		t.Fatal("the writer was woken twice for one grant")
	}
	// The cluster holds the grant already (as after a write or from the
	// watch): an answer extending it by less than half the grace is not
	// written and wakes nothing.
	s.pending = map[string]sharedGrant{}
	s.known[grantKeyName("p1", "db.example")] = sharedGrant{Peer: "p1", Name: "db.example", Until: map[netip.Addr]time.Time{a: now.Add(grace)}}
	s.offer("p1", "db.example", map[netip.Addr]time.Time{a: now.Add(grace + grace/4)})
	if woken() || len(s.pending) != 0 {
		t.Fatalf("an extension within half the grace woke the writer (pending %v)", s.pending)
	}
	s.offer("p1", "db.example", map[netip.Addr]time.Time{a: now.Add(2 * grace)})
	if !woken() || len(s.pending) != 1 {
		t.Fatalf("an extension by more than half the grace did not wake the writer (pending %v)", s.pending)
	}
}
