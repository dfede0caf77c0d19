package admit

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
)

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestPublishAndLoad(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	ctx := context.Background()
	master, _ := seal.GenerateKey()
	ca := newCA(t)

	if _, err := LoadCA(ctx, c.Node(1), master); !errors.Is(err, ErrNoCA) {
		t.Fatalf("Load before Publish: %v, want ErrNoCA", err)
	}
	stored, err := PublishCA(ctx, c.Node(0), master, ca)
	if err != nil || !stored {
		t.Fatalf("Publish: stored=%v err=%v", stored, err)
	}
	if stored, err := PublishCA(ctx, c.Node(0), master, ca); err != nil || stored {
		t.Errorf("second Publish: stored=%v err=%v, want false, nil", stored, err)
	}
	if _, err := PublishCA(ctx, c.Node(0), master, newCA(t)); !errors.Is(err, ErrCAMismatch) {
		t.Errorf("Publish of another CA: %v, want ErrCAMismatch", err)
	}

	// Every node can load it once replicated, and the store holds the key
	// sealed only.
	c.WaitConverged(10 * time.Second)
	for i := range 3 {
		got, err := LoadCA(ctx, c.Node(i), master)
		if err != nil {
			t.Fatalf("Load on node %d: %v", i, err)
		}
		if !bytes.Equal(got.Cert.Raw, ca.Cert.Raw) {
			t.Errorf("node %d loaded another CA", i)
		}
	}
	kv, _, err := c.Node(2).Get(ctx, KeyCAKey, cluster.Local)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := ca.KeyPEM()
	if bytes.Contains(kv.Value, []byte("PRIVATE KEY")) || bytes.Contains(kv.Value, keyPEM[30:60]) {
		t.Error("the store holds the CA key in clear")
	}
	other, _ := seal.GenerateKey()
	if _, err := LoadCA(ctx, c.Node(2), other); !errors.Is(err, seal.ErrDecrypt) {
		t.Errorf("Load with another master key: %v, want seal.ErrDecrypt", err)
	}
}

// TestPublishRace has every node publish its own CA at once: exactly one
// wins, the others learn that another CA is in place.
func TestPublishRace(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	master, _ := seal.GenerateKey()
	cas := []*pki.CA{newCA(t), newCA(t), newCA(t)}
	var (
		wg      sync.WaitGroup
		results [3]error
		stored  [3]bool
	)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stored[i], results[i] = PublishCA(context.Background(), c.Node(i), master, cas[i])
		}()
	}
	wg.Wait()
	winners := 0
	for i := range 3 {
		switch {
		case results[i] == nil && stored[i]:
			winners++
		case errors.Is(results[i], ErrCAMismatch):
		default:
			t.Errorf("node %d: stored=%v err=%v", i, stored[i], results[i])
		}
	}
	if winners != 1 {
		t.Errorf("%d publishers won, want exactly 1", winners)
	}
}
