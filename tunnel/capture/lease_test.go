package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

// longReq is adminReq for a capture that runs until its context ends.
func longReq() Request {
	r := adminReq()
	r.Duration = 5 * time.Minute
	return r
}

// failedStarts returns the refused capture.start events.
func failedStarts(rec *recorder) []audit.Event {
	var out []audit.Event
	for _, e := range rec.actions() {
		if e.Action == "capture.start" && e.Outcome == audit.Failure {
			out = append(out, e)
		}
	}
	return out
}

// waitRunning waits until the cluster lists n running captures on every node.
func waitRunning(t *testing.T, cc *captureCluster, n int) {
	t.Helper()
	clustertest.WaitFor(t, 20*time.Second, fmt.Sprintf("%d captures listed on every node", n), func() error {
		for i, s := range cc.svcs {
			rs, err := s.Running(context.Background())
			if err != nil || len(rs) != n {
				return fmt.Errorf("node %d lists %d (%v)", i, len(rs), err)
			}
		}
		return nil
	})
}

// TestConcurrentCapClusterWide: the limit on concurrent captures holds for
// the cluster, not per node. With a cap of 2, three captures started at
// once on three different nodes give two captures and one refusal, which
// is an audit event; once one capture ends, its place is free again for a
// capture started on yet another node.
func TestConcurrentCapClusterWide(t *testing.T) {
	cc := startCaptureCluster(t, Caps{MaxConcurrent: 2})
	admin := clustertest.AsAdmin(context.Background())
	type outcome struct {
		node int
		res  Result
		err  error
	}
	outs := make(chan outcome, 3)
	cancels := make([]context.CancelFunc, 3)
	var startGate sync.WaitGroup
	startGate.Add(1)
	for i := range 3 {
		ctx, cancel := context.WithCancel(admin)
		cancels[i] = cancel
		go func() {
			startGate.Wait()
			res, err := cc.svcs[i].Run(ctx, longReq(), io.Discard)
			outs <- outcome{i, res, err}
		}()
	}
	startGate.Done()

	// Exactly one of the three is refused, whichever lost the race.
	var refused outcome
	select {
	case refused = <-outs:
	case <-time.After(60 * time.Second):
		t.Fatal("no capture was refused: the cap is not cluster-wide")
	}
	if !errors.Is(refused.err, ErrBusy) {
		t.Fatalf("node %d: %v, want ErrBusy", refused.node, refused.err)
	}
	waitRunning(t, cc, 2)
	evs := failedStarts(cc.rec)
	if len(evs) != 1 || !strings.Contains(evs[0].Reason, "2 of 2 captures run in the cluster") || evs[0].Details["reason"] == "" {
		t.Fatalf("refusal audit %+v, want one failed capture.start naming the cluster's cap", evs)
	}
	rs, _ := cc.svcs[refused.node].Running(context.Background())
	nodes := map[string]bool{}
	for _, r := range rs {
		nodes[r.Node] = true
	}
	if len(nodes) != 2 || nodes[cc.c.ID(refused.node)] {
		t.Fatalf("running %+v: want the two captures of the two other nodes", rs)
	}

	// A fourth capture on the refused node is refused too, however long
	// the node itself has been idle.
	if _, err := cc.svcs[refused.node].Run(admin, longReq(), io.Discard); !errors.Is(err, ErrBusy) {
		t.Fatalf("fourth capture: %v, want ErrBusy", err)
	}

	// Ending one capture frees its place, on every node.
	first := (refused.node + 1) % 3
	cancels[first]()
	o := <-outs
	if o.node != first || o.err != nil || o.res.Stopped != StopCancelled {
		t.Fatalf("cancelled capture: %+v", o)
	}
	waitRunning(t, cc, 1)
	ctx, cancel := context.WithCancel(admin)
	go func() {
		res, err := cc.svcs[refused.node].Run(ctx, longReq(), io.Discard)
		outs <- outcome{refused.node, res, err}
	}()
	waitRunning(t, cc, 2)
	cancel()
	for i := range cancels {
		cancels[i]()
	}
	for range 2 {
		if o := <-outs; o.err != nil {
			t.Fatalf("node %d: %v", o.node, o.err)
		}
	}
	waitRunning(t, cc, 0)
}

