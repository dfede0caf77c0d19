package profiles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
)

// PeerFilter selects peers in listings; empty fields match everything.
type PeerFilter struct {
	UserID  string
	Profile string
	Node    string
	// Valid, when set, keeps only peers whose validity at now matches.
	Valid *bool
}

// Peers lists peers matching f, from this node's state.
func (s *Store) Peers(ctx context.Context, f PeerFilter) ([]Peer, error) {
	kvs, _, err := s.c.List(ctx, PeerPrefix, cluster.Local)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []Peer
	for _, kv := range kvs {
		var p Peer
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return nil, fmt.Errorf("decoding peer %s: %w", kv.Key, err)
		}
		if (f.UserID != "" && p.UserID != f.UserID) || (f.Profile != "" && p.Profile != f.Profile) ||
			(f.Node != "" && p.Node != f.Node) || (f.Valid != nil && p.Valid(now) != *f.Valid) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// Peer returns one peer, confirmed with the leader, so a revocation made
// through any node shows at once.
func (s *Store) Peer(ctx context.Context, id string) (Peer, error) {
	p, _, err := s.getPeer(ctx, id)
	return p, err
}

// RevokePeer revokes one peer.
func (s *Store) RevokePeer(ctx context.Context, id, reason string, actor audit.Actor) error {
	n, err := s.RevokeWhere(ctx, func(p *Peer) bool { return p.ID == id }, reason, actor)
	if err == nil && n == 0 {
		return fmt.Errorf("%w: peer %q", ErrNotFound, id)
	}
	return err
}

// RevokeUser revokes every device of a user.
func (s *Store) RevokeUser(ctx context.Context, userID, reason string, actor audit.Actor) (int, error) {
	return s.RevokeWhere(ctx, func(p *Peer) bool { return p.UserID == userID }, reason, actor)
}

// RevokeProfile revokes every peer issued under a profile.
func (s *Store) RevokeProfile(ctx context.Context, name, reason string, actor audit.Actor) (int, error) {
	return s.RevokeWhere(ctx, func(p *Peer) bool { return p.Profile == name }, reason, actor)
}

// RevokeWhere revokes every not yet revoked peer that match selects and
// returns how many it revoked. Each is a compare-and-swap, so a concurrent
// re-issue is not overwritten blindly. A revocation by an administrator
// (actor.Role admin, not the device's owner) sticks: the owner cannot
// reissue that device until an administrator clears it (ClearRevocation).
func (s *Store) RevokeWhere(ctx context.Context, match func(*Peer) bool, reason string, actor audit.Actor) (int, error) {
	return s.revokeWhere(ctx, match, reason, actor, true)
}

// revokeWhere is RevokeWhere; with mayStick false no revocation sticks
// (disabling a user: enabling them again restores their devices' names).
func (s *Store) revokeWhere(ctx context.Context, match func(*Peer) bool, reason string, actor audit.Actor, mayStick bool) (int, error) {
	kvs, _, err := s.c.List(ctx, PeerPrefix, cluster.Linearizable)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, kv := range kvs {
		var p Peer
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return n, fmt.Errorf("decoding peer %s: %w", kv.Key, err)
		}
		if p.Revoked != nil || !match(&p) {
			continue
		}
		ok, err := s.revoke(ctx, p, kv.Version, reason, actor, mayStick && sticks(actor, &p))
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// sticks reports whether actor's revocation of p sticks: an
// administrator revoking someone else's device.
func sticks(actor audit.Actor, p *Peer) bool {
	return actor.Role == authn.RoleAdmin && actor.UserID != p.UserID
}

func (s *Store) revoke(ctx context.Context, p Peer, version uint64, reason string, actor audit.Actor, sticky bool) (bool, error) {
	for attempt := 0; attempt < maxIssueAttempts; attempt++ {
		now := s.now().UTC()
		p.Revoked, p.RevokedReason, p.RevokedByAdmin = &now, reason, sticky
		if sticky {
			p.RevokedBy = actorName(actor)
		}
		data, err := json.Marshal(p)
		if err != nil {
			return false, err
		}
		// The revocation and its record commit together or not at all.
		r, err := audit.Commit(ctx, s.c, s.rec, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(peerKey(p.ID), version)},
			Ops:      []cluster.Op{cluster.Put(peerKey(p.ID), data)},
		}, audit.Event{Type: audit.TypePeerRevoke, Actor: actor,
			Target:  audit.Target{Peer: p.ID, Device: p.Device, Profile: p.Profile, User: p.UserID, DstAddr: p.Address.String()},
			Outcome: audit.Success, Reason: reason, PolicyVersion: p.ProfileVersion})
		if err != nil {
			return false, err
		}
		if r.Succeeded {
			return true, nil
		}
		cur, kv, err := s.getPeer(ctx, p.ID)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if cur.Revoked != nil {
			return false, nil
		}
		p, version = cur, kv.Version
	}
	return false, fmt.Errorf("%w: revoking peer %s", ErrConflict, p.ID)
}

