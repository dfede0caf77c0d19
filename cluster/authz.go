package cluster

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Only members speak for the cluster. The CA signs certificates for nodes
// that may never join (a redeemed join token whose node never started) and
// nodes that were removed keep theirs, so a certificate from the cluster CA
// is not enough: every Raft RPC and every forwarded request is served only
// when the peer certificate's node ID is in this node's latest Raft
// configuration (voter or non-voter), the certificate has not expired by the
// node's clock, and it was issued after the node's last revocation. The
// check runs per request, not only at the handshake, and connections of a
// peer that stops passing it are closed when the configuration or the
// revocations change.
//
// A node whose configuration is empty (a new node waiting for the leader to
// replicate to it) accepts Raft RPCs from any node certificate: it holds no
// state yet, and the leader that adds it is not in its configuration until
// the first entries arrive. It serves no forwarded request.

// PeerEvent reports what the cluster port did with a peer's request that
// matters to an audit trail: every refusal, and every forwarded request
// that changes the cluster's shape (membership, restore) or issues a
// certificate, with the proof's actor.
type PeerEvent struct {
	// Peer is the node ID named by the peer's certificate; empty when the
	// connection had no verified certificate.
	Peer string
	// Serial is the peer certificate's serial number in hex.
	Serial string
	// Remote is the peer's network address.
	Remote string
	// Op names the request: raft, apply, read_index, add_nonvoter,
	// add_voter, remove, restore, leave, promote, renew, service (Target
	// is the service's name).
	Op string
	// Target is the node the request is about, if any.
	Target string
	// Actor is who the request's proof names (an administrator), if any.
	Actor string
	// Refused reports whether the request was refused.
	Refused bool
	// Reason says why it was refused, or how it failed.
	Reason string
}

// revocationPrefix holds the cluster's revocations: one key per node ID,
// whose value is the revocation time (Unix nanoseconds, 8 bytes
// big-endian). A certificate of that node issued at or before that time is
// refused. The prefix belongs to this package; domain code never writes it.
const revocationPrefix = "sys/cluster/revoked/"

// knownPrefix records every node ID ever admitted (one key per ID), so that
// a restore into another cluster can revoke the certificates of the
// backup's nodes that are not members here.
const knownPrefix = "sys/cluster/known/"

// noteKnown records ids as admitted, those not recorded yet.
func (n *Node) noteKnown(ctx context.Context, ids ...string) error {
	for _, id := range ids {
		if _, ok, err := n.fsm.get(knownPrefix + id); err != nil || ok {
			continue
		}
		if _, err := n.Put(ctx, knownPrefix+id, nil); err != nil {
			return fmt.Errorf("recording node %s as admitted: %w", id, err)
		}
	}
	return nil
}

