package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

// TestReadyAfterTheLeaderIsIsolated: Ready means this node knows a leader
// it is in touch with and has caught up with it. When the leader is cut
// off, each survivor stops reporting ready (it no longer hears the leader,
// and forgets the index the leader last gave it), and reports ready again
// only once it follows the new leader: a write through a survivor that
// reports ready then succeeds (issue: right after the leader was
// isolated, a survivor reporting ready still answered "not the leader").
func TestReadyAfterTheLeaderIsIsolated(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, WriteTimeout: clustertest.TimeScale * 3 * time.Second})
	old := c.Leader(10 * time.Second)
	oldID := c.ID(old)
	c.Net.Isolate(oldID)
	for k := 1; k <= 2; k++ {
		s := c.Node((old + k) % 3)
		clustertest.WaitFor(t, 10*time.Second, fmt.Sprintf("%s not ready once its leader is cut off", s.ID()), func() error {
			if s.Ready() == nil {
				lid, _ := s.Leader()
				return fmt.Errorf("still ready, following %q", lid)
			}
			return nil
		})
	}
	for k := 1; k <= 2; k++ {
		s := c.Node((old + k) % 3)
		clustertest.WaitFor(t, 30*time.Second, fmt.Sprintf("%s ready, following the new leader, and a write through it", s.ID()), func() error {
			if err := s.Ready(); err != nil {
				return err
			}
			if lid, _ := s.Leader(); lid == oldID || lid == "" {
				t.Fatalf("%s reports ready following %q, the isolated leader", s.ID(), lid)
			}
			ctx, cancel := context.WithTimeout(context.Background(), clustertest.TimeScale*3*time.Second)
			defer cancel()
			_, err := s.Put(ctx, "after-isolation/"+s.ID(), []byte("x"))
			if err != nil && s.Ready() != nil {
				return fmt.Errorf("leadership moved during the write: %w", err) // a new election under load: wait again
			}
			if errors.Is(err, cluster.ErrNotLeader) {
				t.Fatalf("%s reports ready, yet a write through it answers %v", s.ID(), err)
			}
			return err
		})
	}
}

// TestReadyForgetsWhenTheLeaderDoesNotAnswer: a follower that fails to
// reach its leader forgets the index the leader gave it before, even while
// Raft's last contact still looks recent, and reports ready again only on
// a fresh answer. Keeping it, a follower cut off and healed within the
// answer's validity reported ready 256 entries behind.
func TestReadyForgetsWhenTheLeaderDoesNotAnswer(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	leader := c.Leader(10 * time.Second)
	f := c.Node((leader + 1) % 3)
	clustertest.WaitFor(t, 10*time.Second, "the follower ready", f.Ready)
	c.Net.Isolate(f.ID())
	f.ProbeLeaderOnce() // cannot reach the leader
	if err := f.Ready(); err == nil {
		t.Fatal("ready after failing to reach its leader, on the index the leader gave before")
	}
	c.Net.Heal()
	clustertest.WaitFor(t, 10*time.Second, "the follower ready again, on a fresh answer", f.Ready)
}
