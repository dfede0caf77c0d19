package tunnel

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/profiles"
)

// fakeDevice applies peer configs the way wgctrl documents them.
type fakeDevice struct {
	peers map[wgtypes.Key]wgtypes.Peer
	calls int
}

func (d *fakeDevice) Peers() ([]wgtypes.Peer, error) {
	var out []wgtypes.Peer
	for _, p := range d.peers {
		out = append(out, p)
	}
	return out, nil
}

func (d *fakeDevice) Stats() ([]wgtypes.Peer, error) {
	out, err := d.Peers()
	for i := range out {
		out[i].AllowedIPs = nil
	}
	return out, err
}

func (d *fakeDevice) ConfigurePeers(cfgs []wgtypes.PeerConfig) error {
	d.calls++
	for _, c := range cfgs {
		if c.Remove {
			delete(d.peers, c.PublicKey)
			continue
		}
		p := d.peers[c.PublicKey]
		p.PublicKey = c.PublicKey
		if c.ReplaceAllowedIPs {
			p.AllowedIPs = c.AllowedIPs
		}
		d.peers[c.PublicKey] = p
	}
	return nil
}

// fakeFirewall keeps the state the batches describe.
type fakeFirewall struct {
	clients  map[netip.Addr]string
	policies map[string]uint64
	changes  []fwChange
}

func (f *fakeFirewall) Apply(ch fwChange) error {
	f.changes = append(f.changes, ch)
	if ch.Reset {
		f.clients, f.policies = map[netip.Addr]string{}, map[string]uint64{}
	}
	for _, p := range ch.Policies {
		f.policies[p.Name] = p.Version
	}
	for _, n := range ch.RemovedPolicies {
		delete(f.policies, n)
	}
	for _, a := range ch.DelClients {
		delete(f.clients, a)
	}
	for a, p := range ch.AddClients {
		f.clients[a] = p
	}
	return nil
}

type fakeCutter struct {
	cut     []netip.Addr
	recheck []netip.Addr
}

func (c *fakeCutter) cutClients(addrs []netip.Addr) error {
	c.cut = append(c.cut, addrs...)
	return nil
}
func (c *fakeCutter) cutWhere(clients map[netip.Addr]bool, _ func(netip.Addr, netip.Addr, uint8, uint16) bool) error {
	for a := range clients {
		c.recheck = append(c.recheck, a)
	}
	return nil
}

// clock is a settable clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

type fixture struct {
	r      *reconciler
	dev    *fakeDevice
	fw     *fakeFirewall
	cut    *fakeCutter
	clock  *clock
	events []audit.Event
	rev    uint64
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{dev: &fakeDevice{peers: map[wgtypes.Key]wgtypes.Peer{}}, fw: &fakeFirewall{}, cut: &fakeCutter{},
		clock: &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}}
	f.r = &reconciler{dev: f.dev, fw: f.fw, cut: f.cut, mirror: newMirror(), applied: newApplied(),
		pool: netip.MustParsePrefix("100.64.0.0/16"), server: netip.MustParseAddr("100.64.0.1"), now: f.clock.now,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics(), index: &atomic.Pointer[peerIndex]{}}
	f.r.sess = newSessions(3*time.Minute, func(e audit.Event) { f.events = append(f.events, e) }, f.r.version, f.r.metrics)
	return f
}

