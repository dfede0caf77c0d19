package api_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cmd/internal/api"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// The leader takes a forwarded membership change or restore only with an
// administrator's session as proof: no proof, a made-up token, or a
// plain user's session is refused.
func TestClusterAuthorizer(t *testing.T) {
	ss := apitest.StartCluster(t, 1)
	s := ss[0]
	authorize := api.ClusterAuthorizer(func() *admit.Admitter { return s.Admit }, func() *authn.Sessions { return s.Sessions })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, proof := range map[string]string{
		"none":             "",
		"made-up session":  "session:" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"a user's session": "session:" + s.Token(t, authn.Identity{UserID: "mallory"}),
		"not a proof":      "root please",
	} {
		for _, op := range []string{"remove", "restore", "add_voter", "add_nonvoter"} {
			if _, err := authorize(ctx, cluster.AuthRequest{Peer: "n2", Op: op, Target: "n3", Proof: []byte(proof)}); !errors.Is(err, api.ErrNoAdminProof) {
				t.Errorf("%s, %s: got %v, want ErrNoAdminProof", name, op, err)
			}
		}
	}
	actor, err := authorize(ctx, cluster.AuthRequest{Peer: "n2", Op: "remove", Target: "n3", Proof: []byte("session:" + s.Admin(t))})
	if err != nil || actor == "" {
		t.Fatalf("administrator's session: actor %q, err %v", actor, err)
	}
}
