package cluster_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/pki"
)

// leaveAs asks the member at addr to remove id, presenting cert.
func leaveAs(t *testing.T, c *clustertest.Cluster, cert tls.Certificate, id, addr string, within time.Duration) error {
	t.Helper()
	return cluster.Leave(ctxT(t, within), cluster.LeaveConfig{NodeID: id, Addr: addr, Certificate: cert, RootCAs: c.CA.Pool()})
}

func memberIDs(n *cluster.Node) []string {
	var ids []string
	for _, m := range n.Status().Members {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

// A node removes itself with its own certificate, follower or leader; it
// can remove no other node, and a certificate that is not a node's
// removes nobody. The last voter cannot leave.
func TestLeave(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, WriteTimeout: 5 * time.Second})
	leader := c.Leader(5 * time.Second)
	f1, f2 := (leader+1)%3, (leader+2)%3
	all := memberIDs(c.Node(leader))

	t.Run("refused", func(t *testing.T) {
		key, err := pki.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		certPEM, err := c.CA.IssueServer(key.Public(), []string{cluster.DefaultServerName}, nil, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, _ := pki.KeyPEM(key)
		apiCert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			cert tls.Certificate
			id   string
			addr string
			want error // nil: any error
		}{
			{"another node's certificate, at the leader", clustertest.NodeCert(t, c.CA, c.ID(f1)), c.ID(f2), c.Node(leader).Addr(), cluster.ErrForbidden},
			{"another node's certificate, at the target", clustertest.NodeCert(t, c.CA, c.ID(f1)), c.ID(f2), c.Node(f2).Addr(), cluster.ErrForbidden},
			{"another node's certificate, for the leader", clustertest.NodeCert(t, c.CA, c.ID(f1)), c.ID(leader), c.Node(f1).Addr(), cluster.ErrForbidden},
			{"API certificate of the cluster CA", apiCert, c.ID(f1), c.Node(f1).Addr(), nil},
			{"node certificate of another CA", clustertest.NodeCert(t, clustertest.NewCA(t), c.ID(f1)), c.ID(f1), c.Node(f1).Addr(), nil},
			// A certificate of a node that is not a member is refused at the
			// door, before its request is read.
			{"not a member", clustertest.NodeCert(t, c.CA, "n9"), "n9", c.Node(leader).Addr(), cluster.ErrPeerRefused},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				err := leaveAs(t, c, tc.cert, tc.id, tc.addr, 10*time.Second)
				if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				t.Logf("refused: %v", err)
				if got := memberIDs(c.Node(leader)); !slices.Equal(got, all) {
					t.Fatalf("members %v after a refused leave, want %v", got, all)
				}
			})
		}
	})

	// A follower leaves through its own listener.
	if err := leaveAs(t, c, clustertest.NodeCert(t, c.CA, c.ID(f1)), c.ID(f1), c.Node(f1).Addr(), 20*time.Second); err != nil {
		t.Fatalf("follower leaving: %v", err)
	}
	if got := memberIDs(c.Node(leader)); slices.Contains(got, c.ID(f1)) || len(got) != 2 {
		t.Fatalf("members after %s left: %v", c.ID(f1), got)
	}
	// Removed, and its certificates revoked: the node is refused at the
	// door.
	if err := leaveAs(t, c, clustertest.NodeCert(t, c.CA, c.ID(f1)), c.ID(f1), c.Node(leader).Addr(), 10*time.Second); !errors.Is(err, cluster.ErrPeerRefused) {
		t.Fatalf("leaving again: got %v, want ErrPeerRefused", err)
	}
	c.Stop(f1)

	// The leader leaves: it hands leadership to the other node, which
	// removes it; the cluster goes on with one node.
	if _, err := c.Node(leader).Put(ctxT(t, 10*time.Second), "before", []byte("leave")); err != nil {
		t.Fatal(err)
	}
	if err := leaveAs(t, c, clustertest.NodeCert(t, c.CA, c.ID(leader)), c.ID(leader), c.Node(leader).Addr(), 30*time.Second); err != nil {
		t.Fatalf("leader leaving: %v", err)
	}
	clustertest.WaitFor(t, 10*time.Second, "the remaining node leads alone", func() error {
		n := c.Node(f2)
		if !n.IsLeader() || n.Ready() != nil {
			return fmt.Errorf("%s is not a ready leader", c.ID(f2))
		}
		if got := memberIDs(n); !slices.Equal(got, []string{c.ID(f2)}) {
			return fmt.Errorf("members %v", got)
		}
		return nil
	})
	if _, err := c.Node(f2).Put(ctxT(t, 10*time.Second), "after", []byte("leave")); err != nil {
		t.Fatalf("writing after the leader left: %v", err)
	}
	c.Stop(leader)

	// The last voter stays.
	err := leaveAs(t, c, clustertest.NodeCert(t, c.CA, c.ID(f2)), c.ID(f2), c.Node(f2).Addr(), 10*time.Second)
	if !errors.Is(err, cluster.ErrWouldLoseQuorum) {
		t.Fatalf("last voter leaving: got %v, want ErrWouldLoseQuorum", err)
	}
	if got := memberIDs(c.Node(f2)); len(got) != 1 {
		t.Fatalf("members after the last voter was refused: %v", got)
	}
}

// With one of three voters down, no live voter may leave: the two that
// would remain would be one live voter of two, without a quorum.
func TestLeaveRefusedWithoutLiveMajority(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, WriteTimeout: 5 * time.Second})
	leader := c.Leader(5 * time.Second)
	down, live := (leader+1)%3, (leader+2)%3
	c.Stop(down)
	clustertest.WaitFor(t, 10*time.Second, "the leader sees the stopped node as unhealthy", func() error {
		for _, m := range c.Node(leader).Status().Members {
			if m.ID == c.ID(down) && m.Healthy != nil && !*m.Healthy {
				return nil
			}
		}
		return errors.New("still healthy")
	})
	for _, i := range []int{live, leader} {
		err := leaveAs(t, c, clustertest.NodeCert(t, c.CA, c.ID(i)), c.ID(i), c.Node(i).Addr(), 10*time.Second)
		if !errors.Is(err, cluster.ErrWouldLoseQuorum) {
			t.Fatalf("%s leaving with %s down: got %v, want ErrWouldLoseQuorum", c.ID(i), c.ID(down), err)
		}
	}
	if got := memberIDs(c.Node(leader)); len(got) != 3 || !c.Node(leader).IsLeader() {
		t.Fatalf("members %v, leader %v after refused leaves", got, c.Node(leader).IsLeader())
	}
}
