package pki

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidNodeID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{name: "simple", id: "node-a", ok: true},
		{name: "one letter", id: "a", ok: true},
		{name: "one digit", id: "0", ok: true},
		{name: "trailing dash", id: "a-", ok: true},
		{name: "63 characters", id: strings.Repeat("a", 63), ok: true},
		{name: "empty", id: ""},
		{name: "64 characters", id: strings.Repeat("a", 64)},
		{name: "uppercase", id: "Node-a"},
		{name: "leading dash", id: "-a"},
		{name: "path traversal", id: "../x"},
		{name: "slash", id: "a/b"},
		{name: "dot", id: "a.b"},
		{name: "underscore", id: "a_b"},
		{name: "space", id: "a b"},
		{name: "NUL", id: "a\x00"},
		{name: "non-ASCII", id: "nöde"},
		{name: "fullwidth a", id: "\uff41"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidNodeID(tt.id)
			if tt.ok && err != nil {
				t.Errorf("ValidNodeID(%q) = %v, want nil", tt.id, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidNodeID) {
				t.Errorf("ValidNodeID(%q) = %v, want %v", tt.id, err, ErrInvalidNodeID)
			}
		})
	}
}

func TestIssueNode(t *testing.T) {
	ca := newTestCA(t, "ca", testNow)
	node := newTestNode(t, ca, "node-a", 24*time.Hour, testNow)
	c := node.cert

	if c.Subject.CommonName != "node-a" {
		t.Errorf("CommonName = %q, want node-a", c.Subject.CommonName)
	}
	if !slices.Equal(c.DNSNames, []string{"node-a.ferry.internal"}) {
		t.Errorf("DNSNames = %q", c.DNSNames)
	}
	if len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("IPAddresses = %v", c.IPAddresses)
	}
	if !c.NotBefore.Equal(testNow.Add(-time.Minute)) || !c.NotAfter.Equal(testNow.Add(24*time.Hour)) {
		t.Errorf("validity %s to %s, want now-1m to now+24h", c.NotBefore, c.NotAfter)
	}
	if c.IsCA {
		t.Errorf("node certificate is a CA")
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v is not a positive 128-bit number", c.SerialNumber)
	}
	if other := newTestNode(t, ca, "node-a", time.Hour, testNow); other.cert.SerialNumber.Cmp(c.SerialNumber) == 0 {
		t.Errorf("two certificates share serial %v", c.SerialNumber)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		_, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{usage}})
		if err != nil {
			t.Errorf("node certificate does not verify for usage %v: %v", usage, err)
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: testNow, DNSName: "node-a.ferry.internal"}); err != nil {
		t.Errorf("node certificate does not verify for its DNS name: %v", err)
	}
	other := newTestCA(t, "other", testNow)
	if _, err := c.Verify(x509.VerifyOptions{Roots: other.Pool(), CurrentTime: testNow}); err == nil {
		t.Errorf("node certificate verifies against another CA")
	}
}

func TestIssueNodeClampsToCAExpiry(t *testing.T) {
	ca := newTestCA(t, "ca", testNow)
	node := newTestNode(t, ca, "node-a", 10*365*24*time.Hour, testNow)
	if !node.cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("NotAfter = %s, want the CA's %s", node.cert.NotAfter, ca.Cert.NotAfter)
	}
}

