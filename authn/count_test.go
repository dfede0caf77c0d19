package authn_test

import (
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
)

// TestCounts: Users.Count counts every user and Sessions.Count only the
// valid sessions, as List does: not an idle one, not a revoked one.
func TestCounts(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	for _, u := range []string{"alice", "bob", "carol"} {
		if _, err := e.users[0].Upsert(ctx, authn.Identity{UserID: u}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := e.sess[0].Create(ctx, authn.Identity{UserID: "alice"}, authn.MethodTOTP, testSrc); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(50 * time.Minute)
	if _, _, err := e.sess[1].Create(ctx, authn.Identity{UserID: "bob"}, authn.MethodTOTP, testSrc); err != nil {
		t.Fatal(err)
	}
	_, carol, err := e.sess[1].Create(ctx, authn.Identity{UserID: "carol"}, authn.MethodTOTP, testSrc)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sess[2].Revoke(ctx, carol.ID, admin); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(20 * time.Minute) // alice's session is idle now, bob's is not
	for i := range 3 {
		n, err := e.users[i].Count(ctx)
		if err != nil || n != 3 {
			t.Errorf("node %d: Users.Count = %d, %v; want 3", i, n, err)
		}
		all, err := e.sess[i].List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		n, err = e.sess[i].Count(ctx)
		if err != nil || n != 1 || n != len(all) {
			t.Errorf("node %d: Sessions.Count = %d, %v; want 1 (List has %d)", i, n, err, len(all))
		}
	}
}