// revokeStrangers revokes the certificates of every node the state knows as
// admitted that is not in the current configuration: after a restore, the
// nodes of the cluster the backup came from.
func (n *Node) revokeStrangers(ctx context.Context) error {
	kvs, _, err := n.fsm.list(knownPrefix)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		id := strings.TrimPrefix(kv.Key, knownPrefix)
		if _, member := n.member(id); member {
			continue
		}
		if err := n.revoke(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// opNames names the forward kinds in PeerEvents.
var opNames = map[byte]string{
	fwdApply: "apply", fwdReadIndex: "read_index", fwdAddVoter: "add_voter", fwdRemove: "remove",
	fwdRestore: "restore", fwdLeave: "leave", fwdAddNonvoter: "add_nonvoter",
	fwdPromote: "promote", fwdRenew: "renew", fwdService: "service",
}

func opName(kind byte) string {
	if s, ok := opNames[kind]; ok {
		return s
	}
	return fmt.Sprintf("kind_%d", kind)
}

// peerChecker decides whether a peer certificate may speak for the
// cluster right now; raft reports whether the request is a Raft RPC, kind
// is the forward kind otherwise (0 for the connection as a whole). It is
// swapped only by tests that measure its cost.
type peerChecker func(cert *x509.Certificate, raft bool, kind byte) error

// authz holds what the per-request check reads: revocations, swapped
// atomically so the hot path takes no lock.
type authz struct {
	revoked atomic.Pointer[map[string]time.Time]
	check   atomic.Pointer[peerChecker]

	mu    sync.Mutex // guards conns
	conns map[net.Conn]*peerConn
}

// peerConn is an accepted connection with the certificate that opened it.
type peerConn struct {
	cert *x509.Certificate
	raft bool
}

func newAuthz() *authz {
	a := &authz{conns: make(map[net.Conn]*peerConn)}
	empty := map[string]time.Time{}
	a.revoked.Store(&empty)
	return a
}

// checkPeer is the production peerChecker.
func (n *Node) checkPeer(cert *x509.Certificate, raftRPC bool, kind byte) error {
	id := cert.Subject.CommonName
	if now := n.cfg.Now(); now.After(cert.NotAfter) {
		return fmt.Errorf("%w: the certificate of %q expired at %s", ErrPeerRefused, id, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if t, ok := (*n.authz.revoked.Load())[id]; ok && !cert.NotBefore.After(t) {
		return fmt.Errorf("%w: the certificates of %q issued before %s are revoked", ErrPeerRefused, id, t.UTC().Format(time.RFC3339))
	}
	if n.raft == nil {
		return fmt.Errorf("%w: this node has not started", ErrPeerRefused)
	}
	servers := n.raft.GetConfiguration().Configuration().Servers
	if len(servers) == 0 {
		if raftRPC {
			return nil
		}
		return fmt.Errorf("%w: this node is in no cluster yet", ErrPeerRefused)
	}
	for _, s := range servers {
		if string(s.ID) != id {
			continue
		}
		if s.Suffrage != raft.Voter && kind != 0 && !nonvoterKinds[kind] {
			return fmt.Errorf("%w: %q is a non-voter, admitted but not yet caught up and promoted", ErrPeerRefused, id)
		}
		return nil
	}
	return fmt.Errorf("%w: %q is not a member of the cluster", ErrPeerRefused, id)
}

// nonvoterKinds are what a non-voter may forward: a node admitted with a
// join token writes nothing until it has caught up and been promoted, so a
// redeemed token is no back door into the store.
var nonvoterKinds = map[byte]bool{fwdPromote: true, fwdLeave: true, fwdRenew: true, fwdReadIndex: true}

// allowed runs the current checker for a Raft RPC (raftRPC) or a forwarded
// request of kind (0: any the peer may send).
func (n *Node) allowed(cert *x509.Certificate, raftRPC bool, kind byte) error {
	if cert == nil {
		return fmt.Errorf("%w: no verified node certificate", ErrPeerRefused)
	}
	return (*n.authz.check.Load())(cert, raftRPC, kind)
}

// refused reports a refusal to the configured observer.
func (n *Node) refused(cert *x509.Certificate, remote, op string, err error) {
	n.log.Warn("cluster request refused", "peer", certID(cert), "remote", remote, "op", op, "err", err)
	n.event(PeerEvent{Peer: certID(cert), Serial: certSerial(cert), Remote: remote, Op: op, Refused: true, Reason: err.Error()})
}

func (n *Node) event(e PeerEvent) {
	if n.cfg.OnPeerEvent != nil {
		n.cfg.OnPeerEvent(e)
	}
}

func certID(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	return c.Subject.CommonName
}

func certSerial(c *x509.Certificate) string {
	if c == nil || c.SerialNumber == nil {
		return ""
	}
	return c.SerialNumber.Text(16)
}

// track remembers an accepted connection, so that it can be closed when
// its peer stops passing the check.
func (a *authz) track(c net.Conn, pc *peerConn) {
	a.mu.Lock()
	a.conns[c] = pc
	a.mu.Unlock()
}

func (a *authz) untrack(c net.Conn) {
	a.mu.Lock()
	delete(a.conns, c)
	a.mu.Unlock()
}

// sweep closes every tracked connection whose peer no longer passes the
// check. It runs after the configuration or the revocations change.
func (n *Node) sweep() {
	n.authz.mu.Lock()
	var drop []net.Conn
	var why []error
	for c, pc := range n.authz.conns {
		if err := n.allowed(pc.cert, pc.raft, 0); err != nil {
			drop = append(drop, c)
			why = append(why, err)
		}
	}
	for _, c := range drop {
		delete(n.authz.conns, c)
	}
	n.authz.mu.Unlock()
	for i, c := range drop {
		n.log.Info("closing connection of a peer that is no longer allowed", "remote", c.RemoteAddr().String(), "err", why[i])
		c.Close()
	}
}

// checkedConn re-checks its peer before every read, so a Raft connection
// stops carrying RPCs as soon as its peer is removed or revoked.
type checkedConn struct {
	net.Conn
	n      *Node
	cert   *x509.Certificate
	once   sync.Once
	remote string
}

func (c *checkedConn) Read(p []byte) (int, error) {
	if err := c.n.allowed(c.cert, true, 0); err != nil {
		c.once.Do(func() { c.n.refused(c.cert, c.remote, "raft", err) })
		c.Conn.Close()
		return 0, err
	}
	return c.Conn.Read(p)
}

// followRevocations keeps the revocation map current and sweeps
// connections when it or the configuration changes.
func (n *Node) followRevocations(configChanged <-chan struct{}) {
	w, initial, _, err := n.Watch(revocationPrefix)
	if err != nil {
		n.log.Error("cannot follow revocations", "err", err)
		return
	}
	defer w.Close()
	m := map[string]time.Time{}
	for _, kv := range initial {
		putRevocation(m, kv.Key, kv.Value)
	}
	n.setRevoked(m)
	evs := make(chan []Event)
	go func() {
		defer close(evs)
		for {
			e, err := w.Next(n.ctx)
			if err != nil {
				return
			}
			select {
			case evs <- e:
			case <-n.ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-configChanged:
			n.sweep()
		case batch, ok := <-evs:
			if !ok {
				return
			}
			next := make(map[string]time.Time, len(m))
			for k, v := range m {
				next[k] = v
			}
			for _, e := range batch {
				switch e.Type {
				case EventPut:
					putRevocation(next, e.Key, e.Value)
				case EventDelete:
					delete(next, strings.TrimPrefix(e.Key, revocationPrefix))
				case EventReset:
					next = map[string]time.Time{}
					if kvs, _, err := n.fsm.list(revocationPrefix); err == nil {
						for _, kv := range kvs {
							putRevocation(next, kv.Key, kv.Value)
						}
					}
				}
			}
			m = next
			n.setRevoked(m)
			n.sweep()
		}
	}
}

func (n *Node) setRevoked(m map[string]time.Time) { n.authz.revoked.Store(&m) }

func putRevocation(m map[string]time.Time, key string, v []byte) {
	if len(v) != 8 {
		return
	}
	m[strings.TrimPrefix(key, revocationPrefix)] = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
}

// revoke records that every certificate of id issued up to now is revoked.
func (n *Node) revoke(ctx context.Context, id string) error {
	v := binary.BigEndian.AppendUint64(nil, uint64(n.cfg.Now().UnixNano()))
	if _, err := n.Put(ctx, revocationPrefix+id, v); err != nil {
		return fmt.Errorf("revoking the certificates of %s: %w", id, err)
	}
	n.log.Info("revoked node certificates", "id", id)
	return nil
}

// RevokedAt returns when the certificates of node id were last revoked,
// as this node knows it: certificates issued at or before that time are
// refused. Issuers give a node re-admitted later certificates valid from
// after it.
func (n *Node) RevokedAt(id string) (time.Time, bool) {
	t, ok := (*n.authz.revoked.Load())[id]
	return t, ok
}

// Proofs: a forwarded request that changes the cluster's shape carries the
// proof its caller gave on the node that forwards it.
type proofKey struct{}

// WithProof returns a context whose membership changes and restores,
// forwarded to the leader, carry proof: what the caller showed the node
// it called (for ferryd, an administrator's session). The leader asks
// Config.Authorize about it; it never trusts the forwarding node alone.
func WithProof(ctx context.Context, proof []byte) context.Context {
	return context.WithValue(ctx, proofKey{}, proof)
}

func proofFrom(ctx context.Context) []byte {
	p, _ := ctx.Value(proofKey{}).([]byte)
	return p
}

// AuthRequest is a forwarded request the leader asks Config.Authorize
// about.
type AuthRequest struct {
	// Peer is the node ID of the certificate that forwarded it.
	Peer string
	// Op is the request: add_nonvoter, add_voter, remove, restore, or
	// service (a member calling a service of this node, named by Target).
	Op string
	// Target is the node the request is about ("" for restore).
	Target string
	// Proof is what the forwarding node attached (see WithProof).
	Proof []byte
}

// authorizeForward checks a forwarded request that changes the cluster's
// shape and reports it.
func (n *Node) authorizeForward(ctx context.Context, req forwardRequest, target string, proof []byte) error {
	ar := AuthRequest{Peer: req.peer, Op: opName(req.kind), Target: target, Proof: proof}
	ev := PeerEvent{Peer: req.peer, Serial: certSerial(req.cert), Remote: req.remote, Op: ar.Op, Target: target}
	var actor string
	var err error
	if n.cfg.Authorize == nil {
		err = fmt.Errorf("%w: this cluster takes no forwarded %s", ErrForbidden, ar.Op)
	} else if actor, err = n.cfg.Authorize(ctx, ar); err != nil {
		err = fmt.Errorf("%w: %s forwarded by %q: %v", ErrForbidden, ar.Op, req.peer, err)
	}
	ev.Actor = actor
	if err != nil {
		n.log.Warn("forwarded request refused", "peer", req.peer, "op", ar.Op, "target", target, "err", err)
		ev.Refused, ev.Reason = true, err.Error()
	}
	n.event(ev)
	return err
}

func (c *checkedConn) Close() error {
	c.n.authz.untrack(c)
	return c.Conn.Close()
}

// renewFor serves a member's request for a renewed certificate.
func (n *Node) renewFor(ctx context.Context, req forwardRequest) ([]byte, error) {
	ev := PeerEvent{Peer: req.peer, Serial: certSerial(req.cert), Remote: req.remote, Op: "renew", Target: req.peer}
	if n.cfg.Renew == nil {
		return nil, fmt.Errorf("%w: this node does not renew certificates", ErrForbidden)
	}
	out, err := n.cfg.Renew(ctx, req.peer, req.payload)
	if err != nil {
		ev.Refused, ev.Reason = true, err.Error()
		err = fmt.Errorf("%w: renewing the certificate of %q: %v", ErrForbidden, req.peer, err)
	}
	n.event(ev)
	return out, err
}
