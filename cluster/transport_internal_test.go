package cluster

import (
	"io"
	"log/slog"
	"net"
	"testing"
)

// A connection whose handshake ends after close swept the open ones is
// refused, not served: served, it was never closed and close waited for
// its handler forever (a node's Close hung in CI).
func TestMuxRefusesConnectionsOnceClosing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newMux(ln, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil)
	a, b := net.Pipe()
	defer b.Close()
	if !m.track(a, true) {
		t.Fatal("an open mux refused to track a connection")
	}
	m.track(a, false)
	m.close()
	if m.track(a, true) {
		t.Fatal("a closing mux tracked a new connection that nothing would close")
	}
	if len(m.conns) != 0 {
		t.Fatalf("%d connections tracked after close", len(m.conns))
	}
}