// Sweep removes peer records that expired or were revoked longer ago than
// the retention, freeing their addresses and keys. Run it on the leader
// only (see RunJanitor).
func (s *Store) Sweep(ctx context.Context) (int, error) {
	kvs, _, err := s.c.List(ctx, PeerPrefix, cluster.Linearizable)
	if err != nil {
		return 0, err
	}
	cutoff := s.now().Add(-s.keep)
	n := 0
	for _, kv := range kvs {
		var p Peer
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return n, fmt.Errorf("decoding peer %s: %w", kv.Key, err)
		}
		if p.Revoked != nil && p.RevokedByAdmin {
			continue // kept until an administrator clears it: the name stays blocked
		}
		ended := p.Expires
		if p.Revoked != nil && p.Revoked.Before(ended) {
			ended = *p.Revoked
		}
		if !ended.Before(cutoff) {
			continue
		}
		devKV, _, err := s.c.Get(ctx, devicesKey(p.UserID), cluster.Linearizable)
		if err != nil {
			return n, err
		}
		var devs devices
		if devKV.Version != 0 {
			if err := json.Unmarshal(devKV.Value, &devs); err != nil {
				return n, fmt.Errorf("decoding devices of %s: %w", p.UserID, err)
			}
		}
		ops := []cluster.Op{cluster.Delete(peerKey(p.ID)), cluster.Delete(addrKey(p.Address.String())), cluster.Delete(pubkeyKey(p.PublicKey))}
		if devs.Peers[p.Device] == p.ID {
			delete(devs.Peers, p.Device)
			data, err := json.Marshal(devs)
			if err != nil {
				return n, err
			}
			ops = append(ops, cluster.Put(devicesKey(p.UserID), data))
		}
		r, err := s.c.Txn(ctx, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(peerKey(p.ID), kv.Version), cluster.IfVersion(devicesKey(p.UserID), devKV.Version)},
			Ops:      ops,
		})
		if err != nil {
			return n, err
		}
		if r.Succeeded {
			n++
		}
	}
	return n, nil
}

// RunJanitor sweeps every interval while this node leads, until ctx ends.
func (s *Store) RunJanitor(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !s.c.IsLeader() {
				continue
			}
			if n, err := s.Sweep(ctx); err != nil {
				s.log.Warn("peer janitor failed", "err", err)
			} else if n > 0 {
				s.log.Info("peer janitor removed old peers", "count", n)
			}
		}
	}
}

// ClearRevocation lets the owner of a device an administrator revoked
// reissue it under the same name; the peer stays revoked. Only an
// administrator's call should reach it.
func (s *Store) ClearRevocation(ctx context.Context, id string, actor audit.Actor) error {
	for attempt := 0; attempt < maxIssueAttempts; attempt++ {
		p, kv, err := s.getPeer(ctx, id)
		if err != nil {
			return err
		}
		if !p.RevokedByAdmin {
			return nil
		}
		p.RevokedByAdmin = false
		data, err := json.Marshal(p)
		if err != nil {
			return err
		}
		r, err := audit.Commit(ctx, s.c, s.rec, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(peerKey(p.ID), kv.Version)},
			Ops:      []cluster.Op{cluster.Put(peerKey(p.ID), data)},
		}, audit.Event{Type: audit.TypePeerRevoke, Action: "peer.revocation.clear", Actor: actor,
			Target:  audit.Target{Peer: p.ID, Device: p.Device, Profile: p.Profile, User: p.UserID},
			Outcome: audit.Success, Reason: "an administrator cleared the revocation: the device may be reissued"})
		if err != nil {
			return err
		}
		if r.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("%w: clearing revocation of peer %s", ErrConflict, id)
}

// CountValid returns how many peers are valid at now (what Peers with
// Valid set to true would list), from this node's state, reading each
// record's expiry and revocation only.
func (s *Store) CountValid(ctx context.Context) (int, error) {
	kvs, _, err := s.c.List(ctx, PeerPrefix, cluster.Local)
	if err != nil {
		return 0, err
	}
	now := s.now()
	n := 0
	for _, kv := range kvs {
		var p struct {
			Expires time.Time  `json:"expires"`
			Revoked *time.Time `json:"revoked,omitempty"`
		}
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return 0, fmt.Errorf("decoding peer %s: %w", kv.Key, err)
		}
		if (&Peer{Expires: p.Expires, Revoked: p.Revoked}).Valid(now) {
			n++
		}
	}
	return n, nil
}
