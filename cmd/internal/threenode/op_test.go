package threenode

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn/devop"
)

// opServer is ferry's development OpenID Provider (authn/devop) served
// over HTTPS by the test process in the hub namespace, with a CA of its
// own that the nodes trust through SSL_CERT_FILE (ferryd accepts a plain
// http issuer on loopback only, and the nodes are not on the hub's
// loopback).
type opServer struct {
	issuer     string
	secretFile string
	caFile     string // the OP's CA certificate (PEM)
	caPool     *x509.CertPool
	users      []devop.User
	srv        *http.Server
}

// startOP serves the OP at https://addr, with the nodes' callbacks as
// its client's redirect URIs.
func startOP(t *testing.T, dir, addr string, redirects []string) *opServer {
	t.Helper()
	host, _, _ := net.SplitHostPort(addr)
	caCert, caKey := newCA(t)
	leaf := newLeaf(t, caCert, caKey, net.ParseIP(host))
	o := &opServer{issuer: "https://" + addr, secretFile: filepath.Join(dir, "oidc-client-secret"),
		caFile: filepath.Join(dir, "op-ca.crt"), caPool: x509.NewCertPool(), users: devop.DemoUsers()}
	o.caPool.AddCert(caCert)
	if err := os.WriteFile(o.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := rand.Text()
	if err := os.WriteFile(o.secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	op, err := devop.New(devop.Config{Issuer: o.issuer, ClientID: "ferry", ClientSecret: secret,
		RedirectURIs: redirects, Users: o.users})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	o.srv = &http.Server{Handler: op.Handler(), ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf}}}
	go o.srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { o.srv.Close() })
	return o
}

func (o *opServer) password(user string) string {
	for _, u := range o.users {
		if u.Username == user {
			return u.Password
		}
	}
	return ""
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "threenode test OP CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func newLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, ip net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip.String()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{ip}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// trustFile writes a bundle of the system's CAs (when present) and the
// OP's, for the nodes' SSL_CERT_FILE.
func (o *opServer) trustFile(t *testing.T, dir string) string {
	t.Helper()
	ca, err := os.ReadFile(o.caFile)
	if err != nil {
		t.Fatal(err)
	}
	sys, _ := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	p := filepath.Join(dir, "trust.pem")
	if err := os.WriteFile(p, append(sys, ca...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
