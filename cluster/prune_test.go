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

// A prune asked of a follower is forwarded to the leader and applied on
// every node: each journal holds the same stub and still verifies; a bad
// prune comes back as ErrInvalid through the forwarding too.
func TestPruneFromFollower(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, WriteTimeout: 10 * time.Second})
	leader := c.Leader(10 * time.Second)
	follower := c.Node((leader + 1) % 3)
	ctx := context.Background()
	var recs [][]byte
	for i := range 20 {
		recs = append(recs, fmt.Appendf(nil, "record %d", i))
	}
	if _, err := follower.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	res, err := follower.PruneJournal(ctx, []cluster.PruneRun{{First: 3, Last: 7}, {First: 10, Last: 10}})
	if err != nil || res.Removed != 6 || res.Runs != 2 {
		t.Fatalf("prune through a follower: %+v, %v", res, err)
	}
	if _, err := follower.PruneJournal(ctx, []cluster.PruneRun{{First: 5, Last: 6}}); !errors.Is(err, cluster.ErrInvalid) {
		t.Fatalf("pruning pruned records through a follower: %v, want ErrInvalid", err)
	}
	c.WaitConverged(20 * time.Second)
	for i := range 3 {
		n := c.Node(i)
		if got, err := n.VerifyJournal(); err != nil || got != 20 {
			t.Fatalf("node %d: %d records, %v", i, got, err)
		}
		rs, err := n.JournalRange(1, 100, 100)
		if err != nil || len(rs) != 16 || rs[2].Seq != 3 || rs[2].Pruned != 5 || rs[5].Seq != 10 || rs[5].Pruned != 1 {
			t.Fatalf("node %d: journal %+v, %v", i, rs, err)
		}
	}
}
