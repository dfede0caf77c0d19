package cluster_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/pki"
)

// events collects a cluster's PeerEvents.
type events struct {
	mu  sync.Mutex
	all []cluster.PeerEvent
}

func (e *events) add(ev cluster.PeerEvent) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

// refused returns the refusals of peer's op.
func (e *events) refused(peer, op string) []cluster.PeerEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []cluster.PeerEvent
	for _, ev := range e.all {
		if ev.Refused && ev.Peer == peer && ev.Op == op {
			out = append(out, ev)
		}
	}
	return out
}

func startWatched(t *testing.T) (*clustertest.Cluster, *events) {
	t.Helper()
	ev := &events{}
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, Tune: func(cfg *cluster.Config) { cfg.OnPeerEvent = ev.add }})
	return c, ev
}

// A certificate the cluster CA issued to a node that never joined (a join
// token redeemed by a machine that never started, or an attacker's) gets
// nothing from the cluster port: every forwarded kind and Raft RPCs are
// refused, nothing changes, and each refusal is reported for the audit
// trail. Before membership-bound identity, a raw apply from such a
// certificate created an administrator's session.
func TestNeverJoinedCertificateRefused(t *testing.T) {
	c, ev := startWatched(t)
	leader := c.Leader(5 * time.Second)
	follower := (leader + 1) % 3
	stranger := clustertest.NodeCert(t, c.CA, "n9")
	members := memberIDs(c.Node(leader))
	term := c.Node(leader).Status().Term

	for _, target := range []int{leader, follower} {
		for _, k := range cluster.ForwardKinds(c.ID(follower), "evil", "127.0.0.1:1") {
			t.Run(c.ID(target)+"/"+k.Name, func(t *testing.T) {
				pc, err := cluster.DialPeer(ctxT(t, 10*time.Second), stranger, c.CA.Pool(), c.Node(target).Addr())
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				if err := pc.Send(k); !errors.Is(err, cluster.ErrPeerRefused) {
					t.Fatalf("got %v, want ErrPeerRefused", err)
				}
				if got := ev.refused("n9", k.Name); len(got) == 0 {
					t.Fatalf("no refusal event for %s", k.Name)
				}
			})
		}
	}
	t.Run("raft", func(t *testing.T) {
		for _, target := range []int{leader, follower} {
			if err := cluster.RequestVoteAs(stranger, c.CA.Pool(), "n9", c.Node(target).Addr()); err == nil {
				t.Fatalf("%s answered a RequestVote from a non-member", c.ID(target))
			}
		}
		clustertest.WaitFor(t, 5*time.Second, "raft refusal reported", func() error {
			if len(ev.refused("n9", "raft")) == 0 {
				return errors.New("no refusal event for raft")
			}
			return nil
		})
	})

	// Nothing changed.
	if got := memberIDs(c.Node(leader)); !slices.Equal(got, members) {
		t.Fatalf("members %v, want %v", got, members)
	}
	if _, ok, err := c.Node(leader).Get(ctxT(t, 5*time.Second), "evil", cluster.Linearizable); err != nil || ok {
		t.Fatalf("the stranger's write: present %v, err %v", ok, err)
	}
	if got := c.Node(leader).Status().Term; got != term || !c.Node(leader).IsLeader() {
		t.Fatalf("term %d -> %d, leader %v: the stranger's vote request was served", term, got, c.Node(leader).IsLeader())
	}
}

