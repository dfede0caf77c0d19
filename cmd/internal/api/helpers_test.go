package api

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// waitFor polls cond until it returns nil or the deadline passes, then
// fails with cond's last error. It waits on a condition, not a guess.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		<-tick.C
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// nodeCert issues a cluster certificate for id from ca.
func nodeCert(t testing.TB, ca *pki.CA, id string) tls.Certificate {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.IssueNode(csr, id, []string{cluster.DefaultServerName}, nil, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return keyPair(t, certPEM, key)
}

func keyPair(t testing.TB, certPEM []byte, key crypto.Signer) tls.Certificate {
	t.Helper()
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startNode starts a cluster node on a loopback port with fast timings.
func startNode(t testing.TB, ca *pki.CA, id string, cert tls.Certificate, bootstrap bool) *cluster.Node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startNodeOn(t, ca, id, cert, bootstrap, ln)
}

// startNodeOn starts a node on ln.
func startNodeOn(t testing.TB, ca *pki.CA, id string, cert tls.Certificate, bootstrap bool, ln net.Listener) *cluster.Node {
	t.Helper()
	n, err := cluster.New(cluster.Config{
		NodeID: id, DataDir: t.TempDir(), Listener: ln,
		Certificate: cert, RootCAs: ca.Pool(), Bootstrap: bootstrap,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond, NoSync: true,
		Logger: discardLogger(),
	})
	if err != nil {
		ln.Close()
		t.Fatalf("cluster.New(%s): %v", id, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// testCluster is a one-node cluster with its CA published and the API
// served over plain HTTP by httptest.
type testCluster struct {
	ca     *pki.CA
	master seal.Key
	node   *cluster.Node
	url    string
	logs   *syncBuffer
}

func newTestCluster(t testing.TB) *testCluster {
	t.Helper()
	ca, err := pki.NewCA("ferry test CA", 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	master, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, ca, "n1", nodeCert(t, ca, "n1"), true)
	waitFor(t, "n1 ready", 20*time.Second, n.Ready)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := admit.PublishCA(ctx, n, master, ca); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	tc := &testCluster{ca: ca, master: master, node: n, logs: &syncBuffer{}}
	h, err := New(Config{Node: n, MasterKey: master, Logger: slog.New(slog.NewTextHandler(tc.logs, nil)),
		APINames: []string{"n2.example.com", "localhost", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tc.url = srv.URL
	return tc
}

// token returns a join token expiring at expires, bound to nodeID unless
// it is empty. It is made with pki directly, so that it can be expired.
func (tc *testCluster) token(t testing.TB, expires time.Time, nodeID string) string {
	t.Helper()
	tok, err := pki.NewJoinTokenFor(seal.DeriveKey(tc.master, "join-token"), pki.Fingerprint(tc.ca.Cert), expires, nodeID)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// post sends body to path as JSON and returns the status and the body.
func (tc *testCluster) post(t testing.TB, path, contentType, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(tc.url+path, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// csrB64 returns a new key and its base64 DER certificate request for cn
// with the given DNS names.
func csrB64(t testing.TB, cn string, dnsNames []string, ips []net.IP) (crypto.Signer, string) {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn}, DNSNames: dnsNames, IPAddresses: ips,
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, base64.StdEncoding.EncodeToString(der)
}

// storeState returns the store revision and the members, to check
// that a refused request changed nothing.
func storeState(t testing.TB, n *cluster.Node) string {
	t.Helper()
	_, rev, err := n.List(context.Background(), "", cluster.Local)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rev=%d", rev)
	for _, m := range n.Status().Members {
		b.WriteString(" " + m.ID + "@" + m.Addr)
	}
	return b.String()
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
