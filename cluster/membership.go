package cluster

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Member is one server in the cluster configuration.
type Member struct {
	ID     string `json:"id"`
	Addr   string `json:"addr"`
	Voter  bool   `json:"voter"`
	Leader bool   `json:"leader"`
	// Healthy is known only on the leader, from its heartbeats: nil elsewhere.
	Healthy *bool `json:"healthy,omitempty"`
}

// Status is a node's view of the cluster.
type Status struct {
	NodeID      string `json:"node_id"`
	Addr        string `json:"addr"`
	State       string `json:"state"`
	LeaderID    string `json:"leader_id"`
	LeaderAddr  string `json:"leader_addr"`
	Term        uint64 `json:"term"`
	CommitIndex uint64 `json:"commit_index"`
	// AppliedIndex is the last log entry reflected in this node's state.
	// Raft's own no-op entries never reach the state, so it may trail
	// CommitIndex on a quiet cluster.
	AppliedIndex uint64        `json:"applied_index"`
	LastIndex    uint64        `json:"last_index"`
	LastContact  time.Duration `json:"last_contact_ns"`
	JournalSeq   uint64        `json:"journal_seq"`
	Members      []Member      `json:"members"`
}

// Status reports this node's view of the cluster.
func (n *Node) Status() Status {
	lid, laddr := n.Leader()
	s := Status{
		NodeID: n.cfg.NodeID, Addr: n.advert,
		State: n.raft.State().String(), LeaderID: lid, LeaderAddr: laddr,
		Term: n.raft.CurrentTerm(), CommitIndex: n.raft.CommitIndex(),
		AppliedIndex: n.fsm.applied.Load(), LastIndex: n.raft.LastIndex(),
		LastContact: time.Since(n.raft.LastContact()),
	}
	if s.State == raft.Leader.String() {
		s.LastContact = 0
	}
	s.JournalSeq, _, _ = n.fsm.lastSeq()
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		leading := s.State == raft.Leader.String()
		for _, srv := range f.Configuration().Servers {
			m := Member{ID: string(srv.ID), Addr: string(srv.Address), Voter: srv.Suffrage == raft.Voter, Leader: string(srv.ID) == lid}
			if leading {
				h := string(srv.ID) == n.cfg.NodeID || n.health.healthy(string(srv.ID))
				m.Healthy = &h
			}
			s.Members = append(s.Members, m)
		}
	}
	return s
}

// Ready returns nil when this node can serve: it knows a leader, has heard
// from it recently, and has caught up with it: a follower has applied up to
// within ReadyLag entries of the leader's applied index, which it asks the
// leader for (a restarted follower knows no commit index until the leader
// sends it entries); a leader has committed an entry of its term and
// applied what it committed. Load balancers take a node out while it
// returns an error.
func (n *Node) Ready() error {
	if n.ctx.Err() != nil {
		return ErrClosed
	}
	st := n.raft.State()
	if lid, _ := n.Leader(); lid == "" {
		return errors.New("no leader known")
	}
	if st != raft.Leader {
		if since := time.Since(n.raft.LastContact()); since > 2*n.cfg.HeartbeatTimeout {
			return fmt.Errorf("no contact with the leader for %s", since.Round(time.Millisecond))
		}
		// Ready means caught up with the leader, not merely in touch.
		if err := n.followerLag(); err != nil {
			return err
		}
	} else if !n.leaderReady.Load() {
		return errors.New("new leader has not committed its first entry")
	}
	if applied, commit := n.raft.AppliedIndex(), n.raft.CommitIndex(); applied < commit {
		return fmt.Errorf("applied index %d behind commit index %d", applied, commit)
	}
	return nil
}

