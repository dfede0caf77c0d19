package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/profiles"
)

// reconciler converges the device and the firewall on the mirror of the
// replicated state, incrementally, and drives the session tracker. All of
// it runs on one goroutine.
type reconciler struct {
	dev     device
	fw      firewall
	cut     cutter // nil: connections are not cut (tests without conntrack)
	sess    *sessions
	mirror  *mirror
	applied applied
	pool    netip.Prefix
	pool6   netip.Prefix // zero: IPv4 only
	server  netip.Addr
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics
	index   *atomic.Pointer[peerIndex]
	// grants, when the DNS forwarder runs, follows the valid clients.
	grants *grants
	// node and stats: each poll publishes the device's per-peer counters
	// (Gateway.PeerStats); stats nil: not published.
	node  string
	stats *atomic.Pointer[NodePeerStats]
	names keyNames // the published keys' text, kept between polls
	// last is the desired state of the last successful convergence.
	last desired
}

// converge brings the data plane to the state desired at now and returns
// the next instant it must run again (the earliest expiry; zero: none).
// With full it re-reads the device and rebuilds the firewall.
func (r *reconciler) converge(full bool) (time.Time, error) {
	start := time.Now()
	now := r.now()
	d := r.mirror.desired(now, r.pool, r.pool6, r.server)
	if full {
		peers, err := r.dev.Peers()
		if err != nil {
			return time.Time{}, err
		}
		r.applied = newApplied()
		for _, p := range peers {
			// Anything but one /32 and at most one /128 is reconfigured.
			var a addrs
			ok := len(p.AllowedIPs) <= 2
			for _, n := range p.AllowedIPs {
				ip, valid := netip.AddrFromSlice(n.IP)
				ones, bits := n.Mask.Size()
				switch ip = ip.Unmap(); {
				case valid && ip.Is4() && ones == 32 && bits == 32 && !a.v4.IsValid():
					a.v4 = ip
				case valid && ip.Is6() && ones == 128 && bits == 128 && !a.v6.IsValid():
					a.v6 = ip
				default:
					ok = false
				}
			}
			if !ok {
				a = addrs{}
			}
			r.applied.device[p.PublicKey] = a
		}
	}
	pl := diff(r.applied, d, full)
	planned := time.Now()
	if err := r.fw.Apply(pl.fw); err != nil {
		return time.Time{}, err
	}
	enforced := time.Now()
	if r.grants != nil {
		r.grants.update(grantView(d), pl.fw.Reset)
	}
	r.applied.clients = d.clients
	r.applied.versions = make(map[string]uint64, len(d.policies))
	for name, p := range d.policies {
		r.applied.versions[name] = p.Version
	}
	var errs []error
	if r.cut != nil {
		if len(pl.cut) > 0 {
			if err := r.cut.cutClients(pl.cut); err != nil {
				errs = append(errs, err)
			}
		}
		if len(pl.recheck) > 0 {
			allowed := func(client, dst netip.Addr, proto uint8, dport uint16) bool {
				pol := d.policies[d.clients[client]]
				return pol != nil && (pol.allows(dst, proto, dport) || (r.grants != nil && r.grants.allows(client, dst, proto, dport, pol)))
			}
			if err := r.cut.cutWhere(pl.recheck, allowed); err != nil {
				errs = append(errs, err)
			}
		}
	}
	cut := time.Now()
	if err := r.configureDevice(pl, d, now); err != nil {
		return time.Time{}, errors.Join(append(errs, err)...)
	}
	r.metrics.duration.Observe(time.Since(start).Seconds())
	if full || time.Since(start) > 100*time.Millisecond {
		r.log.Info("reconciled", "full", full, "peers", len(d.device), "device_changes", len(pl.peers),
			"clients_added", len(pl.fw.AddClients), "clients_removed", len(pl.fw.DelClients), "policies", len(pl.fw.Policies),
			"plan", planned.Sub(start), "firewall", enforced.Sub(planned), "cut", cut.Sub(enforced), "device", time.Since(cut))
	}
	r.last = d
	r.publishIndex(d)
	r.metrics.peers.Set(float64(len(d.device)))
	if len(errs) > 0 {
		// The policy is in force; only cutting old connections failed.
		r.log.Warn("cutting connections failed", "err", errors.Join(errs...))
	}
	return d.next, nil
}

