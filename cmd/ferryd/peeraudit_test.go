package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

type recorded struct {
	mu  sync.Mutex
	evs []audit.Event
	got chan struct{}
}

func (r *recorded) Record(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
	r.got <- struct{}{}
	return nil
}

// Refusals on the cluster port and forwarded membership changes become
// audit events naming the forwarding node; a peer retrying a refused
// request is recorded once per interval, with the count of the others.
func TestPeerEventsAudited(t *testing.T) {
	rec := &recorded{got: make(chan struct{}, 16)}
	p := newPeerAudit(slog.New(slog.NewTextHandler(io.Discard, nil)))
	now := time.Unix(1_700_000_000, 0)
	p.now = func() time.Time { return now }
	ctx, cancel := context.WithCancel(context.Background())
	p.start(ctx, rec)
	defer p.wait()
	defer cancel()

	refusal := cluster.PeerEvent{Peer: "n9", Serial: "ab12", Remote: "10.0.0.9:4000", Op: "apply", Refused: true, Reason: "not a member"}
	p.observe(refusal)
	<-rec.got
	p.observe(refusal) // within refusalEvery: counted, not recorded
	p.observe(cluster.PeerEvent{Peer: "n2", Op: "remove", Target: "n3", Actor: "alice"})
	<-rec.got
	now = now.Add(refusalEvery)
	p.observe(refusal)
	<-rec.got

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.evs) != 3 {
		t.Fatalf("%d events recorded, want 3: %+v", len(rec.evs), rec.evs)
	}
	first, removal, again := rec.evs[0], rec.evs[1], rec.evs[2]
	if first.FullType() != "cluster.peer.refused" || first.Outcome != audit.Failure || first.Details["peer"] != "n9" ||
		first.Details["op"] != "apply" || first.Details["serial"] != "ab12" || first.Source.Addr != "10.0.0.9" || first.Reason != "not a member" {
		t.Errorf("refusal recorded as %+v", first)
	}
	if removal.FullType() != "cluster.peer.remove" || removal.Outcome != audit.Success || removal.Actor.UserID != "alice" ||
		removal.Target.Node != "n3" || removal.Details["peer"] != "n2" {
		t.Errorf("forwarded removal recorded as %+v", removal)
	}
	if again.Details["suppressed_since_last"] != "1" {
		t.Errorf("repeated refusal recorded as %+v, want one suppressed", again)
	}
}