// AddVoter adds a voting member through the non-voter path: it checks that
// addr answers with id's node certificate (ErrWrongPeer otherwise), adds
// the node as a non-voter, and waits until the node, once it has caught up,
// has had itself promoted to voter with its own certificate. A node that
// never catches up never votes, so adding a wrong or dead address cannot
// cost the cluster its quorum; the leader removes a non-voter that was not
// promoted within Config.NonvoterTimeout. Forwarded to the leader, the
// change carries the proof of ctx (WithProof).
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	if err := checkMemberArgs(id, addr); err != nil {
		return err
	}
	if m, ok := n.member(id); ok && string(m.Address) == addr && m.Suffrage == raft.Voter {
		return nil // already a voter: joining is idempotent
	}
	if err := n.probe(ctx, id, addr); err != nil {
		return err
	}
	if err := n.AddNonvoter(ctx, id, addr); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, max(n.cfg.WriteTimeout, promoteWait))
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if m, ok := n.member(id); ok && m.Suffrage == raft.Voter {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("%w: node %q was added as a non-voter but has not caught up and asked to vote: %v", ErrNoQuorum, id, wctx.Err())
		case <-n.ctx.Done():
			return ErrClosed
		case <-t.C:
		}
	}
}

// promoteWait is the least AddVoter waits for the new node to promote
// itself.
const promoteWait = 30 * time.Second

// AddNonvoter adds (or updates the address of) a member that receives the
// log but does not vote; a voter stays a voter. The node promotes itself
// once it has caught up (see AddVoter). It runs on the leader, forwarded
// with the proof of ctx if needed.
func (n *Node) AddNonvoter(ctx context.Context, id, addr string) error {
	if err := checkMemberArgs(id, addr); err != nil {
		return err
	}
	p := appendBytes(appendBytes(nil, []byte(id)), []byte(addr))
	return n.onLeader(ctx, fwdAddNonvoter, p, func(ctx context.Context) error { return n.addNonvoterLocal(ctx, id, addr) })
}

func checkMemberArgs(id, addr string) error {
	if !nodeIDPattern.MatchString(id) {
		return fmt.Errorf("%w: node id %q", ErrInvalid, id)
	}
	if addr == "" || len(addr) > MaxKeyLen {
		return fmt.Errorf("%w: node address %q", ErrInvalid, addr)
	}
	return nil
}

// probe checks that addr answers with a valid, unrevoked node certificate
// for id.
func (n *Node) probe(ctx context.Context, id, addr string) error {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	c, err := n.fwd.d.dialProto(pctx, addr, protoProbe)
	if err != nil {
		return fmt.Errorf("%w: %s (for node %q): %v", ErrWrongPeer, addr, id, err)
	}
	defer c.Close()
	tc, ok := c.(*tls.Conn)
	if !ok || len(tc.ConnectionState().PeerCertificates) == 0 {
		return fmt.Errorf("%w: %s showed no certificate", ErrWrongPeer, addr)
	}
	cert := tc.ConnectionState().PeerCertificates[0]
	if got := cert.Subject.CommonName; got != id {
		return fmt.Errorf("%w: %s answers as node %q, not %q", ErrWrongPeer, addr, got, id)
	}
	if t, ok := n.RevokedAt(id); ok && !cert.NotBefore.After(t) {
		return fmt.Errorf("%w: %s answers with a revoked certificate of %q", ErrWrongPeer, addr, id)
	}
	return nil
}

// probeTimeout bounds the probe of a new member's address.
const probeTimeout = 5 * time.Second

// RemoveServer removes a member and revokes its certificates. Removing the
// leader makes it hand leadership to a live voter first, which then
// removes it. Forwarded to the leader, it carries the proof of ctx.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if !nodeIDPattern.MatchString(id) {
		return fmt.Errorf("%w: node id %q", ErrInvalid, id)
	}
	return n.onLeader(ctx, fwdRemove, []byte(id), func(ctx context.Context) error { return n.removeLocal(ctx, id) })
}

// onLeader runs local on the leader or forwards kind to it, retrying while
// there is no leader, up to the write timeout.
func (n *Node) onLeader(ctx context.Context, kind byte, payload []byte, local func(context.Context) error) error {
	ctx, cancel := n.writeCtx(ctx)
	defer cancel()
	for {
		var err error
		if n.raft.State() == raft.Leader {
			err = local(ctx)
		} else if _, addr := n.Leader(); addr != "" {
			p := payload
			if adminKinds[kind] {
				p = append(appendBytes(nil, proofFrom(ctx)), payload...)
			}
			_, err = n.fwd.call(ctx, addr, kind, p)
		} else {
			err = ErrNotLeader
		}
		if err == nil || (!errors.Is(err, ErrNotLeader) && !errors.Is(err, errNotSent)) {
			return err
		}
		if werr := n.waitRetry(ctx); werr != nil {
			return fmt.Errorf("%w: %v", ErrNoQuorum, err)
		}
	}
}

