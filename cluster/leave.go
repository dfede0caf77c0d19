package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// A node leaves the cluster (scale-in, instance replacement) by asking any
// member, usually its own running node, over the cluster listener with its
// own node certificate: a fwdLeave request naming itself. A member that does
// not lead answers with the leader's address, and the node asks the leader,
// which checks that the certificate's common name is the node to remove
// (ErrForbidden otherwise) and refuses when the voters that remain would
// have no live majority (ErrWouldLoseQuorum). A leader that is asked to
// remove itself first hands leadership to a live voter, which then removes
// it. The removal revokes the node's certificates.

// LeaveConfig configures Leave.
type LeaveConfig struct {
	// NodeID is the node to remove: the common name of Certificate.
	// Required.
	NodeID string
	// Addr is the cluster address (host:port) of the member that takes the
	// request: the node's own listener, or any other member's. Required.
	Addr string
	// Certificate is NodeID's node certificate and key. Required.
	Certificate tls.Certificate
	// RootCAs holds the cluster CA. Required.
	RootCAs *x509.CertPool
	// ServerName is the name node certificates are verified against;
	// default DefaultServerName.
	ServerName string
	// Dial opens the connection; default net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Leave asks the cluster to remove the node named by cfg from its
// configuration, and returns once the removal is committed. It retries
// while the cluster elects a leader, until ctx ends. It returns an error
// wrapping ErrNotMember when the node is not a member, ErrWouldLoseQuorum
// when the voters that would remain have no live majority (the leader's
// heartbeats decide which voters are live) or when the node is the last
// voter, and ErrForbidden when the certificate is not NodeID's.
func Leave(ctx context.Context, cfg LeaveConfig) error {
	switch {
	case !nodeIDPattern.MatchString(cfg.NodeID):
		return fmt.Errorf("%w: node id %q", ErrInvalid, cfg.NodeID)
	case cfg.Addr == "":
		return fmt.Errorf("%w: leave: address of a member required", ErrInvalid)
	case len(cfg.Certificate.Certificate) == 0 || cfg.RootCAs == nil:
		return fmt.Errorf("%w: leave: node certificate and cluster CA required", ErrInvalid)
	}
	ncfg := Config{Certificate: cfg.Certificate, RootCAs: cfg.RootCAs, ServerName: cfg.ServerName, Dial: cfg.Dial}
	ncfg.setDefaults()
	_, clientTLS := ncfg.tlsConfigs(nil)
	d := &dialer{clientTLS: clientTLS, dial: ncfg.Dial}
	mayHaveLeft := false // an earlier attempt may have taken effect
	addr := cfg.Addr
	for {
		err := leaveOnce(ctx, d, addr, cfg.NodeID)
		var re *redirectError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re) && re.addr != "":
			addr = re.addr
			continue
		case (errors.Is(err, ErrNotMember) || errors.Is(err, ErrPeerRefused)) && mayHaveLeft:
			return nil
		case errors.Is(err, ErrOutcomeUnknown):
			mayHaveLeft = true
		case !errors.Is(err, ErrNoQuorum) && !errors.Is(err, ErrNotLeader) && !errors.Is(err, errNotSent):
			return err
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("leaving the cluster: %w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// leaveOnce sends one fwdLeave request to addr and waits for its answer.
func leaveOnce(ctx context.Context, d *dialer, addr, id string) error {
	c, err := d.dialProto(ctx, addr, protoForward)
	if err != nil {
		// A member that cannot be reached may be back soon; one that
		// fails the handshake will fail it again.
		if op := (*net.OpError)(nil); errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w: dialing %s: %v", errNotSent, addr, err)
		}
		return fmt.Errorf("connecting to %s: %w", addr, err)
	}
	defer c.Close()
	ms := uint64(time.Minute / time.Millisecond)
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
		ms = uint64(min(max(time.Until(dl), time.Millisecond), maxForwardWait) / time.Millisecond)
	}
	if err := writeFrame(c, binary.AppendUvarint([]byte{fwdLeave}, ms), []byte(id)); err != nil {
		return fmt.Errorf("%w: writing to %s: %v", errNotSent, addr, err)
	}
	resp, err := readFrame(c)
	if err != nil {
		// With TLS 1.3 a refused client certificate shows only now, as
		// the member's alert.
		if op := (*net.OpError)(nil); errors.As(err, &op) && op.Op == "remote error" {
			return fmt.Errorf("%s refused this node's certificate: %w", addr, err)
		}
		return fmt.Errorf("%w: reading from %s: %v", ErrOutcomeUnknown, addr, err)
	}
	if resp[0] != stOK {
		return errorOf(resp[0], string(resp[1:]))
	}
	return nil
}

// leave serves a node's request to remove id, asked with the certificate
// of req.peer: the leader removes it, other members send the node to the
// leader.
func (n *Node) leave(ctx context.Context, req forwardRequest, id string) error {
	if !nodeIDPattern.MatchString(id) {
		return fmt.Errorf("%w: node id %q", ErrInvalid, id)
	}
	ev := PeerEvent{Peer: req.peer, Serial: certSerial(req.cert), Remote: req.remote, Op: "leave", Target: id}
	if req.peer != id {
		err := fmt.Errorf("%w: the certificate of node %q cannot remove node %q", ErrForbidden, req.peer, id)
		n.log.Warn("refused a node's request to remove another node", "peer", req.peer, "id", id)
		ev.Refused, ev.Reason = true, err.Error()
		n.event(ev)
		return err
	}
	if _, ok := n.member(id); !ok {
		return fmt.Errorf("%w: node %q is not in this node's configuration", ErrNotMember, id)
	}
	if n.raft.State() != raft.Leader {
		if _, addr := n.Leader(); addr != "" {
			return &redirectError{addr: addr}
		}
		return ErrNotLeader
	}
	n.log.Info("node asks to leave the cluster", "id", id)
	err := n.leaveLocal(ctx, id)
	if err == nil || !errors.Is(err, ErrNotLeader) {
		if err != nil {
			ev.Reason = err.Error()
		}
		n.event(ev)
	}
	return err
}

// member returns id's entry in this node's latest configuration.
func (n *Node) member(id string) (raft.Server, bool) {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return raft.Server{}, false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return s, true
		}
	}
	return raft.Server{}, false
}

