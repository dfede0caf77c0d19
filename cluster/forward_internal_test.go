package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestForwardBeforeRaftStarts: New serves the cluster listener before Raft
// exists, and a restarting node receives forwarded writes at once (a
// follower that still names it leader). Such a request must wait or be
// answered "not leader", never crash the node (it did: a nil *raft.Raft).
func TestForwardBeforeRaftStarts(t *testing.T) {
	n := &Node{started: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer n.cancel()
	for _, kind := range []byte{fwdApply, fwdReadIndex, fwdLeave, fwdRestore} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := n.handleForward(ctx, forwardRequest{kind: kind, payload: []byte{1}, peer: "n2"})
		cancel()
		if !errors.Is(err, ErrNotLeader) {
			t.Errorf("kind %d before start: %v, want ErrNotLeader", kind, err)
		}
	}
	// Stopping, it has not taken the request either: the follower retries
	// elsewhere.
	n.cancel()
	if _, err := n.handleForward(context.Background(), forwardRequest{kind: fwdApply}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("after close: %v, want ErrNotLeader", err)
	}
}