func timeLeft(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return 10 * time.Second
}

func raftErr(err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	return err
}

func (n *Node) addNonvoterLocal(ctx context.Context, id, addr string) error {
	if m, ok := n.member(id); ok && string(m.Address) == addr {
		return nil // already a member: joining is idempotent
	}
	if err := raftErr(n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeLeft(ctx)).Error()); err != nil {
		return fmt.Errorf("adding non-voter %s: %w", id, err)
	}
	n.log.Info("added non-voter", "id", id, "addr", addr)
	return n.noteKnown(ctx, id)
}

// promoteLocal makes the non-voter that asks, with its own certificate, a
// voter.
func (n *Node) promoteLocal(ctx context.Context, req forwardRequest) error {
	id := req.peer
	m, ok := n.member(id)
	switch {
	case !ok:
		return fmt.Errorf("%w: node %q", ErrNotMember, id)
	case m.Suffrage == raft.Voter:
		return nil
	}
	// The node must answer at its configured address with its certificate:
	// a certificate used from elsewhere cannot make a dead address vote.
	if err := n.probe(ctx, id, string(m.Address)); err != nil {
		n.event(PeerEvent{Peer: id, Serial: certSerial(req.cert), Remote: req.remote, Op: "promote", Target: id, Refused: true, Reason: err.Error()})
		return fmt.Errorf("%w: promoting %s: %v", ErrForbidden, id, err)
	}
	if err := raftErr(n.raft.AddVoter(m.ID, m.Address, 0, timeLeft(ctx)).Error()); err != nil {
		return fmt.Errorf("promoting %s: %w", id, err)
	}
	n.log.Info("promoted non-voter to voter", "id", id, "addr", m.Address)
	n.event(PeerEvent{Peer: id, Serial: certSerial(req.cert), Remote: req.remote, Op: "promote", Target: id})
	return nil
}

// removeLocal removes id on the leader and revokes its certificates. The
// leader removing itself hands leadership to a live voter first and
// answers ErrNotLeader, so that the caller asks the new leader.
func (n *Node) removeLocal(ctx context.Context, id string) error {
	if id == n.cfg.NodeID {
		return n.handOver(ctx, id)
	}
	if err := raftErr(n.raft.RemoveServer(raft.ServerID(id), 0, timeLeft(ctx)).Error()); err != nil {
		return fmt.Errorf("removing %s: %w", id, err)
	}
	n.log.Info("removed server", "id", id)
	n.sweep()
	return n.revoke(ctx, id)
}

// handOver transfers leadership to a live voter so that it removes id, this
// node.
func (n *Node) handOver(ctx context.Context, id string) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id || s.Suffrage != raft.Voter || !n.health.healthy(string(s.ID)) {
			continue
		}
		n.log.Info("transferring leadership before being removed", "to", s.ID)
		if err := awaitRaft(ctx, n.raft.LeadershipTransferToServer(s.ID, s.Address)); err != nil {
			return fmt.Errorf("transferring leadership to %s before removing %s: %w", s.ID, id, raftErr(err))
		}
		return fmt.Errorf("%w: handed leadership to %s to remove %s", ErrNotLeader, s.ID, id)
	}
	return fmt.Errorf("%w: no live voter to hand leadership to", ErrWouldLoseQuorum)
}

