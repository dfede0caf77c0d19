package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// One TCP listener carries both Raft and forwarded requests. Every connection
// is mutual TLS with the cluster CA; after the handshake the dialer writes one
// byte naming the protocol.
const (
	protoRaft    byte = 'R'
	protoForward byte = 'F'
	// protoProbe only proves which node certificate answers at an
	// address, before the node is added (see AddVoter).
	protoProbe byte = 'P'
)

// handshakeTimeout bounds how long an unauthenticated peer may hold a
// connection open: it answers slow-loris style exhaustion of the listener.
const handshakeTimeout = 5 * time.Second

// mux accepts TLS connections and hands them to Raft or to the forward
// server by their first byte.
type mux struct {
	ln        net.Listener
	serverTLS *tls.Config
	log       *slog.Logger
	raftCh    chan net.Conn
	// raft wraps an accepted Raft connection (the per-request check);
	// forward serves a forwarding connection. Both get the peer's
	// verified certificate.
	raft    func(c net.Conn, cert *x509.Certificate) net.Conn
	forward func(c net.Conn, cert *x509.Certificate)

	done chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

func newMux(ln net.Listener, serverTLS *tls.Config, log *slog.Logger, raft func(net.Conn, *x509.Certificate) net.Conn, forward func(net.Conn, *x509.Certificate)) *mux {
	return &mux{
		ln: ln, serverTLS: serverTLS, log: log, raft: raft, forward: forward,
		raftCh: make(chan net.Conn), done: make(chan struct{}),
		conns: make(map[net.Conn]struct{}),
	}
}

func (m *mux) start() {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			c, err := m.ln.Accept()
			if err != nil {
				select {
				case <-m.done:
					return
				default:
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				m.log.Error("cluster listener failed", "err", err)
				return
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.handle(c)
			}()
		}
	}()
}

// track adds c to the connections close ends, or removes it. Adding
// reports false once close has begun: a connection that finished its
// handshake after close swept the set would otherwise be served, never
// closed, and keep close waiting for its handler forever.
func (m *mux) track(c net.Conn, add bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !add {
		delete(m.conns, c)
		return true
	}
	select {
	case <-m.done:
		return false
	default:
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *mux) handle(raw net.Conn) {
	c := tls.Server(raw, m.serverTLS)
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := c.Handshake(); err != nil {
		m.log.Warn("cluster connection refused", "remote", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return
	}
	// RequireAndVerifyClientCert already refused peers without a cluster
	// certificate; this is a second lock on the same door.
	chains := c.ConnectionState().VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		m.log.Warn("cluster connection refused", "remote", raw.RemoteAddr().String(), "err", "no verified client certificate")
		raw.Close()
		return
	}
	cert := chains[0][0]
	var p [1]byte
	if _, err := c.Read(p[:]); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	switch p[0] {
	case protoRaft:
		rc := m.raft(c, cert)
		select {
		case m.raftCh <- rc:
		case <-m.done:
			rc.Close()
		}
	case protoForward:
		if !m.track(c, true) {
			c.Close()
			return
		}
		defer m.track(c, false)
		m.forward(c, cert)
	case protoProbe:
		// Answers "is this the node I think it is?": the handshake
		// already showed the certificate; nothing more is said.
		c.Close()
	default:
		m.log.Warn("cluster connection refused", "remote", raw.RemoteAddr().String(), "err", fmt.Sprintf("unknown protocol byte %#x", p[0]))
		c.Close()
	}
}

func (m *mux) close() {
	select {
	case <-m.done:
		return
	default:
	}
	close(m.done)
	m.ln.Close()
	m.mu.Lock()
	for c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// dialer opens authenticated connections to other nodes.
type dialer struct {
	clientTLS *tls.Config
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (d *dialer) dialProto(ctx context.Context, addr string, proto byte) (net.Conn, error) {
	raw, err := d.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, d.clientTLS)
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	if _, err := c.Write([]byte{proto}); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// streamLayer adapts the mux to raft.StreamLayer.
type streamLayer struct {
	m    *mux
	d    *dialer
	addr net.Addr
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.m.raftCh:
		return c, nil
	case <-s.m.done:
		return nil, net.ErrClosed
	}
}

func (s *streamLayer) Close() error { s.m.close(); return nil }

func (s *streamLayer) Addr() net.Addr { return s.addr }

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.d.dialProto(ctx, string(address), protoRaft)
}

// advertiseAddr is a net.Addr for the address other nodes should dial.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }
