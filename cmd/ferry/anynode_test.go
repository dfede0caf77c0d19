package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
	"github.com/ferryvpn/ferry/profiles"
)

// twoNodes is a cluster of two API nodes with the engineers' profile.
func twoNodes(t *testing.T) []*apitest.Server {
	t.Helper()
	nodes := apitest.StartCluster(t, 2)
	if _, err := nodes[0].Profiles.Put(t.Context(), profiles.Profile{
		Name: "eng", Groups: []string{"engineering"}, Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.0.0.0/16"), Protocol: "any"}},
	}, nil, audit.Actor{UserID: "admin"}); err != nil {
		t.Fatal(err)
	}
	return nodes
}

// TestSessionValidOnEveryNode: a session made by signing in through node
// 1's URL is used through node 2's URL with --server (issue: the desktop
// client kept its token by server URL, so another node of the same
// cluster found no session). It is the cluster's: kept by the cluster
// CA's fingerprint, sent to another node only over TLS pinned to that CA.
func TestSessionValidOnEveryNode(t *testing.T) {
	dir := isolate(t)
	nodes := twoNodes(t)
	st := enrolled(t, nodes[0], dir, "eng") // signed in through node 1
	if st.Server != nodes[0].URL {
		t.Fatalf("signed in through %s", st.Server)
	}
	out, err := ferry(t, "--server", nodes[1].URL, "profiles")
	if err != nil {
		t.Fatalf("profiles through node 2: %v", err)
	}
	if !strings.Contains(out, "eng") {
		t.Errorf("profiles through node 2:\n%s", out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "tokens", "*.json"))
	if len(files) != 1 || !strings.HasPrefix(filepath.Base(files[0]), "cluster-") {
		t.Errorf("token files %v: want the cluster's one", files)
	}
	if _, err := ferry(t, "--server", "http://"+strings.TrimPrefix(nodes[1].URL, "https://"), "profiles"); err == nil {
		t.Error("--server over plain http: accepted")
	}

	// Signing out through node 2 revokes the device's peer and deletes
	// the cluster's token.
	if out, err := ferry(t, "--server", nodes[1].URL, "logout"); err != nil || !strings.Contains(out, "Signed out") {
		t.Fatalf("logout through node 2: %q %v", out, err)
	}
	p, err := nodes[0].Profiles.Peer(t.Context(), st.Peer.ID)
	if err != nil || p.Revoked == nil {
		t.Errorf("peer after logout through node 2: %+v %v", p, err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "tokens", "*.json")); len(files) != 0 {
		t.Errorf("token files left after logout: %v", files)
	}
}

// Without a cluster CA (a bundle of roots names no one cluster) the token
// is the server's alone: another server's URL gets no session, so the
// token is never sent to it.
func TestSessionWithoutClusterCAStaysWithItsServer(t *testing.T) {
	dir := isolate(t)
	nodes := twoNodes(t)
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	ca, err := os.ReadFile(nodes[0].CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundle, append(ca, selfSignedCA(t)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := loginflow.ClusterFingerprint(bundle); ok {
		t.Fatal("a bundle of two CAs taken for one cluster's")
	}
	c := signedInWith(t, nodes[0], dir, bundle)
	if _, err := enroll(t.Context(), c, dir, enrollment{Server: nodes[0].URL, CAFile: bundle, Email: alice.Email, Device: "laptop"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ferry(t, "profiles"); err != nil {
		t.Fatalf("profiles through the server of the login: %v", err)
	}
	if _, err := ferry(t, "--server", nodes[1].URL, "profiles"); !errors.Is(err, errNotSignedIn) {
		t.Errorf("another server without a cluster CA: %v, want not signed in", err)
	}
}

// A token file of an older ferry, kept by the URL of the server of the
// login, moves to the cluster's key on first use and then serves every
// node.
func TestOldTokenFileMigrates(t *testing.T) {
	dir := isolate(t)
	nodes := twoNodes(t)
	c := signedInWith(t, nodes[0], dir, "") // the old file: keyed by URL
	if _, err := enroll(t.Context(), c, dir, enrollment{Server: nodes[0].URL, CAFile: nodes[0].CAFile, Email: alice.Email, Device: "laptop"}); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "tokens", "*.json"))
	if len(old) != 1 || strings.HasPrefix(filepath.Base(old[0]), "cluster-") {
		t.Fatalf("old token files: %v", old)
	}
	if _, err := ferry(t, "--server", nodes[1].URL, "profiles"); err != nil {
		t.Fatalf("profiles through node 2 with an old token file: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "tokens", "*.json"))
	if len(files) != 1 || !strings.HasPrefix(filepath.Base(files[0]), "cluster-") {
		t.Errorf("token files after migration: %v", files)
	}
	if fileMode(t, files[0])&0o077 != 0 {
		t.Errorf("migrated token file mode %v", fileMode(t, files[0]))
	}
	if _, err := ferry(t, "profiles"); err != nil {
		t.Errorf("profiles through node 1 after migration: %v", err)
	}
}

// signedInWith saves a session for alice through srv as ferry login does
// with caFile, and returns the API client holding it.
func signedInWith(t *testing.T, srv *apitest.Server, dir, caFile string) *clientT {
	t.Helper()
	tok := srv.Token(t, alice)
	if err := loginflow.SaveToken(dir, srv.URL, caFile, tok); err != nil {
		t.Fatal(err)
	}
	return newTestClient(t, srv, tok)
}

func selfSignedCA(t *testing.T) []byte {
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
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