// tendMembership runs for the node's life: the node renews its certificate
// when due, a non-voter that has caught up asks the leader to promote it,
// and a leader removes non-voters that were
// never promoted within Config.NonvoterTimeout (a join token redeemed by a
// node that never started).
func (n *Node) tendMembership() {
	t := time.NewTicker(tendInterval)
	defer t.Stop()
	firstSeen := map[raft.ServerID]time.Time{}
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.maybeRenew()
		servers := n.raft.GetConfiguration().Configuration().Servers
		leader := n.raft.State() == raft.Leader
		t.Reset(tendWait(n.cfg.NodeID, leader, servers))
		if !leader {
			clear(firstSeen)
			n.promoteSelf(servers)
			continue
		}
		now := n.cfg.Now()
		seen := map[raft.ServerID]bool{}
		for _, s := range servers {
			if s.Suffrage == raft.Voter {
				continue
			}
			seen[s.ID] = true
			first, ok := firstSeen[s.ID]
			if !ok {
				firstSeen[s.ID] = now
				continue
			}
			if now.Sub(first) < n.cfg.NonvoterTimeout {
				continue
			}
			n.log.Warn("removing a non-voter that never caught up", "id", s.ID, "since", first)
			ctx, cancel := n.writeCtx(n.ctx)
			err := n.removeLocal(ctx, string(s.ID))
			cancel()
			if err != nil {
				n.log.Warn("removing a stale non-voter failed", "id", s.ID, "err", err)
				continue
			}
			n.event(PeerEvent{Peer: n.cfg.NodeID, Op: "remove", Target: string(s.ID), Reason: "non-voter not promoted within " + n.cfg.NonvoterTimeout.String()})
		}
		for id := range firstSeen {
			if !seen[id] {
				delete(firstSeen, id)
			}
		}
	}
}

// tendInterval is how often tendMembership looks at the configuration
// while there is membership work to do.
const tendInterval = 200 * time.Millisecond

// tendIdleInterval is how often it looks otherwise: only a certificate
// renewal can then become due, hours ahead of the certificate's expiry.
const tendIdleInterval = time.Second

// tendWait returns how long tendMembership waits before its next look:
// tendInterval while there is membership work (this node is a non-voter or
// not in the configuration yet, so that it asks to be promoted as soon as
// it caught up; or it leads a cluster with non-voters, whose time to be
// promoted runs from when it first saw them), tendIdleInterval otherwise.
// Looking five times a second with nothing to do was about a third of an
// idle gateway's CPU time (ferry's docs/data-plane.md), and that idle cost
// is counted in every gigabyte the gateway forwards.
func tendWait(self string, leader bool, servers []raft.Server) time.Duration {
	in := false
	for _, s := range servers {
		if string(s.ID) == self {
			in = true
		}
		if s.Suffrage != raft.Voter && (leader || string(s.ID) == self) {
			return tendInterval
		}
	}
	if !in {
		return tendInterval
	}
	return tendIdleInterval
}

// promoteSelf asks the leader to make this node a voter once it is a
// caught-up non-voter.
func (n *Node) promoteSelf(servers []raft.Server) {
	var me *raft.Server
	for i := range servers {
		if string(servers[i].ID) == n.cfg.NodeID {
			me = &servers[i]
		}
	}
	if me == nil || me.Suffrage == raft.Voter {
		return
	}
	_, addr := n.Leader()
	if addr == "" || n.raft.CommitIndex() == 0 || n.raft.AppliedIndex() < n.raft.CommitIndex() ||
		time.Since(n.raft.LastContact()) > 2*n.cfg.HeartbeatTimeout {
		return
	}
	ctx, cancel := n.writeCtx(n.ctx)
	defer cancel()
	if _, err := n.fwd.call(ctx, addr, fwdPromote, nil); err != nil {
		n.log.Info("asking to become a voter failed; will retry", "err", err)
		return
	}
	n.log.Info("caught up; the leader made this node a voter")
}

// leaderReadIndex returns an index that covers every write acknowledged
// before the call, after confirming leadership with a quorum. It is the
// index of the last entry this leader's state machine applied: a write is
// acknowledged only after the leader applied it, and a new leader is
// ready only after its barrier applied everything its predecessors
// committed. (Raft's commit index would not do: its no-op and barrier
// entries never reach the state machine.)
func (n *Node) leaderReadIndex(ctx context.Context) (uint64, error) {
	for !n.leaderReady.Load() {
		if n.raft.State() != raft.Leader {
			return 0, ErrNotLeader
		}
		if err := n.waitRetry(ctx); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrNoQuorum, err)
		}
	}
	idx := n.fsm.applied.Load()
	if err := awaitRaft(ctx, n.raft.VerifyLeader()); err != nil {
		return 0, raftErr(err)
	}
	return idx, nil
}

