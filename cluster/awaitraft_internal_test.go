package cluster

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) interface{}         { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshots") }
func (nopFSM) Restore(io.ReadCloser) error         { return nil }

// TestAwaitRaftAfterShutdown: a VerifyLeader asked of a Raft that has shut
// down may be queued for a run loop that no longer reads (its buffered
// channel wins the select against the closed shutdown channel) and never
// be answered. Waiting on it with Error() hung a closing node's read-index
// handler and with it the node's Close (an audit test's node kill hung for
// 23 minutes); awaitRaft returns when its context ends.
func TestAwaitRaftAfterShutdown(t *testing.T) {
	conf := raft.DefaultConfig()
	conf.LocalID = "a"
	conf.Logger = hclog.NewNullLogger()
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	store := raft.NewInmemStore()
	addr, trans := raft.NewInmemTransport("a")
	r, err := raft.NewRaft(conf, nopFSM{}, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	boot := raft.Configuration{Servers: []raft.Server{{ID: "a", Address: addr}}}
	if err := r.BootstrapCluster(boot).Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.LeaderCh():
	case <-time.After(10 * time.Second):
		t.Fatal("the single node did not become leader")
	}
	if err := awaitRaft(context.Background(), r.VerifyLeader()); err != nil {
		t.Fatalf("VerifyLeader on a live leader: %v", err)
	}
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	unanswered := 0
	for range 32 { // below the channel's 64, where the select has no choice
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := awaitRaft(ctx, r.VerifyLeader())
		cancel()
		switch {
		case errors.Is(err, ErrNoQuorum):
			unanswered++
		case errors.Is(err, raft.ErrRaftShutdown):
		default:
			t.Fatalf("VerifyLeader after shutdown: %v, want ErrRaftShutdown or, unanswered, ErrNoQuorum", err)
		}
	}
	t.Logf("%d of 32 VerifyLeader calls after shutdown were never answered by raft", unanswered)
}
