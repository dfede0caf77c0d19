package tunnel

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/profiles"
)

// mirror is this node's copy of the replicated peers and profiles, with
// each profile compiled once per version. Owned by the reconciler.
type mirror struct {
	peers    map[string]*profiles.Peer // by peer ID
	profiles map[string]*policy        // by profile name
}

func newMirror() *mirror {
	return &mirror{peers: map[string]*profiles.Peer{}, profiles: map[string]*policy{}}
}

// replace loads a full listing of one of profiles.RecordPrefixes.
func (m *mirror) replace(prefix string, kvs []cluster.KV) error {
	switch {
	case profiles.IsPeerPrefix(prefix):
		m.peers = map[string]*profiles.Peer{}
	case profiles.IsProfilePrefix(prefix):
		m.profiles = map[string]*policy{}
	}
	var errs []string
	for _, kv := range kvs {
		r, err := profiles.DecodeRecord(kv.Key, kv.Value, kv.Version)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		m.set(r)
	}
	if len(errs) > 0 {
		return fmt.Errorf("skipped undecodable records: %s", strings.Join(errs, "; "))
	}
	return nil
}

// apply applies one committed change. A record that no longer decodes is
// dropped, so the data plane never keeps what it cannot read.
func (m *mirror) apply(ev cluster.Event) error {
	c, err := profiles.DecodeEvent(ev)
	switch {
	case c.DeletedPeer != "":
		delete(m.peers, c.DeletedPeer)
	case c.DeletedProfile != "":
		delete(m.profiles, c.DeletedProfile)
	case err != nil:
		m.drop(ev.Key)
		return err
	default:
		m.set(c.Record)
	}
	return nil
}

// set stores a decoded record.
func (m *mirror) set(r profiles.Record) {
	switch {
	case r.Peer != nil:
		m.peers[r.Peer.ID] = r.Peer
	case r.Profile != nil:
		pol := compile(*r.Profile)
		m.profiles[r.Profile.Name] = &pol
	}
}

// drop forgets the record stored under key, whichever kind it is.
func (m *mirror) drop(key string) {
	if c, _ := profiles.DecodeEvent(cluster.Event{Type: cluster.EventDelete, Key: key}); c.DeletedPeer != "" {
		delete(m.peers, c.DeletedPeer)
	} else if c.DeletedProfile != "" {
		delete(m.profiles, c.DeletedProfile)
	}
}

// addrs are a client's tunnel addresses: IPv4, and IPv6 when dual stack.
type addrs struct {
	v4, v6 netip.Addr
}