// awaitRaft waits for f's answer, at most until ctx ends (then with
// ErrNoQuorum). Raft may never answer a future it took as it shut down:
// VerifyLeader and LeadershipTransferToServer hand theirs to the run loop on
// buffered channels, and their select, finding both the shutdown channel
// closed and room in the buffer, may pick the buffer after the loop has
// stopped reading it. A node closing while serving a read index then waited
// forever, and so did its Close. The goroutine left behind ends whenever
// Raft answers, if ever.
func awaitRaft(ctx context.Context, f raft.Future) error {
	answered := make(chan error, 1)
	go func() { answered <- f.Error() }()
	select {
	case err := <-answered:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for raft: %v", ErrNoQuorum, ctx.Err())
	}
}

// readBarrier waits until this node has applied everything committed before
// the call, as confirmed by the leader.
func (n *Node) readBarrier(ctx context.Context) error {
	ctx, cancel := n.writeCtx(ctx)
	defer cancel()
	var idx uint64
	for {
		var err error
		if n.raft.State() == raft.Leader {
			idx, err = n.leaderReadIndex(ctx)
		} else if _, addr := n.Leader(); addr != "" {
			var out []byte
			if out, err = n.fwd.call(ctx, addr, fwdReadIndex, nil); err == nil {
				if len(out) != 8 {
					return errors.New("cluster: malformed read index from leader")
				}
				idx = binary.BigEndian.Uint64(out)
			}
		} else {
			err = ErrNotLeader
		}
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, errNotSent) && !errors.Is(err, ErrOutcomeUnknown) {
			return err
		}
		if werr := n.waitRetry(ctx); werr != nil {
			return fmt.Errorf("%w: %v", ErrNoQuorum, err)
		}
	}
	return n.waitApplied(ctx, idx)
}

// waitApplied blocks until the state includes the entry at index idx.
func (n *Node) waitApplied(ctx context.Context, idx uint64) error {
	for {
		sig := n.fsm.appliedSignal()
		if n.fsm.applied.Load() >= idx {
			return nil
		}
		select {
		case <-sig:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting to apply index %d: %v", ErrNoQuorum, idx, ctx.Err())
		case <-n.ctx.Done():
			return ErrClosed
		}
	}
}

// peerHealth follows the leader's heartbeat observations. A peer is
// unhealthy from a failed heartbeat until a heartbeat to it resumes. Raft
// reports a resumed heartbeat only from the replication that saw it fail,
// which ends with the leadership: so every change of leader starts afresh,
// and a node that leads again does not keep a live peer marked unhealthy
// from its previous term.
type peerHealth struct {
	obs *raft.Observer
	ch  chan raft.Observation
	wg  sync.WaitGroup

	mu     sync.Mutex // guards failed
	failed map[string]bool
}

func newPeerHealth(r *raft.Raft, peers *peerLog) *peerHealth {
	ch := make(chan raft.Observation, 64)
	h := &peerHealth{ch: ch, failed: make(map[string]bool)}
	h.obs = raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation, raft.PeerObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(h.obs)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for o := range ch {
			if p, ok := o.Data.(raft.PeerObservation); ok && peers != nil {
				peers.learn(string(p.Peer.ID), string(p.Peer.Address))
			}
			h.observe(o.Data)
		}
	}()
	return h
}

// observe updates the view with one observation.
func (h *peerHealth) observe(data any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch d := data.(type) {
	case raft.FailedHeartbeatObservation:
		h.failed[string(d.PeerID)] = true
	case raft.ResumedHeartbeatObservation:
		delete(h.failed, string(d.PeerID))
	case raft.LeaderObservation:
		clear(h.failed)
	}
}

func (h *peerHealth) healthy(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.failed[id]
}

// stop deregisters the observer and waits for its goroutine.
func (h *peerHealth) stop(r *raft.Raft) {
	r.DeregisterObserver(h.obs)
	close(h.ch)
	h.wg.Wait()
}
