package cluster_test

import (
	"bytes"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

// firstAcceptListener records the node's log as it was when the node
// first accepted a connection.
type firstAcceptListener struct {
	net.Listener
	log  *syncLog
	once sync.Once
	seen string
}

func (l *firstAcceptListener) Accept() (net.Conn, error) {
	l.once.Do(func() { l.seen = l.log.String() })
	return l.Listener.Accept()
}

type syncLog struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNoConnectionsBeforeRaft: a node accepts connections on the cluster
// port only once Raft exists (issue: a restarted follower accepted the
// leader's redial before creating Raft, refused its RPC as "this node has
// not started", and Raft's transport logged that as an ERROR line; the
// membership check also read the Raft field while New was still setting
// it, a data race). Raft logs its initial configuration as it is created:
// the first Accept must come after that line.
func TestNoConnectionsBeforeRaft(t *testing.T) {
	ca := clustertest.NewCA(t)
	logs := &syncLog{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &firstAcceptListener{Listener: ln, log: logs}
	n, err := cluster.New(cluster.Config{
		NodeID: "n1", DataDir: filepath.Join(t.TempDir(), "n1"), Listener: fl, Certificate: clustertest.NodeCert(t, ca, "n1"),
		RootCAs: ca.Pool(), Bootstrap: true, NoSync: true,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Close waits for the accept loop, so fl.seen is set and visible.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "initial configuration") {
		t.Fatalf("raft never logged its initial configuration:\n%s", logs.String())
	}
	if !strings.Contains(fl.seen, "initial configuration") {
		t.Errorf("the node accepted connections before Raft existed; its log then:\n%s", fl.seen)
	}
}
