package cluster

import (
	"testing"

	"github.com/hashicorp/raft"
)

// TestProbeWaitsForLeadership: probeLeader wakes on its ticker only where
// there is a leader to ask; a leader (every single-node gateway) waits for
// its leadership to change and does not wake while idle.
func TestProbeWaitsForLeadership(t *testing.T) {
	for _, tt := range []struct {
		state raft.RaftState
		want  bool
	}{
		{raft.Leader, true},
		{raft.Follower, false},
		{raft.Candidate, false},
		{raft.Shutdown, false},
	} {
		if got := probeWaitsForLeadership(tt.state); got != tt.want {
			t.Errorf("probeWaitsForLeadership(%v) = %v, want %v", tt.state, got, tt.want)
		}
	}
}
