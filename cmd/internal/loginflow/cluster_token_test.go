package loginflow_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
)

// writeCert writes a self-signed certificate (a CA's when ca) to a new
// file and returns its path.
func writeCert(t *testing.T, ca bool) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: ca, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClusterFingerprint(t *testing.T) {
	ca, leaf := writeCert(t, true), writeCert(t, false)
	a, _ := os.ReadFile(ca)
	b, _ := os.ReadFile(writeCert(t, true))
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(bundle, append(a, b...), 0o600); err != nil {
		t.Fatal(err)
	}
	if fp, ok := loginflow.ClusterFingerprint(ca); !ok || len(fp) != len("sha256:")+64 {
		t.Errorf("a CA: %q %v", fp, ok)
	}
	for name, p := range map[string]string{"none": "", "missing": filepath.Join(t.TempDir(), "x"), "leaf": leaf, "bundle": bundle} {
		if fp, ok := loginflow.ClusterFingerprint(p); ok {
			t.Errorf("%s: taken for a cluster (%s)", name, fp)
		}
	}
}

// A token saved with a cluster CA is the cluster's: any node's URL with
// the same CA finds it; without the CA, or with another, none does.
func TestClusterTokens(t *testing.T) {
	dir := t.TempDir()
	ca, other := writeCert(t, true), writeCert(t, true)
	const n1, n2 = "https://node1.example.com", "https://node2.example.com:8443"
	if err := loginflow.SaveToken(dir, n1, ca, "tok"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{n1, n2} {
		if got, err := loginflow.LoadToken(dir, s, ca); err != nil || got != "tok" {
			t.Errorf("LoadToken(%s) = %q, %v", s, got, err)
		}
	}
	for name, c := range map[string]string{"system roots": "", "another CA": other} {
		if _, err := loginflow.LoadToken(dir, n2, c); !errors.Is(err, loginflow.ErrNoToken) {
			t.Errorf("%s: %v, want ErrNoToken", name, err)
		}
	}
	if err := loginflow.DeleteToken(dir, n2, ca); err != nil {
		t.Fatal(err)
	}
	if _, err := loginflow.LoadToken(dir, n1, ca); !errors.Is(err, loginflow.ErrNoToken) {
		t.Errorf("after DeleteToken: %v", err)
	}

	// An old file, kept by the URL of the login's server, migrates to
	// the cluster's key; another server's old file does not.
	if err := loginflow.SaveToken(dir, n1, "", "old"); err != nil {
		t.Fatal(err)
	}
	if err := loginflow.MigrateToken(dir, n2, ca); err != nil {
		t.Fatal(err)
	}
	if _, err := loginflow.LoadToken(dir, n2, ca); !errors.Is(err, loginflow.ErrNoToken) {
		t.Errorf("another server's old file migrated: %v", err)
	}
	if err := loginflow.MigrateToken(dir, n1, ca); err != nil {
		t.Fatal(err)
	}
	if got, err := loginflow.LoadToken(dir, n2, ca); err != nil || got != "old" {
		t.Errorf("after migration: %q, %v", got, err)
	}
	if _, err := loginflow.LoadToken(dir, n1, ""); !errors.Is(err, loginflow.ErrNoToken) {
		t.Errorf("the old file is still there: %v", err)
	}
}
