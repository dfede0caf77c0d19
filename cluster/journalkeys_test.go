package cluster_test

import (
	"slices"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

// A follower's keyed append is forwarded and its repeat dropped by every
// node alike: the journals stay identical.
func TestAppendKeyedThroughFollower(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	leader := c.Leader(5 * time.Second)
	f := c.Node((leader + 1) % 3)
	ctx := ctxT(t, 30*time.Second)
	recs := []cluster.KeyedRecord{{Key: []byte("ev-1"), Data: []byte("one")}, {Key: []byte("ev-2"), Data: []byte("two")}}
	first, err := f.AppendKeyed(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.AppendKeyed(ctx, append(recs, cluster.KeyedRecord{Key: []byte("ev-3"), Data: []byte("three")}))
	if err != nil {
		t.Fatal(err)
	}
	if again.Duplicates != 2 || !slices.Equal(again.Seqs[:2], first.Seqs) || again.Seqs[2] != first.Seqs[1]+1 {
		t.Fatalf("repeat through follower: first %+v, again %+v", first, again)
	}
	c.WaitConverged(10 * time.Second)
	for i := 0; i < 3; i++ {
		head, _, err := c.Node(i).JournalHead()
		if err != nil || head != again.Seqs[2] {
			t.Fatalf("node %d journal head %d (%v), want %d", i, head, err, again.Seqs[2])
		}
	}
}
