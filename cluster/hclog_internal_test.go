package cluster

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestHclogExpandsFormats: Raft's hclog.Fmt arguments are rendered, not
// printed as a literal %+v (issue: "the Raft log lines print a literal
// %+v").
func TestHclogExpandsFormats(t *testing.T) {
	var buf lockedBuffer
	l := newHclog(slog.New(slog.NewTextHandler(&buf, nil)), "raft")
	l.Info("initial configuration", "index", 1, "servers", hclog.Fmt("%+v", []raft.Server{{ID: "n1", Address: "127.0.0.1:1"}}))
	out := buf.String()
	if strings.Contains(out, "%+v") || !strings.Contains(out, "ID:n1") {
		t.Errorf("log line: %s", out)
	}
}

// TestPeerFailuresAreCountedNotRepeated: one WARN line per unreachable
// peer per interval, with a count, and no ERROR (issue: 579 ERROR lines
// for one node down).
func TestPeerFailuresAreCountedNotRepeated(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Unix(1000, 0)
	pl := newPeerLog(log, 30*time.Second, func() time.Time { return now })
	l := newPeerHclog(log, "raft", pl)
	err := errors.New("dial tcp 10.0.0.2:7000: connect: connection refused")
	pl.learn("n2", "10.0.0.2:7000")
	for i := 0; i < 100; i++ {
		l.Error("failed to heartbeat to", "peer", raft.ServerAddress("10.0.0.2:7000"), "backoff time", time.Second, "error", err)
		l.Error("failed to appendEntries to", "peer", raft.Server{ID: "n2", Address: "10.0.0.2:7000"}, "error", err)
		l.Warn("failed to contact", "server-id", raft.ServerID("n2"), "time", time.Second)
		l.Error("failed to make requestVote RPC", "target", raft.Server{ID: "n2", Address: "10.0.0.2:7000"}, "error", err, "term", 3)
		now = now.Add(400 * time.Millisecond) // 40 s in all
	}
	out := buf.String()
	if n := strings.Count(out, "level=ERROR"); n != 0 {
		t.Errorf("%d ERROR lines:\n%s", n, out)
	}
	lines := strings.Count(out, "cluster peer unreachable")
	if lines != 2 {
		t.Errorf("%d lines for one peer over 40s with a 30s interval, want 2:\n%s", lines, out)
	}
	if !strings.Contains(out, "failures=1 ") || !strings.Contains(out, "failures=300 ") {
		t.Errorf("want the first failure alone, then a count of the next 300:\n%s", out)
	}
	// Other messages pass through unchanged.
	l.Error("failed to commit logs", "error", err)
	if !strings.Contains(buf.String(), `level=ERROR msg="failed to commit logs"`) {
		t.Errorf("other errors must stay errors:\n%s", buf.String())
	}
}

// TestHealthStartsAfreshAtEachLeaderChange: a node that leads again does
// not keep a live peer marked unhealthy from its previous term (issue:
// after an election the leader kept a live, caught-up node "HEALTHY no").
func TestHealthStartsAfreshAtEachLeaderChange(t *testing.T) {
	h := &peerHealth{failed: map[string]bool{}}
	h.observe(raft.FailedHeartbeatObservation{PeerID: "n2"})
	if h.healthy("n2") {
		t.Fatal("n2 healthy after a failed heartbeat")
	}
	// Leadership moves away and comes back: the replication that saw the
	// failure is gone and will never report the heartbeat resumed.
	h.observe(raft.LeaderObservation{LeaderID: "n3"})
	h.observe(raft.LeaderObservation{LeaderID: "n1"})
	if !h.healthy("n2") {
		t.Error("n2 still unhealthy after the leader changed")
	}
	h.observe(raft.FailedHeartbeatObservation{PeerID: "n2"})
	h.observe(raft.ResumedHeartbeatObservation{PeerID: "n2"})
	if !h.healthy("n2") {
		t.Error("n2 unhealthy after its heartbeat resumed")
	}
}