func TestIssueNodeRejects(t *testing.T) {
	ca := newTestCA(t, "ca", testNow)
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	good := rawCSR(t, key, "node-a")
	badSig := slices.Clone(good)
	badSig[len(badSig)-1] ^= 0x01 // last byte of the signature
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		csr      []byte
		nodeID   string
		validity time.Duration
		now      time.Time
		wantErr  string
	}{
		{name: "bad signature", csr: badSig, nodeID: "node-a", wantErr: "signature is invalid"},
		{name: "not DER", csr: []byte("junk"), nodeID: "node-a", wantErr: "parsing certificate request"},
		{name: "empty", csr: nil, nodeID: "node-a", wantErr: "parsing certificate request"},
		{name: "common name mismatch", csr: rawCSR(t, key, "node-b"), nodeID: "node-a", wantErr: `common name "node-b", want node ID "node-a"`},
		{name: "uppercase node ID", csr: rawCSR(t, key, "Node-A"), nodeID: "Node-A", wantErr: "invalid node ID"},
		{name: "empty node ID", csr: rawCSR(t, key, ""), nodeID: "", wantErr: "invalid node ID"},
		{name: "long node ID", csr: rawCSR(t, key, strings.Repeat("a", 64)), nodeID: strings.Repeat("a", 64), wantErr: "invalid node ID"},
		{name: "path node ID", csr: rawCSR(t, key, "../x"), nodeID: "../x", wantErr: "invalid node ID"},
		{name: "small RSA key", csr: rawCSR(t, rsaKey, "node-a"), nodeID: "node-a", wantErr: "too small"},
		{name: "zero validity", csr: good, nodeID: "node-a", validity: -1, wantErr: "not positive"},
		{name: "CA not yet valid", csr: good, nodeID: "node-a", now: testNow.Add(-time.Hour), wantErr: "CA certificate is not valid"},
		{name: "CA expired", csr: good, nodeID: "node-a", now: testNow.Add(366 * 24 * time.Hour), wantErr: "CA certificate is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			validity, now := time.Hour, testNow
			if tt.validity != 0 {
				validity = tt.validity
			}
			if !tt.now.IsZero() {
				now = tt.now
			}
			got, err := ca.IssueNode(tt.csr, tt.nodeID, nil, nil, validity, now)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("IssueNode error = %v, want one containing %q", err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("IssueNode returned a certificate with an error")
			}
		})
	}
}

func TestNewCSRRejectsInvalidNodeID(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewCSR(key, "../x"); !errors.Is(err, ErrInvalidNodeID) {
		t.Errorf("NewCSR error = %v, want %v", err, ErrInvalidNodeID)
	}
}

func TestIssueServer(t *testing.T) {
	ca := newTestCA(t, "ca", testNow)
	srv := newTestServer(t, ca, "vpn.example.com", 24*time.Hour, testNow)
	c := srv.cert
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage = %v, want server authentication only", c.ExtKeyUsage)
	}
	tests := []struct {
		name  string
		usage x509.ExtKeyUsage
		ok    bool
	}{
		{name: "server authentication", usage: x509.ExtKeyUsageServerAuth, ok: true},
		{name: "client authentication", usage: x509.ExtKeyUsageClientAuth, ok: false},
		{name: "any", usage: x509.ExtKeyUsageAny, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: testNow, DNSName: "vpn.example.com", KeyUsages: []x509.ExtKeyUsage{tt.usage}})
			if (err == nil) != tt.ok {
				t.Errorf("Verify error = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}

func TestIssueServerRejects(t *testing.T) {
	ca := newTestCA(t, "ca", testNow)
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	xkey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pub     any
		dns     []string
		ips     []net.IP
		wantErr string
	}{
		{name: "no names", pub: key.Public(), wantErr: "at least one DNS name or IP address"},
		{name: "empty DNS name", pub: key.Public(), dns: []string{"a.example", ""}, wantErr: "DNS name 1 is empty"},
		{name: "bad IP", pub: key.Public(), ips: []net.IP{{1, 2, 3}}, wantErr: "IP address 0 is not a valid IP address"},
		{name: "nil key", pub: nil, dns: []string{"a.example"}, wantErr: "public key is nil"},
		{name: "X25519 key", pub: xkey.PublicKey(), dns: []string{"a.example"}, wantErr: "unsupported public key type"},
		{name: "big.Int key", pub: big.NewInt(1), dns: []string{"a.example"}, wantErr: "unsupported public key type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.IssueServer(tt.pub, tt.dns, tt.ips, time.Hour, testNow)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("IssueServer error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