// grantView returns the valid clients by address (either family) for the
// DNS forwarder's grants.
func grantView(d desired) map[netip.Addr]*grantClient {
	view := make(map[netip.Addr]*grantClient, len(d.clients))
	for k, p := range d.byKey {
		a := d.device[k]
		pol := d.policies[p.Profile]
		if pol == nil {
			continue
		}
		c := &grantClient{peer: p.ID, v4: a.v4, v6: a.v6, pol: pol}
		view[a.v4] = c
		if a.v6.IsValid() {
			view[a.v6] = c
		}
	}
	return view
}

// configureDevice applies the peer changes, ending the sessions of
// removed peers with their final counters.
func (r *reconciler) configureDevice(pl plan, d desired, now time.Time) error {
	if len(pl.peers) == 0 {
		return nil
	}
	var final map[wgtypes.Key]*wgtypes.Peer
	if len(pl.removed) > 0 && r.sess != nil {
		if peers, err := r.dev.Stats(); err == nil {
			final = make(map[wgtypes.Key]*wgtypes.Peer, len(peers))
			for i := range peers {
				final[peers[i].PublicKey] = &peers[i]
			}
		}
	}
	if err := r.dev.ConfigurePeers(pl.peers); err != nil {
		return err
	}
	r.applied.device = d.device
	if r.sess != nil {
		for _, k := range pl.removed {
			r.sess.removed(k, final[k], now, r.endReason(k, now))
		}
	}
	return nil
}

// endReason says why a key left the device.
func (r *reconciler) endReason(k wgtypes.Key, now time.Time) string {
	old := r.last.byKey[k]
	if old == nil {
		return endRemoved
	}
	cur := r.mirror.peers[old.ID]
	switch {
	case cur == nil:
		return endRemoved
	case cur.Revoked != nil:
		return endRevoked
	case !now.Before(cur.Expires):
		return endExpired
	}
	return endRemoved
}

// publishIndex publishes the address-to-peer index the flow monitors read:
// every peer the store holds (revoked and expired ones too, until they are
// swept), so late conntrack events are still attributed.
func (r *reconciler) publishIndex(d desired) {
	idx := &peerIndex{byAddr: make(map[netip.Addr]*profiles.Peer, len(r.mirror.peers)), versions: make(map[string]uint64, len(d.policies)),
		rules: make(map[string][]profiles.Rule, len(d.policies))}
	for _, p := range r.mirror.peers {
		if old := idx.byAddr[p.Address]; old == nil || old.Issued.Before(p.Issued) {
			idx.byAddr[p.Address] = p
		}
	}
	for _, p := range r.mirror.peers {
		if p.Address6.IsValid() && p.Address6 == profiles.Address6(r.pool6, p.Address) {
			if old := idx.byAddr[p.Address6]; old == nil || old.Issued.Before(p.Issued) {
				idx.byAddr[p.Address6] = p
			}
		}
	}
	for k, p := range d.byKey {
		a := d.device[k]
		idx.byAddr[a.v4] = p
		if a.v6.IsValid() {
			idx.byAddr[a.v6] = p
		}
	}
	for name, p := range d.policies {
		idx.versions[name] = p.Version
		idx.rules[name] = p.Rules
	}
	r.index.Store(idx)
}

// poll reads the device for sessions.
func (r *reconciler) poll() error {
	peers, err := r.dev.Stats()
	if err != nil {
		return fmt.Errorf("polling device: %w", err)
	}
	now := r.now()
	r.sess.observe(now, peers, r.last.byKey)
	if r.stats != nil {
		if r.names == nil {
			r.names = keyNames{}
		}
		publishStats(r.stats, r.node, now, peers, r.last.byKey, r.names)
	}
	return nil
}

// version returns the enforced version of a profile.
func (r *reconciler) version(profile string) uint64 {
	if p := r.last.policies[profile]; p != nil {
		return p.Version
	}
	return 0
}
