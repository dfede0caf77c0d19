package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// TestSessionValidOnEveryNode: the session from "ferryctl login" works
// with --server pointed at another node of the same cluster (issue: the
// token worked only against the URL it was made for). The token goes only
// over TLS pinned to the cluster CA the session was made with: with
// another CA it is not sent.
func TestSessionValidOnEveryNode(t *testing.T) {
	isolate(t)
	nodes := apitest.StartCluster(t, 2)
	signIn(t, nodes[0], nodes[0].Admin(t))
	out, err := ctl(t, "", "--server", nodes[1].URL, "user", "list")
	if err != nil {
		t.Fatalf("user list through the other node: %v", err)
	}
	if !strings.Contains(out, "ID") {
		t.Errorf("user list: %q", out)
	}

	// Another CA: the saved session is not offered to that server.
	other := filepath.Join(t.TempDir(), "other-ca.pem")
	writeSelfSignedCA(t, other)
	if _, err := ctl(t, "", "--server", nodes[1].URL, "--ca", other, "user", "list"); err == nil || !strings.Contains(err.Error(), "not signed in") {
		t.Errorf("with another CA: %v, want not signed in", err)
	}
}

func writeSelfSignedCA(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