// testClock is a clock the test moves forward.
type testClock struct{ off atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// TestLeaseOfLostRequesterLapses: a node that took a place and then
// crashed (it never renews nor releases its lease) holds it for at most
// the lease's time to live; the next capture after that removes it.
func TestLeaseOfLostRequesterLapses(t *testing.T) {
	clk := &testClock{}
	cc := startCaptureCluster(t, Caps{MaxConcurrent: 1}, func(c *Config) { c.Now = clk.Now; c.LeaseTTL = 30 * time.Second })
	admin := clustertest.AsAdmin(context.Background())
	// Node 2 takes the only place and is lost: no renewal, no release.
	if _, err := cc.svcs[2].grant(admin, Running{ID: "lost", Actor: "admin@example.com", Started: clk.Now(), Node: cc.c.ID(2)}, 1); err != nil {
		t.Fatal(err)
	}
	req := adminReq()
	req.Duration = time.Second
	if _, err := cc.svcs[0].Run(admin, req, io.Discard); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "lost by admin@example.com on "+cc.c.ID(2)) {
		t.Fatalf("capture while the lost lease is live: %v, want ErrBusy naming it", err)
	}
	if evs := failedStarts(cc.rec); len(evs) != 1 {
		t.Fatalf("refusal audit %+v", evs)
	}
	clk.Advance(31 * time.Second)
	if _, err := cc.svcs[1].Run(admin, req, io.Discard); err != nil {
		t.Fatalf("capture after the lost lease lapsed: %v", err)
	}
	if _, ok, err := cc.c.Node(1).Get(context.Background(), leaseKey("lost"), cluster.Linearizable); err != nil || ok {
		t.Fatalf("lapsed lease still stored (%v)", err)
	}
	waitRunning(t, cc, 0)
}

// TestLeaseLostEndsCapture: a capture whose lease is gone (it lapsed while
// its node could not renew it, and another grant removed it) ends on every
// node and says why.
func TestLeaseLostEndsCapture(t *testing.T) {
	cc := startCaptureCluster(t, Caps{}, func(c *Config) { c.LeaseTTL = 300 * time.Millisecond })
	done := make(chan error, 1)
	go func() {
		_, err := cc.svcs[0].Run(clustertest.AsAdmin(context.Background()), longReq(), io.Discard)
		done <- err
	}()
	waitRunning(t, cc, 1)
	if _, err := cc.c.Node(1).Txn(context.Background(), cluster.Txn{Ops: []cluster.Op{cluster.DeletePrefix(leasePrefix)}}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, errLeaseLost) {
			t.Fatalf("capture ended with %v, want errLeaseLost", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("capture without a lease still runs")
	}
	clustertest.WaitFor(t, 10*time.Second, "every node stopped", func() error {
		for i, p := range cc.planes {
			if p.tap.Active() {
				return fmt.Errorf("node %d still captures", i)
			}
		}
		return nil
	})
}

// TestServeNeedsLease: a node serves its part only of a capture that holds
// a cluster lease, even when the caller carries an administrator's proof:
// no member can run captures beside the cluster's cap.
func TestServeNeedsLease(t *testing.T) {
	cc := startCaptureCluster(t, Caps{})
	spec, _ := json.Marshal(nodeSpec{ID: "unleased", Clients: []netip.Addr{netip.MustParseAddr("10.99.0.2")}, Duration: time.Second, MaxBytes: 1 << 20, Snaplen: 96})
	rc, err := cc.c.Node(0).CallService(clustertest.AsAdmin(context.Background()), cc.c.ID(1), ServiceName, spec)
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "holds no cluster lease") {
		t.Fatalf("unleased part: %v, want a refusal", err)
	}
	if cc.planes[1].tap.Active() {
		t.Fatal("node 1 captures for an unleased request")
	}
}
