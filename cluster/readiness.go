package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// DefaultReadyLag is how many entries a follower may trail the leader and
// still report ready: a follower serving a request a few entries behind is
// normal replication; thousands behind (a node restarted while the leader
// backs off from it) stalls every request sent to it.
const DefaultReadyLag = 64

// leaderIndex is the leader's applied index as a follower last learned it,
// by asking the leader (fwdReadIndex), and when. Raft tells a follower the
// leader's commit index only with entries it sends, so a follower the
// leader has not sent entries to yet (a restart during the leader's
// back-off) cannot know from Raft alone how far behind it is.
type leaderIndex struct {
	index atomic.Uint64
	at    atomic.Int64 // unix nanoseconds of the answer; 0: never
}

// forget drops what was learned: the next readiness check waits for a
// fresh answer.
func (l *leaderIndex) forget() { l.at.Store(0) }

// probeLeader asks the leader for its applied index every half heartbeat
// timeout, until the node closes (probeOnce).
func (n *Node) probeLeader() {
	t := time.NewTicker(n.cfg.HeartbeatTimeout / 2)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.probeOnce()
	}
}

// probeOnce asks the leader for its applied index while this node follows.
// When the node has lost touch with its leader (no leader, another state,
// no contact for a heartbeat timeout), or the leader does not answer, it
// forgets the last answer: readiness then waits for a fresh one.
func (n *Node) probeOnce() {
	// What the leader said before this node lost touch with it says
	// nothing about how far behind the node is now: a follower cut off
	// for a few seconds while the cluster wrote on, then healed, would
	// otherwise report ready on the index it learned before the cut,
	// hundreds of entries behind.
	_, addr := n.Leader()
	if n.raft.State() != raft.Follower || addr == "" || time.Since(n.raft.LastContact()) > n.cfg.HeartbeatTimeout {
		n.leaderIdx.forget()
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, 2*n.cfg.HeartbeatTimeout)
	out, err := n.fwd.call(ctx, addr, fwdReadIndex, nil)
	cancel()
	if err != nil || len(out) != 8 {
		// Not reaching the leader is losing touch with it, even while
		// Raft's last contact still looks recent: a follower cut off
		// still passed the last-contact checks 0.9 s after the cut, and
		// healed within the answer's few seconds of validity it
		// reported ready on the index from before the cut, 256 entries
		// behind (TestReadyzFollowsTheLeadersIndex, 2 runs of 25;
		// TestReadyForgetsWhenTheLeaderDoesNotAnswer).
		n.leaderIdx.forget()
		return
	}
	n.leaderIdx.index.Store(binary.BigEndian.Uint64(out))
	n.leaderIdx.at.Store(time.Now().UnixNano())
}

// followerLag returns why a follower is not caught up with its leader, or
// nil within ReadyLag entries of the leader's index learned within the
// last few heartbeat timeouts.
func (n *Node) followerLag() error {
	at := n.leaderIdx.at.Load()
	if at == 0 {
		return fmt.Errorf("catching up: the leader's index is not known yet (applied index %d)", n.fsm.applied.Load())
	}
	if age := time.Since(time.Unix(0, at)); age > 3*n.cfg.HeartbeatTimeout+2*time.Second {
		return fmt.Errorf("no answer from the leader for %s", age.Round(time.Millisecond))
	}
	applied, leader := n.fsm.applied.Load(), n.leaderIdx.index.Load()
	if applied+n.cfg.ReadyLag < leader {
		return fmt.Errorf("catching up: applied index %d, the leader's %d", applied, leader)
	}
	return nil
}

// CatchUp blocks until this node has applied everything the leader had
// applied when it last asked (a read barrier), or until ctx ends, logging
// its progress every interval. A restarting node calls it before reading
// the cluster's state: however long the leader takes to reach it (a restart
// after a crash meets the leader in its back-off, up to ~10 s), it waits
// and says what it waits for, instead of failing a bounded read.
func (n *Node) CatchUp(ctx context.Context, interval time.Duration) error {
	start, lastLog := time.Now(), time.Now()
	for {
		err := n.readBarrier(ctx)
		if err == nil {
			if time.Since(start) >= interval {
				n.log.Info("caught up with the cluster", "applied_index", n.fsm.applied.Load(), "waited", time.Since(start).Round(time.Millisecond))
			}
			return nil
		}
		if !errors.Is(err, ErrNoQuorum) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting to catch up with the cluster: %w (%v)", context.Cause(ctx), err)
		}
		if time.Since(lastLog) >= interval {
			lastLog = time.Now()
			leader, _ := n.Leader()
			n.log.Info("waiting to catch up with the cluster", "leader", leader, "applied_index", n.fsm.applied.Load(),
				"leader_index", n.leaderIdx.index.Load(), "waited", time.Since(start).Round(time.Second), "last_err", err.Error())
		}
		if err := n.waitRetry(ctx); err != nil {
			if errors.Is(err, ErrClosed) {
				return err
			}
			return fmt.Errorf("waiting to catch up with the cluster: %w", context.Cause(ctx))
		}
	}
}
