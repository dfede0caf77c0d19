package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// state is a node's full replicated state, for comparison.
type state struct {
	kvs     []cluster.KV
	journal []cluster.Record
}

func snapshotState(t *testing.T, n *cluster.Node) state {
	t.Helper()
	all, _, err := n.List(context.Background(), "", cluster.Local)
	if err != nil {
		t.Fatal(err)
	}
	// The cluster's own bookkeeping of membership (admitted and revoked
	// nodes) is written after a restore, on purpose: it is not data.
	var kvs []cluster.KV
	for _, kv := range all {
		if !strings.HasPrefix(kv.Key, "sys/cluster/") {
			kvs = append(kvs, kv)
		}
	}
	recs, err := n.JournalRange(1, ^uint64(0), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return state{kvs, recs}
}

func diffState(a, b state) error {
	if len(a.kvs) != len(b.kvs) {
		return fmt.Errorf("%d keys vs %d", len(a.kvs), len(b.kvs))
	}
	for i := range a.kvs {
		x, y := a.kvs[i], b.kvs[i]
		if x.Key != y.Key || x.Version != y.Version || !bytes.Equal(x.Value, y.Value) {
			return fmt.Errorf("key %d: %q@%d vs %q@%d", i, x.Key, x.Version, y.Key, y.Version)
		}
	}
	if len(a.journal) != len(b.journal) {
		return fmt.Errorf("%d journal records vs %d", len(a.journal), len(b.journal))
	}
	for i := range a.journal {
		if a.journal[i].Hash != b.journal[i].Hash {
			return fmt.Errorf("journal record %d differs", a.journal[i].Seq)
		}
	}
	return nil
}

// checkConsistent compares every running node's state and looks for every
// acknowledged write in it.
func checkConsistent(t *testing.T, c *clustertest.Cluster, acked map[string][]byte) {
	t.Helper()
	c.WaitConverged(10 * time.Second)
	var ref state
	first := true
	for i := 0; i < c.Len(); i++ {
		n := c.Node(i)
		if n == nil {
			continue
		}
		s := snapshotState(t, n)
		if first {
			ref, first = s, false
		} else if err := diffState(ref, s); err != nil {
			t.Fatalf("node %s differs from the first node: %v", c.ID(i), err)
		}
		if _, err := n.VerifyJournal(); err != nil {
			t.Fatalf("node %s: %v", c.ID(i), err)
		}
		have := map[string][]byte{}
		for _, kv := range s.kvs {
			have[kv.Key] = kv.Value
		}
		for k, v := range acked {
			if got, ok := have[k]; !ok || !bytes.Equal(got, v) {
				t.Fatalf("node %s lost acknowledged write %q (have %q, present %v)", c.ID(i), k, got, ok)
			}
		}
	}
}

// writer performs writes through one node and remembers what was acknowledged.
type acks struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (a *acks) put(t *testing.T, n *cluster.Node, key string, val []byte) error {
	if _, err := n.Put(context.Background(), key, val); err != nil {
		return err
	}
	a.mu.Lock()
	a.m[key] = val
	a.mu.Unlock()
	return nil
}

func TestReplicationFailoverAndCatchUp(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	a := &acks{m: map[string][]byte{}}

	// Writes through every node, concurrently.
	var wg sync.WaitGroup
	for i := 0; i < c.Len(); i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				k := fmt.Sprintf("k/%s/%03d", c.ID(i), j)
				if err := a.put(t, c.Node(i), k, []byte(k)); err != nil {
					t.Errorf("write %s through %s: %v", k, c.ID(i), err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	if _, err := c.Node(1).Append(context.Background(), [][]byte{[]byte("r1"), []byte("r2"), []byte("r3")}); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Node(2).TrimJournal(context.Background(), 2); err != nil || r.First != 2 || r.Removed != 1 {
		t.Fatalf("trim through a follower: %+v, %v", r, err)
	}
	checkConsistent(t, c, a.m)

	// Kill the leader without a graceful leave.
	old := c.Leader(5 * time.Second)
	c.Stop(old)
	start := time.Now()
	nl := c.Leader(10 * time.Second)
	if nl == old {
		t.Fatal("stopped node is still leader")
	}
	t.Logf("new leader %s after %s", c.ID(nl), time.Since(start).Round(time.Millisecond))
	for i := 0; i < c.Len(); i++ {
		if i == old {
			continue
		}
		for j := 0; j < 20; j++ {
			k := fmt.Sprintf("after/%s/%03d", c.ID(i), j)
			if err := a.put(t, c.Node(i), k, []byte(k)); err != nil {
				t.Fatalf("write after failover through %s: %v", c.ID(i), err)
			}
		}
	}

	// The old leader restarts with its data and catches up.
	c.StartNode(old)
	c.WaitAllReady(10 * time.Second)
	checkConsistent(t, c, a.m)
}

func TestMinorityPartition(t *testing.T) {
	wt := clustertest.TimeScale * time.Second
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, WriteTimeout: wt})
	leader := c.Leader(5 * time.Second)
	follower := (leader + 1) % 3
	other := (leader + 2) % 3
	a := &acks{m: map[string][]byte{}}
	if err := a.put(t, c.Node(follower), "before", []byte("1")); err != nil {
		t.Fatal(err)
	}

	c.Net.Isolate(c.ID(follower))
	start := time.Now()
	_, err := c.Node(follower).Put(context.Background(), "minority", []byte("x"))
	if !errors.Is(err, cluster.ErrNoQuorum) {
		t.Fatalf("write in minority: got %v, want ErrNoQuorum", err)
	}
	if waited := time.Since(start); waited < wt*9/10 || waited > 5*wt {
		t.Fatalf("write in minority failed after %s, want about the %s write timeout", waited, wt)
	}
	if _, _, err := c.Node(follower).Get(context.Background(), "before", cluster.Linearizable); !errors.Is(err, cluster.ErrNoQuorum) {
		t.Fatalf("linearizable read in minority: got %v, want ErrNoQuorum", err)
	}
	// The isolated node stops reporting ready so a load balancer drops it.
	waitFor(t, 5*time.Second, "isolated node not ready", func() bool { return c.Node(follower).Ready() != nil })
	// The majority goes on.
	for j := 0; j < 20; j++ {
		if err := a.put(t, c.Node(other), fmt.Sprintf("majority/%d", j), []byte("y")); err != nil {
			t.Fatalf("majority write: %v", err)
		}
	}

	// Now isolate the leader itself: it must stop accepting writes too.
	c.Net.Heal()
	c.WaitAllReady(10 * time.Second)
	leader = c.Leader(5 * time.Second)
	c.Net.Isolate(c.ID(leader))
	_, err = c.Node(leader).Put(context.Background(), "old-leader", []byte("z"))
	if !errors.Is(err, cluster.ErrNoQuorum) {
		t.Fatalf("write on isolated leader: got %v, want ErrNoQuorum", err)
	}
	survivor := (leader + 1) % 3
	// The majority elects a new leader first: a write sent while the
	// survivors still wait out the old leader's lease may time out under
	// load (-race), which says nothing about whether the majority goes on.
	// A write refused for want of a leader is retried until the deadline;
	// any other error fails at once.
	var lastErr error
	waitFor(t, 15*time.Second, "a majority write after the leader is isolated", func() bool {
		lastErr = a.put(t, c.Node(survivor), "after-leader-isolated", []byte("w"))
		if lastErr != nil && !errors.Is(lastErr, cluster.ErrNoQuorum) && !errors.Is(lastErr, cluster.ErrNotLeader) {
			t.Fatalf("majority write after leader isolated: %v", lastErr)
		}
		return lastErr == nil
	})

	c.Net.Heal()
	c.WaitAllReady(10 * time.Second)
	checkConsistent(t, c, a.m)
	for i := 0; i < 3; i++ {
		if _, ok, _ := c.Node(i).Get(context.Background(), "minority", cluster.Local); ok {
			t.Fatalf("write refused in the minority appeared on %s", c.ID(i))
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	clustertest.WaitFor(t, d, what, func() error {
		if cond() {
			return nil
		}
		return errors.New("condition false")
	})
}

func TestCompareAndSwapRace(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	const writers, rounds = 12, 20
	ctx := ctxT(t, time.Minute)
	if _, err := c.Node(0).Put(ctx, "counter", []byte("0")); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < rounds; round++ {
		kv, _, err := c.Node(round%3).Get(ctx, "counter", cluster.Linearizable)
		if err != nil {
			t.Fatal(err)
		}
		var wins sync.Map
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				r, err := c.Node(w%3).Txn(ctx, cluster.Txn{
					Compares: []cluster.Compare{cluster.IfVersion("counter", kv.Version)},
					Ops:      []cluster.Op{cluster.Put("counter", []byte(fmt.Sprintf("%d-%d", round, w)))},
				})
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				if r.Succeeded {
					wins.Store(w, r.Revision)
				} else if r.FailedCompare != 0 {
					t.Errorf("failed compare index %d, want 0", r.FailedCompare)
				}
			}(w)
		}
		wg.Wait()
		n := 0
		var winner int
		wins.Range(func(k, _ any) bool { n++; winner = k.(int); return true })
		if n != 1 {
			t.Fatalf("round %d: %d writers won, want exactly 1", round, n)
		}
		got, _, err := c.Node((round+1)%3).Get(ctx, "counter", cluster.Linearizable)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%d-%d", round, winner); string(got.Value) != want {
			t.Fatalf("round %d: value %q, want the winner's %q", round, got.Value, want)
		}
	}
}