// leaveLocal removes id on the leader, unless the voters that would remain
// have no live majority. The leader leaving hands leadership to a live voter
// first and answers ErrNotLeader, so that the caller asks the new leader.
func (n *Node) leaveLocal(ctx context.Context, id string) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	var target *raft.Server
	var remaining []raft.Server // voters other than id
	for _, s := range f.Configuration().Servers {
		switch {
		case string(s.ID) == id:
			target = &s
		case s.Suffrage == raft.Voter:
			remaining = append(remaining, s)
		}
	}
	if target == nil {
		return fmt.Errorf("%w: node %q", ErrNotMember, id)
	}
	var successor *raft.Server
	if target.Suffrage == raft.Voter {
		if len(remaining) == 0 {
			return fmt.Errorf("%w: %q is the last voter of the cluster", ErrWouldLoseQuorum, id)
		}
		live := 0
		for i, s := range remaining {
			if string(s.ID) == n.cfg.NodeID || n.health.healthy(string(s.ID)) {
				live++
				if successor == nil {
					successor = &remaining[i]
				}
			}
		}
		if need := len(remaining)/2 + 1; live < need {
			return fmt.Errorf("%w: without %q, %d of the %d remaining voters are live and a quorum needs %d; bring the others back or remove dead ones first",
				ErrWouldLoseQuorum, id, live, len(remaining), need)
		}
	}
	if id == n.cfg.NodeID {
		if successor == nil { // a leader is a voter; this is a second lock
			return fmt.Errorf("%w: no live voter to hand leadership to", ErrWouldLoseQuorum)
		}
		n.log.Info("transferring leadership before leaving", "to", successor.ID)
		if err := awaitRaft(ctx, n.raft.LeadershipTransferToServer(successor.ID, successor.Address)); err != nil {
			return fmt.Errorf("transferring leadership to %s before leaving: %w", successor.ID, raftErr(err))
		}
		return fmt.Errorf("%w: handed leadership to %s to leave", ErrNotLeader, successor.ID)
	}
	return n.removeLocal(ctx, id)
}
