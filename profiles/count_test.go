package profiles_test

import (
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// TestCountValid: CountValid counts what Peers lists as valid: not a
// revoked peer, not an expired one.
func TestCountValid(t *testing.T) {
	e := newEnv(t, 3, "100.64.0.0/24")
	e.putProfile(t, "eng", "engineering")
	alice := session("alice", "engineering")
	var ids []string
	for _, dev := range []string{"laptop", "phone", "tablet"} {
		p, _, err := e.stores[0].Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: dev})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	root := audit.Actor{UserID: "root", Role: authn.RoleAdmin}
	if err := e.stores[1].RevokePeer(ctx(t), ids[0], "lost", root); err != nil {
		t.Fatal(err)
	}
	valid := true
	check := func(want int) {
		t.Helper()
		for i, s := range e.stores {
			ps, err := s.Peers(ctx(t), profiles.PeerFilter{Valid: &valid})
			if err != nil {
				t.Fatal(err)
			}
			n, err := s.CountValid(ctx(t))
			if err != nil || n != want || n != len(ps) {
				t.Errorf("node %d: CountValid = %d, %v; want %d (Peers lists %d)", i, n, err, want, len(ps))
			}
		}
	}
	e.c.WaitConverged(10 * time.Second) // Peers and CountValid read local state
	check(2)
	e.clock.Advance(400 * 24 * time.Hour) // every peer expired
	check(0)
}