// allowedIPs returns the device's allowed IPs for a client: each of its
// addresses as a host route.
func (a addrs) allowedIPs() []net.IPNet {
	out := []net.IPNet{{IP: a.v4.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if a.v6.IsValid() {
		out = append(out, net.IPNet{IP: a.v6.AsSlice(), Mask: net.CIDRMask(128, 128)})
	}
	return out
}

// desired is what the data plane should hold at one instant.
type desired struct {
	device   map[wgtypes.Key]addrs          // public key -> client addresses
	clients  map[netip.Addr]string          // client address (either family) -> profile name
	policies map[string]*policy             // profiles in use or defined, by name
	byKey    map[wgtypes.Key]*profiles.Peer // the peer behind each device key
	// next is the earliest expiry after now among the desired peers; zero
	// when none.
	next time.Time
}

// desired computes the data plane for now: every valid peer whose profile
// exists and whose key and address are usable. Two valid peers never
// share an address or key in a healthy store; if they do, the later issued
// wins, the same on every node.
//
// With pool6 set, a peer whose Address6 is the one derived from its IPv4
// address gets it too; any other IPv6 address in a record is ignored, so a
// forged record cannot claim another client's mark.
func (m *mirror) desired(now time.Time, pool, pool6 netip.Prefix, server netip.Addr) desired {
	d := desired{
		device:   map[wgtypes.Key]addrs{},
		clients:  map[netip.Addr]string{},
		policies: m.profiles,
		byKey:    map[wgtypes.Key]*profiles.Peer{},
	}
	ids := make([]string, 0, len(m.peers))
	for id := range m.peers {
		ids = append(ids, id)
	}
	// Issue order, so the later issued peer wins a conflict.
	slices.SortFunc(ids, func(a, b string) int {
		if c := m.peers[a].Issued.Compare(m.peers[b].Issued); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	owner := map[netip.Addr]wgtypes.Key{}
	for _, id := range ids {
		p := m.peers[id]
		if !p.Valid(now) {
			continue
		}
		if _, ok := m.profiles[p.Profile]; !ok {
			continue
		}
		key, err := wgtypes.ParseKey(p.PublicKey)
		if err != nil || !p.Address.Is4() || !pool.Contains(p.Address) || p.Address == server {
			continue
		}
		if old, ok := owner[p.Address]; ok {
			if a, ok := d.device[old]; ok && a.v6.IsValid() {
				delete(d.clients, a.v6)
			}
			delete(d.device, old)
			delete(d.byKey, old)
		}
		if old, ok := d.device[key]; ok {
			delete(d.clients, old.v4)
			if old.v6.IsValid() {
				delete(d.clients, old.v6)
			}
			delete(owner, old.v4)
		}
		a := addrs{v4: p.Address}
		if want := profiles.Address6(pool6, p.Address); want.IsValid() && p.Address6 == want {
			a.v6 = want
			d.clients[a.v6] = p.Profile
		}
		owner[p.Address] = key
		d.device[key] = a
		d.clients[p.Address] = p.Profile
		d.byKey[key] = p
		if d.next.IsZero() || p.Expires.Before(d.next) {
			d.next = p.Expires
		}
	}
	return d
}

// applied is what the reconciler last programmed.
type applied struct {
	device   map[wgtypes.Key]addrs
	clients  map[netip.Addr]string
	versions map[string]uint64 // profile name -> programmed version
}

func newApplied() applied {
	return applied{device: map[wgtypes.Key]addrs{}, clients: map[netip.Addr]string{}, versions: map[string]uint64{}}
}

// plan is the difference between applied and desired state.
type plan struct {
	// peers configures the device: additions, address changes, removals.
	peers []wgtypes.PeerConfig
	// removed are the device keys going away.
	removed []wgtypes.Key
	fw      fwChange
	// cut are clients whose connections must all end (revoked, expired).
	cut []netip.Addr
	// recheck are clients whose profile changed: connections their new
	// policy no longer allows must end.
	recheck map[netip.Addr]bool
}

// diff computes what turns a into d. With full, the firewall is rebuilt
// from scratch (start, after a snapshot restore).
func diff(a applied, d desired, full bool) plan {
	pl := plan{recheck: map[netip.Addr]bool{}}
	for k := range a.device {
		if _, ok := d.device[k]; !ok {
			pl.peers = append(pl.peers, wgtypes.PeerConfig{PublicKey: k, Remove: true})
			pl.removed = append(pl.removed, k)
		}
	}
	for k, addr := range d.device {
		if old, ok := a.device[k]; ok && old == addr {
			continue
		}
		pl.peers = append(pl.peers, wgtypes.PeerConfig{PublicKey: k, ReplaceAllowedIPs: true, AllowedIPs: addr.allowedIPs()})
	}
	slices.SortFunc(pl.peers, func(x, y wgtypes.PeerConfig) int { return bytes.Compare(x.PublicKey[:], y.PublicKey[:]) })

	edited := map[string]bool{}
	for name, pol := range d.policies {
		if v, ok := a.versions[name]; full || !ok || v != pol.Version {
			pl.fw.Policies = append(pl.fw.Policies, *pol)
			if ok && v != pol.Version {
				edited[name] = true
			}
		}
	}
	slices.SortFunc(pl.fw.Policies, func(x, y policy) int { return strings.Compare(x.Name, y.Name) })
	for name := range a.versions {
		if _, ok := d.policies[name]; !ok {
			pl.fw.RemovedPolicies = append(pl.fw.RemovedPolicies, name)
		}
	}
	slices.Sort(pl.fw.RemovedPolicies)

	pl.fw.Reset = full
	pl.fw.AddClients = map[netip.Addr]string{}
	for addr, prof := range d.clients {
		old, ok := a.clients[addr]
		if full || !ok || old != prof {
			pl.fw.AddClients[addr] = prof
		}
		if ok && old != prof && !full {
			pl.fw.DelClients = append(pl.fw.DelClients, addr)
		}
		if (ok && old != prof) || edited[prof] {
			pl.recheck[addr] = true
		}
	}
	for addr := range a.clients {
		if _, ok := d.clients[addr]; !ok {
			if !full {
				pl.fw.DelClients = append(pl.fw.DelClients, addr)
			}
			pl.cut = append(pl.cut, addr)
		}
	}
	slices.SortFunc(pl.fw.DelClients, func(x, y netip.Addr) int { return x.Compare(y) })
	slices.SortFunc(pl.cut, func(x, y netip.Addr) int { return x.Compare(y) })
	return pl
}
