// Package clustertest runs real ferry clusters for tests: nodes on loopback
// with real TCP, TLS from a throwaway CA, and bbolt files in temporary
// directories, plus a network that can cut nodes off from each other.
package clustertest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/pki"
)

// NewCA returns a fresh cluster CA.
func NewCA(t testing.TB) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("ferry test CA", 10*365*24*time.Hour, time.Now())
	if err != nil {
		t.Fatalf("creating CA: %v", err)
	}
	return ca
}

// NodeCert issues a node certificate for id from ca.
func NodeCert(t testing.TB, ca *pki.CA, id string) tls.Certificate {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.IssueNode(csr, id, []string{cluster.DefaultServerName}, nil, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatalf("issuing node cert: %v", err)
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// adminProof is the proof AsAdmin attaches; test clusters accept it as an
// administrator's.
const adminProof = "clustertest-admin"

// AsAdmin returns ctx carrying the proof that test clusters accept for
// forwarded membership changes and restores, as ferryd accepts an
// administrator's session.
func AsAdmin(ctx context.Context) context.Context {
	return cluster.WithProof(ctx, []byte(adminProof))
}

func authorizeTestAdmin(_ context.Context, req cluster.AuthRequest) (string, error) {
	if string(req.Proof) != adminProof {
		return "", errors.New("no administrator's proof")
	}
	return "test-admin", nil
}

// Options tune a test cluster.
type Options struct {
	// Fast shortens Raft timeouts so elections take tens of milliseconds.
	Fast bool
	// WriteTimeout bounds waits for a leader; default 3s.
	WriteTimeout time.Duration
	// Tune, when set, edits each node's config before it starts.
	Tune func(*cluster.Config)
	// Logger for all nodes; default discards (set FERRY_TEST_LOG=1 to see).
	Logger *slog.Logger
}

// Cluster is a set of nodes on loopback sharing one CA and one Net.
type Cluster struct {
	t    testing.TB
	opts Options
	CA   *pki.CA
	Net  *Net

	mu    sync.Mutex // guards nodes
	nodes []*member
}

type member struct {
	id    string
	dir   string
	addr  string
	cert  tls.Certificate
	node  *cluster.Node // nil while stopped
	first bool
}

// Start runs an n-node cluster: the first node bootstraps, the others are
// added as voters. It returns once every node knows the leader.
func Start(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 3 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if os.Getenv("FERRY_TEST_LOG") != "" {
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	c := &Cluster{t: t, opts: opts, CA: NewCA(t), Net: NewNet()}
	base := t.TempDir()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("n%d", i+1)
		c.nodes = append(c.nodes, &member{id: id, dir: filepath.Join(base, id), cert: NodeCert(t, c.CA, id), first: i == 0})
	}
	t.Cleanup(c.Close)
	for i := range c.nodes {
		c.StartNode(i)
		if i == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := c.nodes[0].node.WaitLeader(ctx); err != nil {
				cancel()
				t.Fatalf("bootstrap node: %v", err)
			}
			cancel()
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.nodes[0].node.AddVoter(ctx, c.nodes[i].id, c.nodes[i].addr)
		cancel()
		if err != nil {
			t.Fatalf("adding %s: %v", c.nodes[i].id, err)
		}
	}
	c.WaitAllReady(15 * time.Second)
	// Every node advertises the commands it applies once it has a leader;
	// tests run once they all have, as a cluster of one version does.
	WaitFor(t, 15*time.Second, "every node advertising its commands", func() error {
		for _, m := range c.nodes {
			if !m.node.CanPrune() {
				return fmt.Errorf("%s does not know every member applies prunes", m.id)
			}
		}
		return nil
	})
	return c
}

// Config returns the configuration node i runs with (fresh listener aside).
func (c *Cluster) config(m *member, ln net.Listener) cluster.Config {
	cfg := cluster.Config{
		NodeID:        m.id,
		DataDir:       m.dir,
		Listener:      ln,
		AdvertiseAddr: m.addr,
		Dial:          c.Net.Dialer(m.id),
		Certificate:   m.cert,
		RootCAs:       c.CA.Pool(),
		Bootstrap:     m.first,
		WriteTimeout:  c.opts.WriteTimeout,
		Logger:        c.opts.Logger.With("test_node", m.id),
		Authorize:     authorizeTestAdmin,
	}
	if c.opts.Fast {
		cfg.HeartbeatTimeout = TimeScale * 300 * time.Millisecond
		cfg.ElectionTimeout = TimeScale * 300 * time.Millisecond
		cfg.LeaderLeaseTimeout = TimeScale * 250 * time.Millisecond
	}
	if c.opts.Tune != nil {
		c.opts.Tune(&cfg)
	}
	return cfg
}

// StartNode starts (or restarts, with its data) node i on its address.
func (c *Cluster) StartNode(i int) *cluster.Node {
	c.t.Helper()
	c.mu.Lock()
	m := c.nodes[i]
	c.mu.Unlock()
	addr := m.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		// A restarted node reuses its address; the old socket may linger
		// briefly in the kernel.
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("listening for %s: %v", m.id, err)
	}
	m.addr = ln.Addr().String()
	c.Net.register(m.id, m.addr)
	n, err := cluster.New(c.config(m, c.Net.Listener(m.id, ln)))
	if err != nil {
		c.t.Fatalf("starting %s: %v", m.id, err)
	}
	c.mu.Lock()
	m.node = n
	c.mu.Unlock()
	return n
}

// Stop stops node i without leaving the cluster, as a crash would (the
// in-process equivalent of kill -9: no goodbye, no leadership transfer).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	n := c.nodes[i].node
	c.nodes[i].node = nil
	c.mu.Unlock()
	if n != nil {
		n.Close()
	}
}

