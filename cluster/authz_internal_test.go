package cluster

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster/pki"
)

// BenchmarkPeerCheck measures the per-request membership check alone, on
// a running single-node cluster: the figure to hold against a commit's
// latency (BenchmarkMembershipCheck measures it inside commits).
func BenchmarkPeerCheck(b *testing.B) {
	ca, err := pki.NewCA("bench CA", time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	cert := func(id string) tls.Certificate {
		key, _ := pki.NewKey()
		csr, _ := pki.NewCSR(key, id)
		certPEM, err := ca.IssueNode(csr, id, []string{DefaultServerName}, nil, time.Hour, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		keyPEM, _ := pki.KeyPEM(key)
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	n, err := New(Config{
		NodeID: "n1", DataDir: b.TempDir(), BindAddr: "127.0.0.1:0", Certificate: cert("n1"), RootCAs: ca.Pool(),
		Bootstrap: true, NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitLeader(ctx); err != nil {
		b.Fatal(err)
	}
	member := cert("n1").Leaf
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := n.allowed(member, false, fwdApply); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/check")
}
