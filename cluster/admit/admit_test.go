package admit

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// events records what an Admitter reports.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) record(_ context.Context, ev Event) error {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
	return nil
}

func (e *events) count(action string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.all {
		if ev.Action == action {
			n++
		}
	}
	return n
}

func joinRequest(t *testing.T, tok, id string, port int) JoinRequest {
	t.Helper()
	key, _ := pki.NewKey()
	csr, err := pki.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	apiKey, _ := pki.NewKey()
	apiCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}, DNSNames: []string{"VPN.example.com"}}, apiKey)
	if err != nil {
		t.Fatal(err)
	}
	return JoinRequest{Token: tok, NodeID: id, Addr: fmt.Sprintf("127.0.0.1:%d", port), CSR: csr, APICSR: apiCSR}
}

// Two nodes presenting the same token at once, to different members: the
// compare-and-swap lets exactly one in.
func TestTokenAdmitsOneNodeUnderRace(t *testing.T) {
	// Each leader decides a forwarded add_nonvoter the way ferryd's does:
	// by asking its own Admitter whether the join token proves it. The
	// winner may have asked a follower, so this must be wired.
	var mu sync.Mutex
	byNode := map[string]*Admitter{}
	tune := func(cfg *cluster.Config) {
		id := cfg.NodeID
		cfg.Authorize = func(ctx context.Context, req cluster.AuthRequest) (string, error) {
			mu.Lock()
			a := byNode[id]
			mu.Unlock()
			if a == nil {
				return "", errors.New("admitter not ready")
			}
			actor, handled, err := a.Authorize(ctx, req)
			if !handled {
				return "", errors.New("no join token as proof")
			}
			return actor, err
		}
	}
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, Tune: tune})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	master, _ := seal.GenerateKey()
	ca := newCA(t)
	if _, err := PublishCA(ctx, c.Node(0), master, ca); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(10 * time.Second)
	ev := &events{}
	var admitters []*Admitter
	for i := 0; i < 3; i++ {
		a, err := New(Config{Node: c.Node(i), MasterKey: master, APINames: []string{"vpn.example.com"}, Record: ev.record})
		if err != nil {
			t.Fatal(err)
		}
		admitters = append(admitters, a)
		mu.Lock()
		byNode[c.Node(i).ID()] = a
		mu.Unlock()
	}
	tok, err := MintToken(master, ca.Cert, 0, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const racers = 6
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := 0; i < racers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = admitters[i%3].Join(ctx, joinRequest(t, tok.Text, fmt.Sprintf("n%d", 10+i), 1000+i))
		}(i)
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrTokenUsed):
			t.Errorf("racer %d: %v, want ErrTokenUsed", i, err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d nodes admitted with one token, want 1: %v", ok, errs)
	}
	if n := ev.count("join_token.redeem"); n != 1 {
		t.Errorf("%d redemptions recorded, want 1", n)
	}
	if n := ev.count("cert.issue"); n != 2 {
		t.Errorf("%d certificate issuances recorded, want 2 (node and API)", n)
	}
	if n := ev.count("join_token.refused"); n != racers-1 {
		t.Errorf("%d refusals recorded, want %d", n, racers-1)
	}
}

// Token lifetimes: the default is an hour, the maximum a day, for every
// way of minting one.
func TestTokenLifetime(t *testing.T) {
	master, _ := seal.GenerateKey()
	ca := newCA(t)
	now := time.Now()
	tok, err := MintToken(master, ca.Cert, 0, "", now)
	if err != nil || tok.Expires.Sub(now) > DefaultTokenTTL || tok.Expires.Sub(now) < DefaultTokenTTL-time.Second {
		t.Fatalf("default token: expires %s, err %v", tok.Expires, err)
	}
	for _, ttl := range []time.Duration{-time.Second, MaxTokenTTL + time.Second} {
		if _, err := MintToken(master, ca.Cert, ttl, "", now); !errors.Is(err, ErrInvalid) {
			t.Errorf("ttl %s: %v, want ErrInvalid", ttl, err)
		}
	}
	if _, err := MintToken(master, ca.Cert, time.Hour, "Bad_ID", now); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad node id: %v", err)
	}
}
