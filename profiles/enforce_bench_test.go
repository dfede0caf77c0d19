package profiles_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/profiles"
)

// BenchmarkReevaluate times one group change re-decided for 10,000 users:
// every user holds a device under profile "eng" (groups eng and ops), 100
// of them through ops only; an edit drops ops from the profile, and the
// metric is the edit to the last of those 100 revocations committed, with
// the entitlement watcher running on all three nodes (the leader acts).
func BenchmarkReevaluate(b *testing.B) {
	const users, removed = 10000, 100
	e := newEntEnv(b, authn.Policy{})
	ctx := context.Background()
	prof, err := e.stores[0].Put(ctx, profiles.Profile{Name: "eng", Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.20.0.0/16")}},
		Groups: []string{"eng", "ops"}}, nil, admin)
	if err != nil {
		b.Fatal(err)
	}
	// Users, through authn as sign-ins or provisioning write them.
	ids := make([]string, users)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < users; i += 64 {
				g := "eng"
				if i < removed {
					g = "ops"
				}
				u, err := e.users[i%3].Provision(ctx, authn.Identity{Issuer: testIssuer, Subject: fmt.Sprintf("u%05d", i), Groups: []string{g}}, "bench")
				if err != nil {
					errs <- err
					return
				}
				ids[i] = u.ID
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	// Their devices, written in batches as issuance would leave them.
	now := e.clock.Now()
	var ops []cluster.Op
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := e.c.Node(0).Txn(ctx, cluster.Txn{Ops: ops}); err != nil {
			b.Fatal(err)
		}
		ops = nil
	}
	for i, uid := range ids {
		p := profiles.Peer{ID: fmt.Sprintf("p%05d", i), UserID: uid, Device: "laptop", PublicKey: fmt.Sprintf("k%05d", i),
			Address: netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}), Profile: "eng", ProfileVersion: prof.Version,
			Issued: now, Expires: now.Add(time.Hour)}
		v, _ := json.Marshal(p)
		ops = append(ops, cluster.Put(profiles.PeerPrefix+p.ID, v))
		if len(ops) == 500 {
			flush()
		}
	}
	flush()
	e.c.WaitConverged(30 * time.Second)

	for b.Loop() {
		w, _, _, err := e.c.Node(0).Watch(profiles.PeerPrefix)
		if err != nil {
			b.Fatal(err)
		}
		prof.Groups = []string{"eng"}
		start := time.Now()
		if prof, err = e.stores[1].Put(ctx, prof, &prof.Version, admin); err != nil {
			b.Fatal(err)
		}
		seen := map[string]bool{}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		for len(seen) < removed {
			evs, err := w.Next(wctx)
			if err != nil {
				b.Fatalf("%d of %d revoked: %v", len(seen), removed, err)
			}
			for _, ev := range evs {
				var p profiles.Peer
				if ev.Type == cluster.EventPut && json.Unmarshal(ev.Value, &p) == nil && p.Revoked != nil {
					seen[p.ID] = true
				}
			}
		}
		elapsed := time.Since(start)
		cancel()
		w.Close()
		b.ReportMetric(elapsed.Seconds(), "reevaluate-10k-s")
		// Restore for the next round: the group back, the devices live.
		prof.Groups = []string{"eng", "ops"}
		if prof, err = e.stores[1].Put(ctx, prof, &prof.Version, admin); err != nil {
			b.Fatal(err)
		}
		for i := range removed {
			p, err := e.stores[0].Peer(ctx, fmt.Sprintf("p%05d", i))
			if err != nil {
				b.Fatal(err)
			}
			p.Revoked, p.RevokedReason = nil, ""
			v, _ := json.Marshal(p)
			ops = append(ops, cluster.Put(profiles.PeerPrefix+p.ID, v))
		}
		flush()
	}
}
