package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/cluster"
)

// The cluster-wide limit on concurrent captures is a set of replicated
// leases, one per running capture, owned by this package:
//
//	capture/lease/<capture ID>  a lease (JSON), written by the node that runs the capture
//	capture/leases              the leases' guard: every grant rewrites it
//
// A grant is one transaction that counts the unexpired leases it listed and
// holds only if the guard is still at the version it listed with, so two
// grants on two nodes cannot both count the same free place. Releasing
// deletes the capture's lease. The node that runs a capture renews its lease
// while it runs; a lease that is not renewed (its node crashed, or lost the
// cluster) expires after LeaseTTL and the next grant removes it, so a lost
// requester cannot hold a place for longer than that.
const (
	leasePrefix = "capture/lease/"
	leaseGuard  = "capture/leases"
)

// lease is the stored record of a running capture.
type lease struct {
	Running
	// Node runs the capture (merges every node's part).
	Node string `json:"node"`
	// Expires is when the lease lapses unless renewed, on the clock of the
	// node that runs the capture.
	Expires time.Time `json:"expires"`
}

func leaseKey(id string) string { return leasePrefix + id }

// maxGrantTries bounds the retries of a grant that lost its guard to
// another grant or release in between listing and writing.
const maxGrantTries = 8

// grant takes a cluster-wide place for capture r, or returns ErrBusy when
// limit unexpired leases exist. It returns the lease's version.
func (s *Service) grant(ctx context.Context, r Running, limit int) (uint64, error) {
	for range maxGrantTries {
		now := s.cfg.Now()
		guard, live, expired, err := s.listLeases(ctx, now)
		if err != nil {
			return 0, fmt.Errorf("listing the running captures: %w", err)
		}
		if len(live) >= limit {
			holders := make([]string, len(live))
			for i, l := range live {
				holders[i] = fmt.Sprintf("%s by %s on %s", l.ID, l.Actor, l.Node)
			}
			return 0, fmt.Errorf("%w: %d of %d captures run in the cluster (%s)", ErrBusy, len(live), limit, strings.Join(holders, "; "))
		}
		b, err := json.Marshal(lease{Running: r, Node: s.cfg.Node.ID(), Expires: now.Add(s.cfg.LeaseTTL)})
		if err != nil {
			return 0, err
		}
		ops := []cluster.Op{cluster.Put(leaseGuard, []byte(r.ID)), cluster.Put(leaseKey(r.ID), b)}
		for _, k := range expired {
			ops = append(ops, cluster.Delete(k))
		}
		res, err := s.cfg.Node.Txn(ctx, cluster.Txn{Compares: []cluster.Compare{cluster.IfVersion(leaseGuard, guard)}, Ops: ops})
		if err != nil {
			return 0, fmt.Errorf("taking a capture lease: %w", err)
		}
		if res.Succeeded {
			if len(expired) > 0 {
				s.log.Info("expired capture leases removed", "keys", expired)
			}
			return res.Revision, nil
		}
	}
	return 0, fmt.Errorf("%w: the running captures kept changing; try again", ErrBusy)
}

// listLeases reads the guard's version and the leases, split into those
// live at now and the keys of those expired.
func (s *Service) listLeases(ctx context.Context, now time.Time) (guard uint64, live []lease, expired []string, err error) {
	kvs, _, err := s.cfg.Node.List(ctx, "capture/lease", cluster.Linearizable)
	if err != nil {
		return 0, nil, nil, err
	}
	for _, kv := range kvs {
		if kv.Key == leaseGuard {
			guard = kv.Version
			continue
		}
		if !strings.HasPrefix(kv.Key, leasePrefix) {
			continue
		}
		var l lease
		if err := json.Unmarshal(kv.Value, &l); err != nil || !now.Before(l.Expires) {
			expired = append(expired, kv.Key)
			continue
		}
		live = append(live, l)
	}
	return guard, live, expired, nil
}

// renew extends the lease of capture id from version v, and returns its
// new version. It fails when the lease is no longer this capture's: it
// expired and another grant removed it.
func (s *Service) renew(ctx context.Context, r Running, v uint64) (uint64, error) {
	b, err := json.Marshal(lease{Running: r, Node: s.cfg.Node.ID(), Expires: s.cfg.Now().Add(s.cfg.LeaseTTL)})
	if err != nil {
		return 0, err
	}
	res, err := s.cfg.Node.Txn(ctx, cluster.Txn{Compares: []cluster.Compare{cluster.IfVersion(leaseKey(r.ID), v)}, Ops: []cluster.Op{cluster.Put(leaseKey(r.ID), b)}})
	switch {
	case err != nil:
		return v, err
	case !res.Succeeded:
		return v, errLeaseLost
	}
	return res.Revision, nil
}

// errLeaseLost ends a capture whose lease another grant removed.
var errLeaseLost = errors.New("capture: the capture's cluster lease lapsed")

// keepLease renews the lease every LeaseTTL/3 until ctx ends, and calls
// lost when the lease can no longer be this capture's.
func (s *Service) keepLease(ctx context.Context, r Running, v uint64, lost func(error)) {
	t := time.NewTicker(s.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		nv, err := s.renew(ctx, r, v)
		switch {
		case errors.Is(err, errLeaseLost):
			lost(err)
			return
		case err != nil:
			// A renewal that failed (no leader for a moment) is retried; the
			// lease lapses only after LeaseTTL without one.
			s.log.Warn("cannot renew a capture lease", "id", r.ID, "err", err)
		default:
			v = nv
		}
	}
}

// release deletes the lease of capture id. The requester may be gone: it
// runs on its own deadline.
func (s *Service) release(ctx context.Context, id string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.cfg.Node.Delete(rctx, leaseKey(id)); err != nil {
		s.log.Warn("cannot release a capture lease; it lapses on its own", "id", id, "err", err, "ttl", s.cfg.LeaseTTL)
	}
}

// holdsLease reports whether capture id holds a live lease, as a node
// serving its part checks before it captures anything.
func (s *Service) holdsLease(ctx context.Context, id string) (bool, error) {
	kv, ok, err := s.cfg.Node.Get(ctx, leaseKey(id), cluster.Linearizable)
	if err != nil || !ok {
		return false, err
	}
	var l lease
	if err := json.Unmarshal(kv.Value, &l); err != nil {
		return false, nil
	}
	return s.cfg.Now().Before(l.Expires.Add(s.cfg.LeaseTTL)), nil
}

// Running lists the captures running in the cluster (their leases, as
// this node has them), oldest first.
func (s *Service) Running(ctx context.Context) ([]Running, error) {
	kvs, _, err := s.cfg.Node.List(ctx, leasePrefix, cluster.Local)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	out := []Running{}
	for _, kv := range kvs {
		var l lease
		if json.Unmarshal(kv.Value, &l) != nil || !now.Before(l.Expires) {
			continue
		}
		r := l.Running
		r.Node = l.Node
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Running) int { return a.Started.Compare(b.Started) })
	return out, nil
}
