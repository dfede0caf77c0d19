package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

func TestNewCA(t *testing.T) {
	ca := newTestCA(t, "ferry cluster CA", testNow)
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid {
		t.Errorf("IsCA = %v, BasicConstraintsValid = %v, want both true", c.IsCA, c.BasicConstraintsValid)
	}
	if c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("MaxPathLen = %d, MaxPathLenZero = %v, want 0 and true", c.MaxPathLen, c.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; c.KeyUsage != want {
		t.Errorf("KeyUsage = %v, want %v", c.KeyUsage, want)
	}
	if c.Subject.CommonName != "ferry cluster CA" {
		t.Errorf("CommonName = %q", c.Subject.CommonName)
	}
	if !c.NotBefore.Equal(testNow.Add(-time.Minute)) || !c.NotAfter.Equal(testNow.Add(365*24*time.Hour)) {
		t.Errorf("validity %s to %s, want now-1m to now+1y", c.NotBefore, c.NotAfter)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key is %T, want ECDSA P-256", c.PublicKey)
	}
	if len(c.SubjectKeyId) == 0 {
		t.Errorf("no subject key ID")
	}
}

func TestNewCARejects(t *testing.T) {
	tests := []struct {
		name     string
		cn       string
		validity time.Duration
		wantErr  string
	}{
		{name: "empty common name", cn: "", validity: time.Hour, wantErr: "common name is empty"},
		{name: "zero validity", cn: "ca", validity: 0, wantErr: "not positive"},
		{name: "negative validity", cn: "ca", validity: -time.Hour, wantErr: "not positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCA(tt.cn, tt.validity, testNow)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewCA error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestCAPEMRoundTrip(t *testing.T) {
	ca := newTestCA(t, "ferry cluster CA", testNow)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatalf("KeyPEM: %v", err)
	}
	if !strings.Contains(string(keyPEM), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("KeyPEM is not PKCS #8:\n%s", keyPEM)
	}
	got, err := ParseCA(ca.CertPEM(), keyPEM)
	if err != nil {
		t.Fatalf("ParseCA: %v", err)
	}
	if !got.Cert.Equal(ca.Cert) {
		t.Errorf("certificate changed in the round trip")
	}
	if !publicKeysEqual(got.Key.Public(), ca.Key.Public()) {
		t.Errorf("key changed in the round trip")
	}
	// The parsed CA signs certificates that the original CA's pool accepts.
	node := newTestNode(t, got, "node-a", time.Hour, testNow)
	if _, err := node.cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: testNow}); err != nil {
		t.Errorf("certificate from parsed CA does not verify: %v", err)
	}
}

func TestParseCARejects(t *testing.T) {
	ca := newTestCA(t, "ca-one", testNow)
	other := newTestCA(t, "ca-two", testNow)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	otherKeyPEM, err := other.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	node := newTestNode(t, ca, "node-a", time.Hour, testNow)
	nodeKeyPEM, err := KeyPEM(node.key)
	if err != nil {
		t.Fatal(err)
	}
	ecKey := ca.Key.(*ecdsa.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	sec1PEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})

	tests := []struct {
		name    string
		cert    []byte
		key     []byte
		wantErr string
	}{
		{name: "mismatched key", cert: ca.CertPEM(), key: otherKeyPEM, wantErr: "does not match"},
		{name: "non-CA certificate", cert: node.certPEM, key: nodeKeyPEM, wantErr: "not a CA certificate"},
		{name: "key in place of certificate", cert: keyPEM, key: keyPEM, wantErr: `"PRIVATE KEY", want "CERTIFICATE"`},
		{name: "certificate in place of key", cert: ca.CertPEM(), key: ca.CertPEM(), wantErr: `"CERTIFICATE", want "PRIVATE KEY"`},
		{name: "SEC 1 key", cert: ca.CertPEM(), key: sec1PEM, wantErr: `"EC PRIVATE KEY"`},
		{name: "empty certificate", cert: nil, key: keyPEM, wantErr: "no PEM block"},
		{name: "empty key", cert: ca.CertPEM(), key: nil, wantErr: "no PEM block"},
		{name: "garbage certificate", cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), key: keyPEM, wantErr: "parsing certificate"},
		{name: "garbage key", cert: ca.CertPEM(), key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), wantErr: "parsing PKCS #8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCA(tt.cert, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseCA error = %v, want one containing %q", err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("ParseCA returned a CA with an error")
			}
			if strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("error %q contains PEM text", err)
			}
		})
	}
}

func TestKeyPEMRoundTrip(t *testing.T) {
	p256, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  crypto.Signer
	}{
		{name: "ECDSA P-256", key: p256},
		{name: "Ed25519", key: ed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := KeyPEM(tt.key)
			if err != nil {
				t.Fatalf("KeyPEM: %v", err)
			}
			got, err := ParseKeyPEM(data)
			if err != nil {
				t.Fatalf("ParseKeyPEM: %v", err)
			}
			if !publicKeysEqual(got.Public(), tt.key.Public()) {
				t.Errorf("key changed in the round trip")
			}
		})
	}
	if _, err := KeyPEM(nil); err == nil {
		t.Errorf("KeyPEM(nil) succeeded")
	}
}

func TestFingerprint(t *testing.T) {
	ca := newTestCA(t, "ca", testNow)
	sum := sha256.Sum256(ca.Cert.Raw)
	want := hex.EncodeToString(sum[:])
	got := Fingerprint(ca.Cert)
	if got != want {
		t.Errorf("Fingerprint = %s, want %s", got, want)
	}
	if len(got) != 64 || strings.ToLower(got) != got {
		t.Errorf("Fingerprint %q is not 64 lowercase hex characters", got)
	}
}
