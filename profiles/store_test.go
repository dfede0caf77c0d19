package profiles_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/profiles"
)

// recorder collects audit events.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) count(typ audit.Type, outcome audit.Outcome) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type == typ && e.Outcome == outcome {
			n++
		}
	}
	return n
}

// clock is an adjustable clock.
type clock struct{ t atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.t.Store(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.t.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.t.Add(int64(d)) }

type env struct {
	c      *clustertest.Cluster
	stores []*profiles.Store
	rec    *recorder
	clock  *clock
}

func newEnv(t *testing.T, nodes int, pool string) *env {
	return startEnv(t, nodes, pool, true)
}

// newBenchEnv is a three-node environment with production timeouts and a
// /16 pool, with the "eng" profile, for benchmarks.
func newBenchEnv(b *testing.B) *env {
	e := startEnv(b, 3, "100.64.0.0/16", false)
	if _, err := e.stores[0].Put(context.Background(), profiles.Profile{
		Name: "eng", Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.20.0.0/16"), Protocol: "tcp"}}, Groups: []string{"engineering"},
	}, nil, admin); err != nil {
		b.Fatal(err)
	}
	e.c.WaitConverged(10 * time.Second)
	return e
}

func startEnv(t testing.TB, nodes int, pool string, fast bool) *env {
	t.Helper()
	e := &env{c: clustertest.Start(t, nodes, clustertest.Options{Fast: fast, WriteTimeout: 10 * time.Second}), rec: &recorder{}, clock: newClock()}
	for i := 0; i < nodes; i++ {
		s, err := profiles.New(profiles.Config{Cluster: e.c.Node(i), Pool: netip.MustParsePrefix(pool), Recorder: e.rec, Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		e.stores = append(e.stores, s)
	}
	return e
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func pubkey(t testing.TB) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b[:])
}

func session(user string, groups ...string) authn.Session {
	return authn.Session{ID: "s-" + user, Identity: authn.Identity{UserID: user, Email: user + "@example.com", Groups: groups}, Role: authn.RoleUser}
}

var admin = audit.Actor{UserID: "admin", Role: authn.RoleAdmin}

func (e *env) putProfile(t *testing.T, name string, groups ...string) profiles.Profile {
	t.Helper()
	p, err := e.stores[0].Put(ctx(t), profiles.Profile{
		Name:   name,
		Rules:  []profiles.Rule{{CIDR: netip.MustParsePrefix("10.20.0.0/16"), Protocol: "tcp", Ports: []profiles.PortRange{{443, 443}}}},
		Groups: groups,
	}, nil, admin)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIssueThroughEveryNode(t *testing.T) {
	e := newEnv(t, 3, "100.64.0.0/16")
	prof := e.putProfile(t, "eng", "engineering")
	e.c.WaitConverged(10 * time.Second)
	seen := map[netip.Addr]bool{}
	for i, s := range e.stores {
		peer, got, err := s.Issue(ctx(t), session(fmt.Sprintf("u%d", i), "engineering"), profiles.IssueRequest{PublicKey: pubkey(t), Device: "laptop"})
		if err != nil {
			t.Fatalf("issuing through node %d: %v", i, err)
		}
		if got.Name != "eng" || peer.ProfileVersion != prof.Version || !peer.Valid(e.clock.Now()) {
			t.Fatalf("peer %+v under %q", peer, got.Name)
		}
		if !e.stores[0].Pool().Contains(peer.Address) || peer.Address == e.stores[0].ServerAddr() || seen[peer.Address] {
			t.Fatalf("bad or duplicate address %s", peer.Address)
		}
		seen[peer.Address] = true
		// Every node sees it at once.
		for j, other := range e.stores {
			if p, err := other.Peer(ctx(t), peer.ID); err != nil || p.Address != peer.Address {
				t.Fatalf("node %d: peer %+v, %v", j, p, err)
			}
		}
	}
	if n := e.rec.count(audit.TypePeerIssue, audit.Success); n != 3 {
		t.Fatalf("%d peer.issue events, want 3", n)
	}
}

func TestConcurrentIssuanceGivesDistinctAddresses(t *testing.T) {
	e := newEnv(t, 3, "100.64.0.0/22") // 1021 client addresses
	e.putProfile(t, "eng", "engineering")
	e.c.WaitConverged(10 * time.Second)
	const n = 500
	addrs := make([]netip.Addr, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			peer, _, err := e.stores[i%3].Issue(ctx(t), session(fmt.Sprintf("user%03d", i), "engineering"), profiles.IssueRequest{PublicKey: pubkey(t), Device: "laptop"})
			if err != nil {
				t.Errorf("issuance %d: %v", i, err)
				return
			}
			addrs[i] = peer.Address
		}(i)
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, a := range addrs {
		if j, dup := seen[a]; dup {
			t.Fatalf("issuances %d and %d share %s", i, j, a)
		}
		seen[a] = i
	}
	e.c.WaitConverged(10 * time.Second) // Peers reads local state
	all, err := e.stores[1].Peers(ctx(t), profiles.PeerFilter{})
	if err != nil || len(all) != n {
		t.Fatalf("%d peers stored, want %d (%v)", len(all), n, err)
	}
}

func TestPoolExhaustion(t *testing.T) {
	e := newEnv(t, 1, "100.64.0.0/28") // 16 - network, server, broadcast = 13
	e.putProfile(t, "eng", "engineering")
	for i := 0; i < 13; i++ {
		if _, _, err := e.stores[0].Issue(ctx(t), session(fmt.Sprintf("u%d", i), "engineering"), profiles.IssueRequest{PublicKey: pubkey(t), Device: "d"}); err != nil {
			t.Fatalf("issuance %d: %v", i, err)
		}
	}
	before, _ := e.stores[0].Peers(ctx(t), profiles.PeerFilter{})
	_, _, err := e.stores[0].Issue(ctx(t), session("one-too-many", "engineering"), profiles.IssueRequest{PublicKey: pubkey(t), Device: "d"})
	if !errors.Is(err, profiles.ErrPoolExhausted) {
		t.Fatalf("got %v, want ErrPoolExhausted", err)
	}
	after, _ := e.stores[0].Peers(ctx(t), profiles.PeerFilter{})
	if len(after) != len(before) {
		t.Fatalf("a failed issuance stored a peer: %d -> %d", len(before), len(after))
	}
	if e.rec.count(audit.TypePeerIssue, audit.Failure) != 1 {
		t.Fatal("failed issuance not audited")
	}
}

func TestAuthorizationAndDevices(t *testing.T) {
	e := newEnv(t, 1, "100.64.0.0/16")
	e.putProfile(t, "eng", "engineering")
	e.putProfile(t, "ops", "operations")
	s := e.stores[0]
	alice := session("alice", "engineering")

	if _, _, err := s.Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "laptop", Profile: "ops"}); !errors.Is(err, profiles.ErrNotAllowed) {
		t.Fatalf("profile of another group: got %v, want ErrNotAllowed", err)
	}
	if _, _, err := s.Issue(ctx(t), session("bob"), profiles.IssueRequest{PublicKey: pubkey(t), Device: "laptop"}); !errors.Is(err, profiles.ErrNotAllowed) {
		t.Fatalf("user with no profile: got %v, want ErrNotAllowed", err)
	}
	bad := []profiles.IssueRequest{
		{PublicKey: "not-a-key", Device: "laptop"},
		{PublicKey: base64.StdEncoding.EncodeToString(make([]byte, 31)), Device: "laptop"},
		{PublicKey: pubkey(t), Device: ""},
		{PublicKey: pubkey(t), Device: "../../etc"},
	}
	for _, r := range bad {
		if _, _, err := s.Issue(ctx(t), alice, r); !errors.Is(err, profiles.ErrInvalid) {
			t.Fatalf("request %+v: got %v, want ErrInvalid", r, err)
		}
	}

	// The same device again rotates its key and keeps its address.
	first, _, err := s.Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := s.Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || again.Address != first.Address || again.PublicKey == first.PublicKey {
		t.Fatalf("re-issue: %+v after %+v", again, first)
	}
	// A key in use by another device is refused.
	if _, _, err := s.Issue(ctx(t), session("carol", "engineering"), profiles.IssueRequest{PublicKey: again.PublicKey, Device: "x"}); !errors.Is(err, profiles.ErrInvalid) {
		t.Fatalf("reused public key: got %v", err)
	}
	// Device limit (default 5).
	for i := 1; i < profiles.DefaultMaxDevices; i++ {
		if _, _, err := s.Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: fmt.Sprintf("dev%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "one-more"}); !errors.Is(err, profiles.ErrTooManyDevices) {
		t.Fatalf("device limit: got %v", err)
	}
}

func TestExpiryAndRevocationAreImmediate(t *testing.T) {
	e := newEnv(t, 3, "100.64.0.0/16")
	e.putProfile(t, "eng", "engineering")
	e.c.WaitConverged(10 * time.Second)
	issue := func(user string) profiles.Peer {
		p, _, err := e.stores[0].Issue(ctx(t), session(user, "engineering"), profiles.IssueRequest{PublicKey: pubkey(t), Device: "d"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, c := issue("a"), issue("b"), issue("c")

	// Revocation through node 1 shows on node 2 at once.
	if err := e.stores[1].RevokePeer(ctx(t), a.ID, "lost laptop", admin); err != nil {
		t.Fatal(err)
	}
	if p, err := e.stores[2].Peer(ctx(t), a.ID); err != nil || p.Valid(e.clock.Now()) || p.State(e.clock.Now()) != "revoked" {
		t.Fatalf("after revoke: %+v %v", p, err)
	}
	// Revoking a user (as disabling them does) ends all their devices.
	if n, err := e.stores[2].RevokeUser(ctx(t), "b", "user disabled", admin); err != nil || n != 1 {
		t.Fatalf("revoke user: %d, %v", n, err)
	}
	if p, _ := e.stores[0].Peer(ctx(t), b.ID); p.Valid(e.clock.Now()) {
		t.Fatal("disabled user's peer still valid")
	}
	// Expiry needs no cleanup.
	if p, _ := e.stores[0].Peer(ctx(t), c.ID); !p.Valid(e.clock.Now()) {
		t.Fatal("fresh peer invalid")
	}
	e.clock.Advance(profiles.DefaultMaxSession)
	if p, _ := e.stores[1].Peer(ctx(t), c.ID); p.Valid(e.clock.Now()) || p.State(e.clock.Now()) != "expired" {
		t.Fatalf("peer valid at its expiry: %+v", p)
	}
	// The janitor removes old records and frees their addresses, except
	// devices an administrator revoked: they stay until cleared.
	e.clock.Advance(25 * time.Hour)
	if n, err := e.stores[0].Sweep(ctx(t)); err != nil || n != 1 {
		t.Fatalf("sweep removed %d, %v", n, err)
	}
	if all, _ := e.stores[0].Peers(ctx(t), profiles.PeerFilter{}); len(all) != 2 {
		t.Fatalf("%d peers left after sweep, want the 2 an admin revoked", len(all))
	}
	if e.rec.count(audit.TypePeerRevoke, audit.Success) != 2 {
		t.Fatal("revocations not audited")
	}
}
