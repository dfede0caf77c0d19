package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

// VerifyPin uses the system clock, so these certificates are made around
// time.Now. Nothing waits on the clock.
func TestVerifyPin(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "ca", now)
	impostor := newTestCA(t, "ca", now)
	fp := Fingerprint(ca.Cert)
	node := newTestNode(t, ca, "node-b", time.Hour, now)
	api := newTestServer(t, ca, "vpn.example.com", time.Hour, now)
	foreign := newTestNode(t, impostor, "node-b", time.Hour, now)
	oldCA := newTestCA(t, "ca", now.Add(-72*time.Hour))
	expired := newTestNode(t, oldCA, "node-b", time.Hour, now.Add(-48*time.Hour))

	tests := []struct {
		name    string
		raw     [][]byte
		pin     string
		wantErr string // empty for success
	}{
		{name: "node certificate and CA", raw: [][]byte{node.cert.Raw, ca.Cert.Raw}, pin: fp[:32]},
		{name: "API certificate and CA", raw: [][]byte{api.cert.Raw, ca.Cert.Raw}, pin: fp[:32]},
		{name: "full fingerprint", raw: [][]byte{node.cert.Raw, ca.Cert.Raw}, pin: fp},
		{name: "CA among other certificates", raw: [][]byte{node.cert.Raw, impostor.Cert.Raw, []byte("junk"), ca.Cert.Raw}, pin: fp[:32]},
		{name: "pin of another CA", raw: [][]byte{node.cert.Raw, impostor.Cert.Raw}, pin: fp[:32], wantErr: "no CA certificate"},
		{name: "leaf from another CA with pinned CA appended", raw: [][]byte{foreign.cert.Raw, ca.Cert.Raw}, pin: fp[:32], wantErr: "unknown authority"},
		{name: "CA not sent", raw: [][]byte{node.cert.Raw}, pin: fp[:32], wantErr: "sent 1 certificates"},
		{name: "nothing sent", raw: nil, pin: fp[:32], wantErr: "sent 0 certificates"},
		{name: "pin matches a non-CA certificate", raw: [][]byte{node.cert.Raw, api.cert.Raw}, pin: Fingerprint(api.cert)[:32], wantErr: "no CA certificate"},
		{name: "expired leaf", raw: [][]byte{expired.cert.Raw, oldCA.Cert.Raw}, pin: Fingerprint(oldCA.Cert)[:32], wantErr: "expired"},
		{name: "garbage leaf", raw: [][]byte{[]byte("junk"), ca.Cert.Raw}, pin: fp[:32], wantErr: "parsing server certificate"},
		{name: "empty pin", raw: [][]byte{node.cert.Raw, ca.Cert.Raw}, pin: "", wantErr: "pin is not"},
		{name: "short pin", raw: [][]byte{node.cert.Raw, ca.Cert.Raw}, pin: fp[:31], wantErr: "pin is not"},
		{name: "too long pin", raw: [][]byte{node.cert.Raw, ca.Cert.Raw}, pin: fp + "0", wantErr: "pin is not"},
		{name: "uppercase pin", raw: [][]byte{node.cert.Raw, ca.Cert.Raw}, pin: strings.ToUpper(fp[:32]), wantErr: "pin is not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyPin(tt.raw, tt.pin)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("VerifyPin = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("VerifyPin = %v, want an error containing %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(tt.wantErr, "pin is not") && !errors.Is(err, ErrPinMismatch) {
				t.Errorf("VerifyPin = %v, want one wrapping %v", err, ErrPinMismatch)
			}
		})
	}
}

// TestVerifyPinHandshake runs VerifyPin as a joining node does: inside a TLS
// handshake with InsecureSkipVerify, against a real server.
func TestVerifyPinHandshake(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "ca", now)
	impostor := newTestCA(t, "ca", now)
	pin := Fingerprint(ca.Cert)[:32]
	impostorNode := newTestNode(t, impostor, "node-b", time.Hour, now)
	tests := []struct {
		name    string
		server  tls.Certificate
		wantErr bool
	}{
		{name: "cluster node", server: newTestNode(t, ca, "node-b", time.Hour, now).tlsCert(ca)},
		{name: "impostor", server: impostorNode.tlsCert(impostor), wantErr: true},
		{name: "impostor sending the real CA", server: impostorNode.tlsCert(ca), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{tt.server}})
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan struct{})
			defer func() {
				ln.Close() // ends Accept if no connection came
				<-served
			}()
			go func() {
				defer close(served)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.(*tls.Conn).Handshake()
			}()
			conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
				InsecureSkipVerify: true, // VerifyPeerCertificate checks the pin instead
				VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
					return VerifyPin(raw, pin)
				},
			})
			if conn != nil {
				conn.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("dial error = %v, want failure = %v", err, tt.wantErr)
			}
		})
	}
}
