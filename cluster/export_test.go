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

// What the external tests need of the wire protocol, to play a peer that
// the cluster must refuse.

// ForwardKind is one kind of forwarded request with a payload that would
// change something if it were served.
type ForwardKind struct {
	Name    string
	kind    byte
	payload []byte
}

// ForwardKinds returns every forwarded request kind, each built to do harm
// if served: the membership kinds carry the test clusters' administrator
// proof, so that only the per-request check of the peer stands in the way.
func ForwardKinds(victim, evilKey, attackerAddr string) []ForwardKind {
	proof := appendBytes(nil, []byte("clustertest-admin"))
	member := appendBytes(appendBytes(nil, []byte("n9")), []byte(attackerAddr))
	return []ForwardKind{
		{"apply", fwdApply, encodeTxn(nil, &Txn{Ops: []Op{Put(evilKey, []byte("owned"))}})},
		{"read_index", fwdReadIndex, nil},
		{"add_voter", fwdAddVoter, append(append([]byte(nil), proof...), member...)},
		{"add_nonvoter", fwdAddNonvoter, append(append([]byte(nil), proof...), member...)},
		{"remove", fwdRemove, append(append([]byte(nil), proof...), victim...)},
		{"restore", fwdRestore, proof},
		{"leave", fwdLeave, []byte(victim)},
		{"promote", fwdPromote, nil},
		{"renew", fwdRenew, []byte("csr")},
	}
}

// PeerConn is a forwarding connection opened with some certificate.
type PeerConn struct{ c net.Conn }

// DialPeer opens a forwarding connection to addr presenting cert.
func DialPeer(ctx context.Context, cert tls.Certificate, roots *x509.CertPool, addr string) (*PeerConn, error) {
	cfg := Config{Certificate: cert, RootCAs: roots}
	cfg.setDefaults()
	_, client := cfg.tlsConfigs(nil)
	d := &dialer{clientTLS: client, dial: cfg.Dial}
	c, err := d.dialProto(ctx, addr, protoForward)
	if err != nil {
		return nil, err
	}
	return &PeerConn{c: c}, nil
}

// Send sends one request and returns the answer's error.
func (p *PeerConn) Send(k ForwardKind) error {
	p.c.SetDeadline(time.Now().Add(10 * time.Second))
	hdr := binary.AppendUvarint([]byte{k.kind}, 5000)
	if err := writeFrame(p.c, hdr, k.payload); err != nil {
		return fmt.Errorf("%w: %v", errNotSent, err)
	}
	if k.kind == fwdRestore {
		writeFrame(p.c, []byte{chunkEnd})
	}
	resp, err := readFrame(p.c)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	}
	if resp[0] != stOK {
		return errorOf(resp[0], string(resp[1:]))
	}
	return nil
}

// Close closes the connection.
func (p *PeerConn) Close() error { return p.c.Close() }

// RequestVoteAs sends a Raft RequestVote RPC with a term far ahead to the
// node at addr, as node id with cert. A node that served it would step
// down from leadership.
func RequestVoteAs(cert tls.Certificate, roots *x509.CertPool, id, addr string) error {
	cfg := Config{Certificate: cert, RootCAs: roots}
	cfg.setDefaults()
	_, client := cfg.tlsConfigs(nil)
	d := &dialer{clientTLS: client, dial: cfg.Dial}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &dialOnly{d: d, done: make(chan struct{})}, MaxPool: 1, Timeout: 5 * time.Second,
	})
	defer trans.Close()
	var resp raft.RequestVoteResponse
	err := trans.RequestVote(raft.ServerID("target"), raft.ServerAddress(addr), &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ID: []byte(id), Addr: []byte("127.0.0.1:1")}, Term: 1 << 40, LastLogIndex: 1 << 40, LastLogTerm: 1 << 40,
	}, &resp)
	if err != nil {
		return err
	}
	if resp.Granted {
		return errors.New("vote granted")
	}
	return nil
}

// SetMembershipCheck turns the per-request membership check of n on or
// off, for the benchmark that measures its cost.
func SetMembershipCheck(n *Node, on bool) {
	check := peerChecker(n.checkPeer)
	if !on {
		check = func(*x509.Certificate, bool, byte) error { return nil }
	}
	n.authz.check.Store(&check)
}

// dialOnly is a raft.StreamLayer that only dials.
type dialOnly struct {
	d    *dialer
	done chan struct{}
}

func (s *dialOnly) Accept() (net.Conn, error) { <-s.done; return nil, net.ErrClosed }
func (s *dialOnly) Close() error              { close(s.done); return nil }
func (s *dialOnly) Addr() net.Addr            { return advertiseAddr("127.0.0.1:1") }
func (s *dialOnly) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.d.dialProto(ctx, string(a), protoRaft)
}

// WithoutProof returns k with its proof replaced by an empty one.
func (k ForwardKind) WithoutProof() ForwardKind {
	if !adminKinds[k.kind] {
		return k
	}
	d := &decoder{b: k.payload}
	d.bytes(maxProofLen, "proof")
	k.payload = append(appendBytes(nil, nil), d.b...)
	return k
}

// ProbeLeaderOnce runs one of a follower's periodic asks of its leader's
// applied index (what readiness compares its own with).
func (n *Node) ProbeLeaderOnce() { n.probeOnce() }
