package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"
	"time"
)

// testNow is the fixed clock of tests that do not go through VerifyPin,
// which uses the system clock.
var testNow = time.Date(2030, time.March, 1, 12, 0, 0, 0, time.UTC)

// newTestCA returns a CA valid for a year from now.
func newTestCA(t testing.TB, name string, now time.Time) *CA {
	t.Helper()
	ca, err := NewCA(name, 365*24*time.Hour, now)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

// rawCSR returns a DER certificate request for cn without validating cn,
// so tests can offer IssueNode names that NewCSR would refuse.
func rawCSR(t testing.TB, key crypto.Signer, cn string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}

// testNode is a node's key and certificate.
type testNode struct {
	key     crypto.Signer
	certPEM []byte
	cert    *x509.Certificate
}

// tlsCert returns the node's certificate followed by the CA certificate, as
// a node presents it.
func (n testNode) tlsCert(ca *CA) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{n.cert.Raw, ca.Cert.Raw}, PrivateKey: n.key, Leaf: n.cert}
}

// newTestNode issues a node certificate for id, with DNS name id+".ferry.internal"
// and IP 127.0.0.1.
func newTestNode(t testing.TB, ca *CA, id string, validity time.Duration, now time.Time) testNode {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	csr, err := NewCSR(key, id)
	if err != nil {
		t.Fatalf("NewCSR: %v", err)
	}
	certPEM, err := ca.IssueNode(csr, id, []string{id + ".ferry.internal"}, []net.IP{net.IPv4(127, 0, 0, 1)}, validity, now)
	if err != nil {
		t.Fatalf("IssueNode: %v", err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		t.Fatalf("ParseCertPEM: %v", err)
	}
	return testNode{key: key, certPEM: certPEM, cert: cert}
}

// newTestServer issues an API server certificate for name.
func newTestServer(t testing.TB, ca *CA, name string, validity time.Duration, now time.Time) testNode {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	certPEM, err := ca.IssueServer(key.Public(), []string{name}, nil, validity, now)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		t.Fatalf("ParseCertPEM: %v", err)
	}
	return testNode{key: key, certPEM: certPEM, cert: cert}
}
