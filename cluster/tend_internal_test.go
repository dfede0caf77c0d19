package cluster

import (
	"testing"

	"github.com/hashicorp/raft"
)

// tendMembership looks at the configuration five times a second only while
// there is membership work; a settled node looks once a second.
func TestTendWait(t *testing.T) {
	voter := func(id string) raft.Server { return raft.Server{ID: raft.ServerID(id), Suffrage: raft.Voter} }
	nonvoter := func(id string) raft.Server { return raft.Server{ID: raft.ServerID(id), Suffrage: raft.Nonvoter} }
	tests := []struct {
		name    string
		leader  bool
		servers []raft.Server
		want    string
	}{
		{"settled follower", false, []raft.Server{voter("a"), voter("me"), voter("c")}, "idle"},
		{"settled leader", true, []raft.Server{voter("me"), voter("b"), voter("c")}, "idle"},
		{"single node", true, []raft.Server{voter("me")}, "idle"},
		{"this node not yet a voter", false, []raft.Server{voter("a"), nonvoter("me")}, "busy"},
		{"this node not in the configuration yet", false, []raft.Server{voter("a"), voter("b")}, "busy"},
		{"no configuration yet", false, nil, "busy"},
		{"leader with a non-voter to promote or remove", true, []raft.Server{voter("me"), nonvoter("d")}, "busy"},
		{"follower beside another node's non-voter", false, []raft.Server{voter("a"), voter("me"), nonvoter("d")}, "idle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tendIdleInterval
			if tt.want == "busy" {
				want = tendInterval
			}
			if got := tendWait("me", tt.leader, tt.servers); got != want {
				t.Errorf("tendWait = %v, want %v", got, want)
			}
		})
	}
}