func (f *fixture) put(t *testing.T, key string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	f.rev++
	if err := f.r.mirror.apply(cluster.Event{Type: cluster.EventPut, Key: key, Value: data, Revision: f.rev}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) converge(t *testing.T, full bool) time.Time {
	t.Helper()
	next, err := f.r.converge(full)
	if err != nil {
		t.Fatal(err)
	}
	return next
}

func key(t *testing.T) wgtypes.Key {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey()
}

func (f *fixture) peer(t *testing.T, id, addr, profile string, expires time.Duration) (profiles.Peer, wgtypes.Key) {
	k := key(t)
	p := profiles.Peer{ID: id, UserID: "u-" + id, Device: "d", PublicKey: k.String(), Address: netip.MustParseAddr(addr),
		Profile: profile, Issued: f.clock.t.Add(-time.Minute), Expires: f.clock.t.Add(expires)}
	f.put(t, profiles.PeerPrefix+id, p)
	return p, k
}

var engRules = []profiles.Rule{{CIDR: netip.MustParsePrefix("10.0.0.0/8"), Protocol: "tcp"}}

func TestReconcileDiff(t *testing.T) {
	f := newFixture(t)
	f.put(t, profiles.ProfilePrefix+"eng", profiles.Profile{Name: "eng", Rules: engRules})
	stale := key(t) // on the device from an earlier run, unknown to the store
	f.dev.peers[stale] = wgtypes.Peer{PublicKey: stale}
	pa, ka := f.peer(t, "a", "100.64.0.10", "eng", time.Hour)
	_, kb := f.peer(t, "b", "100.64.0.11", "eng", time.Hour)
	f.peer(t, "c", "100.64.0.12", "missing", time.Hour) // profile unknown: not programmed
	f.peer(t, "d", "10.0.0.1", "eng", time.Hour)        // outside the pool
	f.peer(t, "e", "100.64.0.1", "eng", time.Hour)      // the server's address
	f.peer(t, "f", "100.64.0.13", "eng", -time.Second)  // already expired

	t.Run("full resync at start", func(t *testing.T) {
		f.converge(t, true)
		if got := sortedKeys(mapKeysOf(f.dev.peers)); !slices.Equal(got, sortedKeys(slices.Values([]wgtypes.Key{ka, kb}))) {
			t.Fatalf("device peers %v, want a and b only", got)
		}
		if ch := f.fw.changes[len(f.fw.changes)-1]; !ch.Reset || len(ch.AddClients) != 2 {
			t.Fatalf("first batch should rebuild with 2 clients: %+v", ch)
		}
	})
	t.Run("nothing to do", func(t *testing.T) {
		calls, batches := f.dev.calls, len(f.fw.changes)
		f.converge(t, false)
		if f.dev.calls != calls || len(f.fw.changes) != batches+1 || !f.fw.changes[batches].empty() {
			t.Fatalf("an unchanged state changed something")
		}
	})
	t.Run("revocation removes the peer, its map entry and its connections", func(t *testing.T) {
		now := f.clock.t
		pa.Revoked = &now
		f.put(t, profiles.PeerPrefix+"a", pa)
		f.converge(t, false)
		if _, ok := f.dev.peers[ka]; ok {
			t.Fatal("revoked peer still on the device")
		}
		ch := f.fw.changes[len(f.fw.changes)-1]
		if ch.Reset || !slices.Equal(ch.DelClients, []netip.Addr{pa.Address}) || len(ch.AddClients) != 0 {
			t.Fatalf("revocation batch %+v", ch)
		}
		if !slices.Contains(f.cut.cut, pa.Address) {
			t.Fatal("revoked peer's connections not cut")
		}
	})
	t.Run("profile edit reprograms the policy and rechecks its clients", func(t *testing.T) {
		f.put(t, profiles.ProfilePrefix+"eng", profiles.Profile{Name: "eng", Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.1.0.0/16"), Protocol: "udp"}}})
		f.converge(t, false)
		ch := f.fw.changes[len(f.fw.changes)-1]
		if len(ch.Policies) != 1 || ch.Policies[0].Version != f.rev || len(ch.AddClients) != 0 {
			t.Fatalf("edit batch %+v", ch)
		}
		if !slices.Contains(f.cut.recheck, netip.MustParseAddr("100.64.0.11")) {
			t.Fatal("clients of the edited profile not rechecked")
		}
	})
	t.Run("key rotation replaces the device peer, keeps the map entry", func(t *testing.T) {
		pb := profiles.Peer{}
		data, _ := json.Marshal(f.r.mirror.peers["b"])
		json.Unmarshal(data, &pb)
		nk := key(t)
		pb.PublicKey = nk.String()
		f.put(t, profiles.PeerPrefix+"b", pb)
		f.converge(t, false)
		if _, ok := f.dev.peers[kb]; ok {
			t.Fatal("old key still on the device")
		}
		if p, ok := f.dev.peers[nk]; !ok || len(p.AllowedIPs) != 1 || p.AllowedIPs[0].String() != "100.64.0.11/32" {
			t.Fatalf("new key not on the device with its /32: %+v", p)
		}
		if ch := f.fw.changes[len(f.fw.changes)-1]; !ch.empty() {
			t.Fatalf("key rotation touched the firewall: %+v", ch)
		}
	})
	t.Run("profile deleted", func(t *testing.T) {
		f.rev++
		f.r.mirror.apply(cluster.Event{Type: cluster.EventDelete, Key: profiles.ProfilePrefix + "eng", Revision: f.rev})
		f.converge(t, false)
		if len(f.dev.peers) != 0 || len(f.fw.clients) != 0 || len(f.fw.policies) != 0 {
			t.Fatalf("left behind: device %d, clients %v, policies %v", len(f.dev.peers), f.fw.clients, f.fw.policies)
		}
	})
}

// Expiry needs no store change: the local clock decides, and converge
// names the instant it must run again.
func TestExpiryByLocalClock(t *testing.T) {
	f := newFixture(t)
	f.put(t, profiles.ProfilePrefix+"eng", profiles.Profile{Name: "eng", Rules: engRules})
	soon, ks := f.peer(t, "soon", "100.64.0.10", "eng", 10*time.Minute)
	later, kl := f.peer(t, "later", "100.64.0.11", "eng", time.Hour)
	for _, tc := range []struct {
		name     string
		advance  time.Duration
		wantKeys []wgtypes.Key
		wantNext time.Time
	}{
		{"both valid, wake at the first expiry", 0, []wgtypes.Key{ks, kl}, soon.Expires},
		{"a second before expiry", 10*time.Minute - time.Second, []wgtypes.Key{ks, kl}, soon.Expires},
		{"at expiry the peer goes", time.Second, []wgtypes.Key{kl}, later.Expires},
		{"all expired, nothing to wake for", time.Hour, nil, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.t = f.clock.t.Add(tc.advance)
			next := f.converge(t, f.fw.changes == nil)
			if !next.Equal(tc.wantNext) {
				t.Errorf("next wake %v, want %v", next, tc.wantNext)
			}
			got := sortedKeys(mapKeysOf(f.dev.peers))
			if !slices.Equal(got, sortedKeys(slices.Values(tc.wantKeys))) {
				t.Errorf("device peers %v, want %v", got, tc.wantKeys)
			}
		})
	}
	if !slices.Contains(f.cut.cut, soon.Address) {
		t.Error("expired peer's connections not cut")
	}
}

// Sessions start at the first handshake and end after idling, with the
// bytes in between, and end with the final counters when the peer goes.
func TestSessions(t *testing.T) {
	f := newFixture(t)
	f.put(t, profiles.ProfilePrefix+"eng", profiles.Profile{Name: "eng", Rules: engRules})
	p, k := f.peer(t, "a", "100.64.0.10", "eng", time.Hour)
	f.converge(t, true)
	hs := func(at time.Time, rx, tx int64) {
		d := f.dev.peers[k]
		d.LastHandshakeTime, d.ReceiveBytes, d.TransmitBytes = at, rx, tx
		f.dev.peers[k] = d
		if err := f.r.poll(); err != nil {
			t.Fatal(err)
		}
	}
	t0 := f.clock.t
	hs(time.Time{}, 0, 0)
	if len(f.events) != 0 {
		t.Fatalf("session before any handshake: %+v", f.events)
	}
	hs(t0, 148, 92)
	if len(f.events) != 1 || f.events[0].Type != audit.TypeSessionStart || f.events[0].Actor.UserID != p.UserID {
		t.Fatalf("want session.start: %+v", f.events)
	}
	f.clock.t = t0.Add(2 * time.Minute)
	hs(t0.Add(2*time.Minute), 5000, 7000)
	f.clock.t = t0.Add(5*time.Minute + time.Second)
	hs(t0.Add(2*time.Minute), 5000, 7000)
	if len(f.events) != 2 || f.events[1].Type != audit.TypeSessionEnd || f.events[1].Reason != endIdle ||
		f.events[1].BytesOut != 5000 || f.events[1].BytesIn != 7000 {
		t.Fatalf("want idle session.end with bytes: %+v", f.events)
	}
	// A new handshake after idling starts a new session counted from the
	// end of the last one (its handshake bytes belong to it).
	hs(f.clock.t, 5200, 7100)
	now := f.clock.t
	p.Revoked = &now
	d := f.dev.peers[k]
	d.ReceiveBytes, d.TransmitBytes = 9200, 8100
	f.dev.peers[k] = d
	f.put(t, profiles.PeerPrefix+"a", p)
	f.converge(t, false)
	last := f.events[len(f.events)-1]
	if len(f.events) != 4 || last.Type != audit.TypeSessionEnd || last.Reason != endRevoked || last.BytesOut != 4200 || last.BytesIn != 1100 {
		t.Fatalf("want revoked session.end with the final counters: %+v", f.events)
	}
}

func mapKeysOf[V any](m map[wgtypes.Key]V) func(func(wgtypes.Key) bool) {
	return func(yield func(wgtypes.Key) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func sortedKeys(seq func(func(wgtypes.Key) bool)) []string {
	var out []string
	for k := range seq {
		out = append(out, k.String())
	}
	slices.Sort(out)
	return out
}
