package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startCluster(t testing.TB, n int) *clustertest.Cluster {
	t.Helper()
	return clustertest.Start(t, n, clustertest.Options{Fast: true, WriteTimeout: 5 * time.Second})
}

func newLog(t testing.TB, node *cluster.Node, tune ...func(*audit.Config)) *audit.Log {
	t.Helper()
	cfg := audit.Config{Store: node, Logger: quietLogger()}
	for _, f := range tune {
		f(&cfg)
	}
	l, err := audit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func newSigner(t testing.TB) *audit.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return audit.NewSigner(priv)
}

func loginEvent(i int) audit.Event {
	return audit.Event{
		Type:    audit.TypeLogin,
		Actor:   audit.Actor{UserID: fmt.Sprintf("u%d", i%50), Email: fmt.Sprintf("user%d@example.com", i%50), Groups: []string{"eng", "vpn"}, Session: fmt.Sprintf("s%d", i)},
		Source:  audit.Source{Addr: "198.51.100.7", Port: 40000 + i%1000, UserAgent: "ferry/1.0 (linux)"},
		Target:  audit.Target{Profile: "engineering"},
		Outcome: audit.Success, PolicyVersion: 42,
	}
}

func flowEvent(i int) audit.Event {
	return audit.Event{
		Type:    audit.TypeFlowAccept,
		Actor:   audit.Actor{UserID: fmt.Sprintf("u%d", i%50), Session: fmt.Sprintf("s%d", i%200)},
		Source:  audit.Source{Addr: "100.64.0.12", Port: 50000 + i%10000},
		Target:  audit.Target{Peer: "peer-1", DstAddr: "10.0.3.4", DstPort: 443, Protocol: "tcp"},
		Outcome: audit.Success, PolicyVersion: 42, BytesIn: uint64(i * 10), BytesOut: uint64(i * 7),
	}
}

// journalIDs returns every event ID in node's journal with its sequence
// number.
func journalIDs(t testing.TB, node *cluster.Node) map[string]uint64 {
	t.Helper()
	ids := map[string]uint64{}
	err := audit.Scan(context.Background(), node, audit.Filter{}, func(e *audit.Entry) error {
		if e.Event != nil {
			ids[e.Event.ID] = e.Seq
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// duplicateIDs counts events in node's journal whose ID an earlier record
// already carries.
func duplicateIDs(t testing.TB, node *cluster.Node) int {
	t.Helper()
	seen := map[string]bool{}
	d := 0
	err := audit.Scan(context.Background(), node, audit.Filter{}, func(e *audit.Entry) error {
		if e.Event != nil {
			if seen[e.Event.ID] {
				d++
			}
			seen[e.Event.ID] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitFor polls cond until it holds or timeout passes, then fails with
// cond's last explanation.
func waitFor(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	clustertest.WaitFor(t, timeout, "condition", func() error {
		if ok, why := cond(); !ok {
			return errors.New(why)
		}
		return nil
	})
}
