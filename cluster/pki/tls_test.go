package pki

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// handshake runs a mutual-TLS handshake over loopback TCP between a client
// presenting clientCert and a server presenting serverCert, each trusting
// only its own CA, with both clocks at now. The server then writes "ok" and
// the client reads it, so that a client certificate refused after a TLS 1.3
// client has finished its handshake still shows up as a client error.
func handshake(t *testing.T, clientCA, serverCA *CA, clientCert, serverCert *tls.Certificate, now time.Time) (clientErr, serverErr error) {
	t.Helper()
	clock := func() time.Time { return now }
	serverConf := &tls.Config{
		Certificates: []tls.Certificate{*serverCert},
		ClientCAs:    serverCA.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
		Time:         clock,
	}
	clientConf := &tls.Config{
		RootCAs:    clientCA.Pool(),
		ServerName: "node-b.ferry.internal",
		MinVersion: tls.VersionTLS13,
		Time:       clock,
	}
	if clientCert != nil {
		clientConf.Certificates = []tls.Certificate{*clientCert}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second) // guards against a hang; not a timing assertion

	serverDone := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverDone <- err
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		s := tls.Server(c, serverConf)
		err = s.Handshake()
		if err == nil {
			_, err = s.Write([]byte("ok"))
		}
		serverDone <- err
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(deadline)
	cl := tls.Client(c, clientConf)
	clientErr = cl.Handshake()
	if clientErr == nil {
		buf := make([]byte, 2)
		_, clientErr = io.ReadFull(cl, buf)
	}
	c.Close()
	return clientErr, <-serverDone
}

func TestNodeMutualTLS(t *testing.T) {
	ca := newTestCA(t, "ca", testNow)
	// An impostor CA with the same name, so that clients offer its
	// certificates and the verifier has to check the signature.
	other := newTestCA(t, "ca", testNow)
	// A CA with another name: a Go client does not offer its certificates
	// to a server that asks for certificates from "ca".
	unrelated := newTestCA(t, "unrelated", testNow)
	nodeA := newTestNode(t, ca, "node-a", 24*time.Hour, testNow).tlsCert(ca)
	nodeB := newTestNode(t, ca, "node-b", 24*time.Hour, testNow).tlsCert(ca)
	foreignA := newTestNode(t, other, "node-a", 24*time.Hour, testNow).tlsCert(other)
	foreignB := newTestNode(t, other, "node-b", 24*time.Hour, testNow).tlsCert(other)
	unrelatedA := newTestNode(t, unrelated, "node-a", 24*time.Hour, testNow).tlsCert(unrelated)
	apiCert := newTestServer(t, ca, "node-a.ferry.internal", 24*time.Hour, testNow).tlsCert(ca)
	shortA := newTestNode(t, ca, "node-a", time.Hour, testNow).tlsCert(ca)
	longB := newTestNode(t, ca, "node-b", 48*time.Hour, testNow).tlsCert(ca)

	tests := []struct {
		name   string
		client *tls.Certificate
		server *tls.Certificate
		now    time.Time
		// wantErr is empty for success, else part of the error of the side
		// that verifies the bad certificate; the other side fails too.
		wantErr string
	}{
		{name: "two nodes of one cluster", client: &nodeA, server: &nodeB},
		{name: "client from another CA", client: &foreignA, server: &nodeB, wantErr: "unknown authority"},
		{name: "client from a CA with another name", client: &unrelatedA, server: &nodeB, wantErr: "didn't provide a certificate"},
		{name: "server from another CA", client: &nodeA, server: &foreignB, wantErr: "unknown authority"},
		{name: "client with API server certificate", client: &apiCert, server: &nodeB, wantErr: "incompatible key usage"},
		{name: "client without certificate", client: nil, server: &nodeB, wantErr: "didn't provide a certificate"},
		{name: "expired client certificate", client: &shortA, server: &longB, now: testNow.Add(2 * time.Hour), wantErr: "expired"},
		{name: "certificates not yet valid", client: &nodeA, server: &nodeB, now: testNow.Add(-2 * time.Minute), wantErr: "not yet valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := testNow
			if !tt.now.IsZero() {
				now = tt.now
			}
			clientErr, serverErr := handshake(t, ca, ca, tt.client, tt.server, now)
			if tt.wantErr == "" {
				if clientErr != nil || serverErr != nil {
					t.Fatalf("handshake failed: client: %v; server: %v", clientErr, serverErr)
				}
				return
			}
			if clientErr == nil || serverErr == nil {
				t.Fatalf("handshake succeeded on one side: client: %v; server: %v", clientErr, serverErr)
			}
			if !strings.Contains(clientErr.Error()+serverErr.Error(), tt.wantErr) {
				t.Errorf("errors do not mention %q: client: %v; server: %v", tt.wantErr, clientErr, serverErr)
			}
		})
	}
}