// Node returns node i (nil while stopped).
func (c *Cluster) Node(i int) *cluster.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].node
}

// Len returns the number of nodes.
func (c *Cluster) Len() int { return len(c.nodes) }

// Dir returns node i's data directory.
func (c *Cluster) Dir(i int) string { return c.nodes[i].dir }

// ID returns node i's ID.
func (c *Cluster) ID(i int) string { return c.nodes[i].id }

// Leader waits for a leader among the running nodes and returns its index.
func (c *Cluster) Leader(timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var why []string
	for time.Now().Before(deadline) {
		why = why[:0]
		for i := range c.nodes {
			if n := c.Node(i); n != nil {
				if !n.IsLeader() {
					why = append(why, c.nodes[i].id+": not leader")
				} else if err := n.Ready(); err != nil {
					why = append(why, c.nodes[i].id+": "+err.Error())
				} else {
					return i
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("no ready leader within %s: %v", timeout, why)
	return -1
}

// WaitAllReady waits until every running node passes its readiness check.
func (c *Cluster) WaitAllReady(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		last = nil
		for i := range c.nodes {
			if n := c.Node(i); n != nil {
				if err := n.Ready(); err != nil {
					last = fmt.Errorf("%s: %w", c.nodes[i].id, err)
				}
			}
		}
		if last == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("cluster not ready within %s: %v", timeout, last)
}

// WaitConverged waits until every running node is ready and all have the
// same commit index and the same last applied entry, so their states can be
// compared.
func (c *Cluster) WaitConverged(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var applied, commit []uint64
		ready := true
		for i := range c.nodes {
			if n := c.Node(i); n != nil {
				s := n.Status()
				applied = append(applied, s.AppliedIndex)
				commit = append(commit, s.CommitIndex)
				ready = ready && n.Ready() == nil
			}
		}
		same := ready
		for i := range applied {
			same = same && applied[i] == applied[0] && commit[i] == commit[0]
		}
		if same {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("nodes did not converge within %s", timeout)
}

// Close stops every node.
func (c *Cluster) Close() {
	for i := range c.nodes {
		c.Stop(i)
	}
}
