package tunnel

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/profiles"
)

// TestGrantsFollowClients checks the grant bookkeeping without a kernel:
// what an answer programs, when a repeated answer refreshes, and what
// happens when the address changes hands or the profile changes.
func TestGrantsFollowClients(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := &grantWriter{reqs: make(chan grantReq, 16), stopped: make(chan struct{})}
	g := newGrants(w, 30*time.Second, time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.now = func() time.Time { return now }
	mk := func(version uint64, rules ...profiles.Rule) *policy {
		p := compile(profiles.Profile{Name: "eng", Version: version, Rules: rules})
		return &p
	}
	db := profiles.Rule{Host: "db.prod.internal", Protocol: "tcp", Ports: []profiles.PortRange{{From: 5432, To: 5432}}}
	web := profiles.Rule{Host: "*.svc.example.com", Protocol: "tcp", Ports: []profiles.PortRange{{From: 443, To: 443}}}
	v1 := mk(1, db, web)
	client := netip.MustParseAddr("100.64.0.11")
	dst := netip.MustParseAddr("10.0.5.7")
	g.update(map[netip.Addr]*grantClient{client: {peer: "p1", v4: client, pol: v1}}, false)
	c := g.client(client)
	if c == nil {
		t.Fatal("client not in the view")
	}

	ops, n := g.grantLocked(c, "db.prod.internal", map[netip.Addr]time.Time{dst: now.Add(90 * time.Second)}, now)
	if n != 1 || len(ops) != 1 || ops[0].del || ops[0].timeout != 90*time.Second {
		t.Fatalf("first answer: %d addresses, ops %+v", n, ops)
	}
	if ops, _ := g.grantLocked(c, "db.prod.internal", map[netip.Addr]time.Time{dst: now.Add(100 * time.Second)}, now); len(ops) != 0 {
		t.Errorf("an answer extending the grant by less than half the grace wrote %+v", ops)
	}
	if ops, _ := g.grantLocked(c, "db.prod.internal", map[netip.Addr]time.Time{dst: now.Add(120 * time.Second)}, now); len(ops) != 1 {
		t.Errorf("an answer extending the grant by more than half the grace wrote %+v", ops)
	}
	if name, rule, ok := g.host(client, dst, protoTCP, 5432); !ok || name != "db.prod.internal" || rule != 0 {
		t.Errorf("host = %q, %d, %v", name, rule, ok)
	}
	if _, _, ok := g.host(client, dst, protoTCP, 443); ok {
		t.Error("port 443 named db.prod.internal's grant")
	}

	// A profile edit that keeps the name keeps the grant and its
	// connections; one that drops it removes the elements.
	v2 := mk(2, web, db)
	g.update(map[netip.Addr]*grantClient{client: {peer: "p1", v4: client, pol: v2}}, false)
	if !g.allows(client, dst, protoTCP, 5432, v2) {
		t.Error("an edit that keeps db.prod.internal does not keep its connection")
	}
	v3 := mk(3, web)
	if g.allows(client, dst, protoTCP, 5432, v3) {
		t.Error("an edit without db.prod.internal keeps its connection")
	}
	drained := func() (adds, dels int) {
		for {
			select {
			case r := <-w.reqs:
				for _, op := range r.ops {
					if op.del {
						dels++
					} else {
						adds++
					}
				}
				r.done <- nil
			default:
				return
			}
		}
	}
	drained()
	g.update(map[netip.Addr]*grantClient{client: {peer: "p1", v4: client, pol: v3}}, false)
	if adds, dels := drained(); dels != 1 || adds != 0 {
		t.Errorf("dropping the rule: %d adds, %d deletes; want 0, 1", adds, dels)
	}

	// The address goes to another peer: nothing of the old one's.
	// (Restoring the rule re-grants the live answer at once.)
	g.update(map[netip.Addr]*grantClient{client: {peer: "p1", v4: client, pol: v1}}, false)
	if adds, dels := drained(); adds != 1 || dels != 0 {
		t.Fatalf("restoring the rule: %d adds, %d deletes; want 1, 0", adds, dels)
	}
	g.update(map[netip.Addr]*grantClient{client: {peer: "p2", v4: client, pol: v1}}, false)
	if adds, dels := drained(); dels != 1 || adds != 0 {
		t.Errorf("address to another peer: %d adds, %d deletes; want 0, 1", adds, dels)
	}
	if g.allows(client, dst, protoTCP, 5432, v1) {
		t.Error("the new peer inherits the old one's connections")
	}
	if _, _, ok := g.host(client, dst, protoTCP, 5432); ok {
		t.Error("the new peer's flows are named after the old one's answers")
	}

	// A table reset programs every live element again.
	ops, _ = g.grantLocked(g.client(client), "api.svc.example.com", map[netip.Addr]time.Time{dst: now.Add(60 * time.Second)}, now)
	if len(ops) != 1 {
		t.Fatalf("granting web: %+v", ops)
	}
	g.update(map[netip.Addr]*grantClient{client: {peer: "p2", v4: client, pol: v1}}, true)
	if adds, _ := drained(); adds != 1 {
		t.Errorf("after a reset %d elements re-added, want 1", adds)
	}
	// Outside the profile: nothing.
	if _, err := g.grant(client, "other.prod.internal", []answer{{dst, time.Minute}}); err != nil || g.count() != 1 {
		t.Errorf("a name outside the profile: err %v, %d elements", err, g.count())
	}
	if _, err := g.grant(netip.MustParseAddr("100.64.0.99"), "db.prod.internal", []answer{{dst, time.Minute}}); err != ErrNotClient {
		t.Errorf("a stranger's answer: %v, want ErrNotClient", err)
	}
}

// TestGrantExpiredElementWrittenAgain checks the shortcut that skips the
// kernel for a repeated answer: it holds only while the element programmed
// is alive. Once the element's timeout has run out (the kernel dropped
// it), the next answer writes it again, even one that would not have
// extended a live element by half the grace.
func TestGrantExpiredElementWrittenAgain(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := &grantWriter{reqs: make(chan grantReq, 16), stopped: make(chan struct{})}
	g := newGrants(w, 30*time.Second, time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.now = func() time.Time { return now }
	pol := compile(profiles.Profile{Name: "eng", Version: 1, Rules: []profiles.Rule{
		{Host: "db.prod.internal", Protocol: "tcp", Ports: []profiles.PortRange{{From: 5432, To: 5432}}}}})
	client := netip.MustParseAddr("100.64.0.11")
	dst := netip.MustParseAddr("10.0.5.7")
	g.update(map[netip.Addr]*grantClient{client: {peer: "p1", v4: client, pol: &pol}}, false)
	c := g.client(client)
	if ops, _ := g.grantLocked(c, "db.prod.internal", map[netip.Addr]time.Time{dst: now.Add(40 * time.Second)}, now); len(ops) != 1 {
		t.Fatalf("first answer: %+v", ops)
	}
	if ops, _ := g.grantLocked(c, "db.prod.internal", map[netip.Addr]time.Time{dst: now.Add(41 * time.Second)}, now); len(ops) != 0 {
		t.Fatalf("a repeated answer wrote %+v while the element is alive", ops)
	}
	// The element's timeout runs out without expire() having run.
	now = now.Add(41 * time.Second)
	ops, _ := g.grantLocked(c, "db.prod.internal", map[netip.Addr]time.Time{dst: now.Add(10 * time.Second)}, now)
	if len(ops) != 1 || ops[0].del || ops[0].timeout != 10*time.Second {
		t.Errorf("an answer after the element expired wrote %+v; want it added again for 10s", ops)
	}
}

// TestGrantExtendMatchesSync checks the per-answer shortcut (extendLocked)
// against the full recomputation (syncLocked) over random answers: names
// of overlapping rules answered with a few shared addresses, TTLs and
// clock steps at random. After every answer both must leave the same live
// elements with the same expiries for the pieces the answered name's rules
// admit, and write the same additions there; the shortcut leaves the other
// pieces as they were. (The full recomputation also re-adds another name's
// element that expired within the half grace its last refresh was allowed
// to fall short by; that name's answer is then past its TTL, and its next
// answer grants it again.)
func TestGrantExtendMatchesSync(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 5))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := &grantWriter{reqs: make(chan grantReq, 16), stopped: make(chan struct{})}
	g := newGrants(w, 30*time.Second, time.Minute, log)
	pol := compile(profiles.Profile{Name: "eng", Version: 1, Rules: []profiles.Rule{
		{Host: "*.svc.example.com", Protocol: "tcp", Ports: []profiles.PortRange{{From: 443, To: 443}}},
		{Host: "db.svc.example.com", Protocol: "tcp", Ports: []profiles.PortRange{{From: 400, To: 5432}}},
		{Host: "db.svc.example.com", Protocol: "udp"},
		{Host: "api.svc.example.com", Protocol: "tcp", Ports: []profiles.PortRange{{From: 8000, To: 9000}}},
	}})
	client := netip.MustParseAddr("100.64.0.11")
	c := &grantClient{peer: "p1", v4: client, pol: &pol}
	names := []string{"db.svc.example.com", "api.svc.example.com", "a.svc.example.com", "b.svc.example.com"}
	dsts := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}
	clone := func(src map[grantKey]*grantEntry) map[grantKey]*grantEntry {
		out := map[grantKey]*grantEntry{}
		for k, e := range src {
			c := *e
			c.names, c.elems = maps.Clone(e.names), maps.Clone(e.elems)
			out[k] = &c
		}
		return out
	}
	for step := range 5000 {
		now = now.Add(time.Duration(rng.IntN(20)) * time.Second)
		name := names[rng.IntN(len(names))]
		until := map[netip.Addr]time.Time{}
		for range 1 + rng.IntN(2) {
			until[dsts[rng.IntN(len(dsts))]] = now.Add(time.Duration(rng.IntN(90))*time.Second + g.grace)
		}
		// The reference: every touched entry recomputed in full.
		before := clone(g.entries)
		ref := &grants{grace: g.grace, retain: g.retain, entries: clone(g.entries)}
		rules := pol.hostRules(name)
		mine := map[svc]bool{}
		for _, p := range pol.Hosts4 {
			if intersects(p.rules, rules) {
				mine[p.svc] = true
			}
		}
		adds := func(ops []grantOp) []string {
			var out []string
			for _, op := range ops {
				if op.del {
					continue
				}
				for s := range mine {
					if start, _ := grantElem(client, netip.AddrFrom4([4]byte(op.start[4:8])), s); string(start) == string(op.start) {
						out = append(out, fmt.Sprintf("%x-%x %v", op.start, op.end, op.timeout))
					}
				}
			}
			slices.Sort(out)
			return out
		}
		var refOps []grantOp
		for addr, u := range until {
			k := grantKey{client, addr}
			e := ref.entries[k]
			if e == nil {
				e = &grantEntry{peer: c.peer, profile: pol.Name, version: pol.Version, pol: &pol,
					names: map[string]time.Time{}, elems: map[svc]time.Time{}}
				ref.entries[k] = e
			}
			if u.After(e.names[name]) {
				e.names[name] = u
			}
			refOps = append(refOps, ref.syncLocked(k, e, c, now)...)
		}
		ops, _ := g.grantLocked(c, name, until, now)
		if a, b := adds(ops), adds(refOps); !slices.Equal(a, b) {
			t.Fatalf("step %d (%s at %v): additions %v, the full recomputation %v", step, name, until, a, b)
		}
		for k, re := range ref.entries {
			e := g.entries[k]
			for s, exp := range re.elems {
				if mine[s] && exp.After(now) && (e == nil || !e.elems[s].Equal(exp)) {
					t.Fatalf("step %d: %v %+v: expiry %v, the full recomputation %v", step, k.dst, s, e.elems[s], exp)
				}
			}
		}
		for k, e := range g.entries {
			for s, exp := range e.elems {
				if !exp.After(now) {
					continue
				}
				if mine[s] {
					if re := ref.entries[k]; re == nil || !re.elems[s].Equal(exp) {
						t.Fatalf("step %d: %v %+v: live element %v the full recomputation lacks", step, k.dst, s, exp)
					}
				} else if b := before[k]; b == nil || !b.elems[s].Equal(exp) {
					t.Fatalf("step %d: %v %+v: an answer for %s changed another rule's element to %v", step, k.dst, s, name, exp)
				}
			}
		}
		if rng.IntN(50) == 0 {
			g.expire()
		}
	}
}
