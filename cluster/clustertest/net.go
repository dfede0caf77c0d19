package clustertest

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// Net stands between test nodes: every connection a node dials or accepts
// passes through it, so a test can cut a node off (both directions, open
// connections included) and heal it again, over real TCP.
type Net struct {
	mu       sync.Mutex        // guards everything below
	addrs    map[string]string // address -> node ID
	isolated map[string]bool
	conns    map[string]map[net.Conn]struct{} // node ID -> its live connections
}

// NewNet returns a fully connected network.
func NewNet() *Net {
	return &Net{addrs: map[string]string{}, isolated: map[string]bool{}, conns: map[string]map[net.Conn]struct{}{}}
}

func (n *Net) register(id, addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.addrs[addr] = id
}

// Isolate cuts the named nodes off from every other node and from each other.
func (n *Net) Isolate(ids ...string) {
	n.mu.Lock()
	var doomed []net.Conn
	for _, id := range ids {
		n.isolated[id] = true
		for c := range n.conns[id] {
			doomed = append(doomed, c)
		}
	}
	n.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
}

// Heal reconnects every node.
func (n *Net) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.isolated = map[string]bool{}
}

func (n *Net) track(id string, c net.Conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isolated[id] {
		return false
	}
	if n.conns[id] == nil {
		n.conns[id] = map[net.Conn]struct{}{}
	}
	n.conns[id][c] = struct{}{}
	return true
}

func (n *Net) untrack(id string, c net.Conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.conns[id], c)
}

// Dialer returns the dial function for node id.
func (n *Net) Dialer(id string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.mu.Lock()
		peer := n.addrs[addr]
		cut := n.isolated[id] || n.isolated[peer]
		n.mu.Unlock()
		if cut {
			return nil, fmt.Errorf("clustertest: %s cannot reach %s (partitioned)", id, addr)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, net: n, id: id}
		if !n.track(id, tc) {
			c.Close()
			return nil, fmt.Errorf("clustertest: %s partitioned", id)
		}
		return tc, nil
	}
}

// Listener wraps node id's listener so that a partition also drops what it
// accepts.
func (n *Net) Listener(id string, ln net.Listener) net.Listener {
	return &listener{Listener: ln, net: n, id: id}
}

type listener struct {
	net.Listener
	net *Net
	id  string
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, net: l.net, id: l.id}
		if l.net.track(l.id, tc) {
			return tc, nil
		}
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	net  *Net
	id   string
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.net.untrack(c.id, c) })
	return c.Conn.Close()
}
