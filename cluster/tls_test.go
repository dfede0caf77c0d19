package cluster_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/pki"
)

// Peers without a certificate from the cluster CA get nothing: no Raft, no
// forwarding, no membership.
func TestStrangersCannotSpeakRaftOrJoin(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	ctx := ctxT(t, time.Minute)
	if _, err := c.Node(0).Put(ctx, "secret", []byte("s3cr3t")); err != nil {
		t.Fatal(err)
	}
	addr := c.Node(0).Addr()
	other := clustertest.NewCA(t)

	attempts := []struct {
		name string
		cert []tls.Certificate
	}{
		{"no client certificate", nil},
		{"certificate from another CA", []tls.Certificate{clustertest.NodeCert(t, other, "n9")}},
	}
	for _, a := range attempts {
		for _, proto := range []byte{'R', 'F'} {
			t.Run(a.name+"/"+string(proto), func(t *testing.T) {
				conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
					Certificates: a.cert, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
				})
				if err != nil {
					return // refused during the handshake
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				conn.Write([]byte{proto, 0, 0, 0, 3, 1, 0, 0})
				if n, err := conn.Read(make([]byte, 64)); err == nil {
					t.Fatalf("server answered %d bytes to a peer without a cluster certificate", n)
				}
			})
		}
	}
	t.Run("plain tcp", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write([]byte("R\x00\x00\x00\x10garbage garbage"))
		if _, err := io.ReadAll(conn); err != nil {
			// a reset is as good as a close
			t.Log(err)
		}
	})

	// A whole node with a certificate from another CA cannot be added: its
	// address does not answer with a certificate of the cluster CA, so it
	// never becomes even a non-voter, and the cluster goes on.
	stranger, err := cluster.New(cluster.Config{
		NodeID: "n9", DataDir: filepath.Join(t.TempDir(), "n9"), BindAddr: "127.0.0.1:0",
		Certificate: clustertest.NodeCert(t, other, "n9"), RootCAs: other.Pool(),
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 250 * time.Millisecond,
		WriteTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if err := c.Node(1).AddVoter(clustertest.AsAdmin(ctx), "n9", stranger.Addr()); !errors.Is(err, cluster.ErrWrongPeer) {
		t.Fatalf("adding the stranger's address: got %v, want ErrWrongPeer", err)
	}
	if _, err := c.Node(2).Put(ctx, "still", []byte("writable")); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := stranger.WaitLeader(short); err == nil {
		t.Fatal("stranger learned of a leader")
	}
	if _, ok, _ := stranger.Get(ctx, "secret", cluster.Local); ok {
		t.Fatal("stranger received replicated state")
	}
	if n := len(c.Node(0).Status().Members); n != 3 {
		t.Fatalf("%d members after refusing the stranger, want 3", n)
	}
}

// A certificate from the cluster CA that is not a node certificate (an
// HTTPS API certificate: server usage only) cannot pose as a node.
func TestAPICertificateCannotPoseAsNode(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := c.CA.IssueServer(key.Public(), []string{cluster.DefaultServerName}, nil, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.KeyPEM(key)
	apiCert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	// As a client: refused by the node's listener.
	conn, err := tls.Dial("tcp", c.Node(0).Addr(), &tls.Config{Certificates: []tls.Certificate{apiCert}, RootCAs: c.CA.Pool(), ServerName: cluster.DefaultServerName, MinVersion: tls.VersionTLS13})
	if err == nil {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write([]byte{'F'})
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatal("node answered a peer with an API certificate")
		}
		conn.Close()
	}
	// As a server: a real node running with the API certificate as its
	// identity cannot be added, and the cluster keeps its quorum.
	impostor, err := cluster.New(cluster.Config{
		NodeID: "impostor", DataDir: filepath.Join(t.TempDir(), "imp"), BindAddr: "127.0.0.1:0",
		Certificate: apiCert, RootCAs: c.CA.Pool(),
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 250 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer impostor.Close()
	if err := c.Node(0).AddVoter(ctxT(t, 10*time.Second), "impostor", impostor.Addr()); !errors.Is(err, cluster.ErrWrongPeer) {
		t.Fatalf("adding the impostor: got %v, want ErrWrongPeer", err)
	}
	if _, err := c.Node(0).Put(ctxT(t, 10*time.Second), "k", []byte("v")); err != nil {
		t.Fatalf("write after refusing the impostor: %v", err)
	}
}