// A removed node's certificate is refused at once by every node that
// remains, also on a connection it opened while it was a member.
func TestRemovedNodeRefusedAtOnce(t *testing.T) {
	c, ev := startWatched(t)
	leader := c.Leader(5 * time.Second)
	victim, other := (leader+1)%3, (leader+2)%3
	cert := clustertest.NodeCert(t, c.CA, c.ID(victim))
	readIndex := cluster.ForwardKinds("", "", "")[1]

	// Open connections to both remaining nodes while still a member.
	var open []*cluster.PeerConn
	for _, target := range []int{leader, other} {
		pc, err := cluster.DialPeer(ctxT(t, 10*time.Second), cert, c.CA.Pool(), c.Node(target).Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if err := pc.Send(readIndex); err != nil && !errors.Is(err, cluster.ErrNotLeader) {
			t.Fatalf("member's request to %s: %v", c.ID(target), err)
		}
		open = append(open, pc)
	}

	if err := c.Node(leader).RemoveServer(ctxT(t, 10*time.Second), c.ID(victim)); err != nil {
		t.Fatal(err)
	}
	for i, target := range []int{leader, other} {
		if err := open[i].Send(readIndex); err == nil || errors.Is(err, cluster.ErrNotLeader) {
			t.Fatalf("%s served a removed node on its open connection: %v", c.ID(target), err)
		}
		pc, err := cluster.DialPeer(ctxT(t, 10*time.Second), cert, c.CA.Pool(), c.Node(target).Addr())
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.Send(readIndex); !errors.Is(err, cluster.ErrPeerRefused) {
			t.Fatalf("%s: new connection of a removed node: got %v, want ErrPeerRefused", c.ID(target), err)
		}
		pc.Close()
		if err := cluster.RequestVoteAs(cert, c.CA.Pool(), c.ID(victim), c.Node(target).Addr()); err == nil {
			t.Fatalf("%s answered a removed node's RequestVote", c.ID(target))
		}
	}
	if len(ev.refused(c.ID(victim), "read_index")) == 0 {
		t.Fatal("no refusal event")
	}
	// Its certificates are revoked in replicated state, so re-adding the
	// ID later does not bring back the old certificates.
	clustertest.WaitFor(t, 5*time.Second, "revocation replicated", func() error {
		for _, target := range []int{leader, other} {
			if _, ok := c.Node(target).RevokedAt(c.ID(victim)); !ok {
				return errors.New(c.ID(target) + " has no revocation")
			}
		}
		return nil
	})
}

// A plain member forwarding a restore or a membership change on its own,
// without an administrator's proof, is refused by the leader, and the
// refusal is reported with the member that forwarded it. Before, any node
// certificate could remove another member.
func TestMemberWithoutAdminProofRefused(t *testing.T) {
	c, ev := startWatched(t)
	leader := c.Leader(5 * time.Second)
	rogue, victim := (leader+1)%3, (leader+2)%3
	members := memberIDs(c.Node(leader))
	cert := clustertest.NodeCert(t, c.CA, c.ID(rogue))
	for _, k := range cluster.ForwardKinds(c.ID(victim), "evil", "127.0.0.1:1") {
		if k.Name != "remove" && k.Name != "restore" && k.Name != "add_voter" && k.Name != "add_nonvoter" {
			continue
		}
		t.Run(k.Name, func(t *testing.T) {
			pc, err := cluster.DialPeer(ctxT(t, 10*time.Second), cert, c.CA.Pool(), c.Node(leader).Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			if err := pc.Send(k.WithoutProof()); !errors.Is(err, cluster.ErrForbidden) {
				t.Fatalf("got %v, want ErrForbidden", err)
			}
			if got := ev.refused(c.ID(rogue), k.Name); len(got) == 0 {
				t.Fatal("no refusal event naming the forwarding node")
			}
		})
	}
	// Through the Node API, a follower forwarding without proof is refused
	// the same way; with the proof it is served.
	if err := c.Node(rogue).RemoveServer(ctxT(t, 10*time.Second), c.ID(victim)); !errors.Is(err, cluster.ErrForbidden) {
		t.Fatalf("remove without proof: got %v, want ErrForbidden", err)
	}
	if got := memberIDs(c.Node(leader)); !slices.Equal(got, members) {
		t.Fatalf("members %v, want %v", got, members)
	}
	if err := c.Node(rogue).RemoveServer(clustertest.AsAdmin(ctxT(t, 10*time.Second)), c.ID(victim)); err != nil {
		t.Fatalf("remove with an administrator's proof: %v", err)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, e := range ev.all {
		if !e.Refused && e.Op == "remove" && e.Peer == c.ID(rogue) && e.Actor == "test-admin" && e.Target == c.ID(victim) {
			return
		}
	}
	t.Fatalf("no event records the forwarded removal with its actor: %+v", ev.all)
}

// clock is a fake clock: the real time plus an offset the test moves.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }
func (c *clock) set(d time.Duration)     { c.offset.Store(int64(d)) }

// An expired node certificate is refused, also on a connection opened while
// it was valid; members renew theirs before they expire with no operator
// action, and the cluster goes on past the old certificates' expiry.
func TestExpiredCertificateRefusedAndMembersRenew(t *testing.T) {
	clk := &clock{}
	var ca *pki.CA
	var mu sync.Mutex
	renewed := map[string]int{}
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, Tune: func(cfg *cluster.Config) {
		cfg.Now = clk.Now
		cfg.Renew = func(_ context.Context, id string, csr []byte) ([]byte, error) {
			return ca.IssueNode(csr, id, []string{cluster.DefaultServerName}, nil, 24*time.Hour, clk.Now())
		}
		id := cfg.NodeID
		cfg.OnRenewed = func(certPEM, keyPEM []byte) error {
			mu.Lock()
			renewed[id]++
			mu.Unlock()
			return nil
		}
	}})
	ca = c.CA
	leader := c.Leader(5 * time.Second)
	member := (leader + 1) % 3
	readIndex := cluster.ForwardKinds("", "", "")[1]

	// A member's certificate valid for an hour, used on a connection that
	// stays open.
	short := issueFor(t, c.CA, c.ID(member), time.Hour)
	pc, err := cluster.DialPeer(ctxT(t, 10*time.Second), short, c.CA.Pool(), c.Node(leader).Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.Send(readIndex); err != nil {
		t.Fatalf("valid certificate: %v", err)
	}
	clk.advance(2 * time.Hour)
	if err := pc.Send(readIndex); !errors.Is(err, cluster.ErrPeerRefused) {
		t.Fatalf("expired certificate on an open connection: got %v, want ErrPeerRefused", err)
	}
	if pc2, err := cluster.DialPeer(ctxT(t, 10*time.Second), short, c.CA.Pool(), c.Node(leader).Addr()); err == nil {
		if err := pc2.Send(readIndex); err == nil {
			t.Fatal("expired certificate served on a new connection")
		}
		pc2.Close()
	}

	// Two thirds into the nodes' 24-hour certificates, every member renews.
	before := map[string]time.Time{}
	for i := 0; i < 3; i++ {
		before[c.ID(i)] = c.Node(i).CertNotAfter()
	}
	clk.set(17 * time.Hour)
	clustertest.WaitFor(t, 20*time.Second, "every member renewed its certificate", func() error {
		for i := 0; i < 3; i++ {
			if !c.Node(i).CertNotAfter().After(before[c.ID(i)]) {
				return fmt.Errorf("%s still has its first certificate", c.ID(i))
			}
		}
		return nil
	})
	mu.Lock()
	if len(renewed) != 3 {
		t.Errorf("renewals kept by %v, want all three nodes", renewed)
	}
	mu.Unlock()

	// Past the first certificates' expiry the cluster still works: old
	// connections are refused and replaced by ones with the new
	// certificates.
	clk.set(25 * time.Hour)
	if _, err := c.Node(member).Put(ctxT(t, 20*time.Second), "after-expiry", []byte("ok")); err != nil {
		t.Fatalf("write after the first certificates expired: %v", err)
	}
}

// issueFor issues a node certificate for id valid for ttl.
func issueFor(t *testing.T, ca *pki.CA, id string, ttl time.Duration) tls.Certificate {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.IssueNode(csr, id, []string{cluster.DefaultServerName}, nil, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.KeyPEM(key)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// Adding a voter at an address that does not answer with that node's
// certificate is refused before anything changes, so a bogus voter can
// never cost the cluster its quorum (one did, on a small cluster, before).
func TestAddVoterAtWrongAddressRefused(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	leader := c.Leader(5 * time.Second)
	other := (leader + 1) % 3
	members := memberIDs(c.Node(leader))
	for name, addr := range map[string]string{
		"another member's address": c.Node(other).Addr(),
		"nothing listening":        "127.0.0.1:1",
	} {
		t.Run(name, func(t *testing.T) {
			err := c.Node(leader).AddVoter(clustertest.AsAdmin(ctxT(t, 10*time.Second)), "n9", addr)
			if !errors.Is(err, cluster.ErrWrongPeer) {
				t.Fatalf("got %v, want ErrWrongPeer", err)
			}
			if got := memberIDs(c.Node(leader)); !slices.Equal(got, members) {
				t.Fatalf("members %v, want %v", got, members)
			}
			if _, err := c.Node(other).Put(ctxT(t, 10*time.Second), "still", []byte("writable")); err != nil {
				t.Fatalf("write after the refusal: %v", err)
			}
		})
	}
}

// A node admitted as a non-voter that never starts (a join token redeemed
// by a machine that never came up) is removed by the leader after
// NonvoterTimeout, and its certificates are revoked.
func TestNonvoterThatNeverStartsIsRemoved(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, Tune: func(cfg *cluster.Config) {
		cfg.NonvoterTimeout = 500 * time.Millisecond
	}})
	leader := c.Leader(5 * time.Second)
	if err := c.Node(leader).AddNonvoter(ctxT(t, 10*time.Second), "n9", "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if got := memberIDs(c.Node(leader)); !slices.Contains(got, "n9") {
		t.Fatalf("members %v: n9 not added", got)
	}
	clustertest.WaitFor(t, 15*time.Second, "the never-started non-voter removed and revoked", func() error {
		for i := 0; i < 3; i++ {
			if slices.Contains(memberIDs(c.Node(i)), "n9") {
				return fmt.Errorf("%s still has n9", c.ID(i))
			}
			if _, ok := c.Node(i).RevokedAt("n9"); !ok {
				return fmt.Errorf("%s has no revocation of n9", c.ID(i))
			}
		}
		return nil
	})
	if n := len(memberIDs(c.Node(leader))); n != 3 {
		t.Fatalf("%d members, want 3", n)
	}
}

// A backup restored into another cluster brings the old cluster's nodes
// along in its state, but not their standing: every node the backup knew
// that is not a member here is revoked, so a later node re-admitted under
// such an ID is not joined by the old machine's certificate.
func TestRestoreIntoNewClusterRevokesOldNodes(t *testing.T) {
	src := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	leader := src.Leader(5 * time.Second)
	if _, err := src.Node(leader).Put(ctxT(t, 10*time.Second), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	src.WaitConverged(10 * time.Second)
	var backup bytes.Buffer
	if _, err := src.Node(leader).Backup(&backup); err != nil {
		t.Fatal(err)
	}
	dst := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	if err := dst.Node(0).Restore(ctxT(t, 20*time.Second), bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 10*time.Second, "the backup's other nodes revoked", func() error {
		for _, id := range []string{"n2", "n3"} {
			if _, ok := dst.Node(0).RevokedAt(id); !ok {
				return fmt.Errorf("%s not revoked", id)
			}
		}
		return nil
	})
	if _, ok := dst.Node(0).RevokedAt("n1"); ok {
		t.Fatal("the restoring cluster's own member was revoked")
	}
	if _, err := dst.Node(0).Put(ctxT(t, 10*time.Second), "after", []byte("restore")); err != nil {
		t.Fatal(err)
	}
}

// A node admitted as a non-voter (a redeemed join token) writes nothing
// until it has caught up and been promoted, and its certificate cannot
// promote it from elsewhere: the leader promotes only a node that answers
// at its configured address.
func TestNonvoterCannotWriteOrPromoteFromElsewhere(t *testing.T) {
	c, ev := startWatched(t)
	leader := c.Leader(5 * time.Second)
	if err := c.Node(leader).AddNonvoter(ctxT(t, 10*time.Second), "n9", "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	cert := clustertest.NodeCert(t, c.CA, "n9")
	kinds := map[string]cluster.ForwardKind{}
	for _, k := range cluster.ForwardKinds(c.ID((leader+1)%3), "evil", "127.0.0.1:1") {
		kinds[k.Name] = k
	}
	send := func(k cluster.ForwardKind) error {
		pc, err := cluster.DialPeer(ctxT(t, 10*time.Second), cert, c.CA.Pool(), c.Node(leader).Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.Send(k)
	}
	for _, name := range []string{"apply", "remove", "restore", "add_nonvoter"} {
		if err := send(kinds[name]); !errors.Is(err, cluster.ErrPeerRefused) {
			t.Errorf("%s from a non-voter: got %v, want ErrPeerRefused", name, err)
		}
	}
	if err := send(kinds["promote"]); !errors.Is(err, cluster.ErrForbidden) {
		t.Errorf("promote from elsewhere: got %v, want ErrForbidden", err)
	}
	for _, m := range c.Node(leader).Status().Members {
		if m.ID == "n9" && m.Voter {
			t.Fatal("n9 was promoted without answering at its address")
		}
	}
	if _, ok, _ := c.Node(leader).Get(ctxT(t, 5*time.Second), "evil", cluster.Linearizable); ok {
		t.Fatal("the non-voter's write landed")
	}
	if len(ev.refused("n9", "apply")) == 0 || len(ev.refused("n9", "promote")) == 0 {
		t.Fatal("refusals not reported")
	}
}
