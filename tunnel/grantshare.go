package tunnel

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/ferryvpn/ferry/cluster"
)

// GrantPrefix is where nodes share the grants of their DNS answers:
// GrantPrefix + peer ID + "/" + name, holding a sharedGrant. The tunnel
// package owns these records.
//
// Why share rather than re-resolve on the next node: WireGuard moves a
// client to another node without its resolver noticing, and the resolver
// keeps the answer for its TTL, so the next node would not see a query
// until then and would refuse new connections meanwhile. A shared grant
// costs one replicated write per (client, name) when an answer brings a
// new address or extends the grant by more than half the grace, written
// in batches off the answer's path: the answer waits only for this node's
// kernel, never for Raft.
const GrantPrefix = "tunnel/grants/"

// sharedGrant is one shared record: the addresses name resolved to for
// peer, each until an instant (the TTL plus the grace from the answer).
type sharedGrant struct {
	Peer  string                   `json:"peer"`
	Name  string                   `json:"name"`
	Until map[netip.Addr]time.Time `json:"until"`
}

// Share timing.
const (
	// shareInterval batches shared grants into one replicated write: the
	// first grant offered after a quiet spell is written shareInterval
	// later, with whatever came meanwhile. With nothing to share the
	// sharer does not wake at all (it waited on a 100 ms ticker before, a
	// tenth of an idle gateway's wake-ups, counted in every GB it forwards).
	shareInterval = 100 * time.Millisecond
	// shareSweep is how often expired records are deleted.
	shareSweep = time.Minute
)

// grantSharer writes this node's grants to the cluster and applies every
// node's shared grants to the local grants.
type grantSharer struct {
	node   *cluster.Node
	grants *grants
	grace  time.Duration
	log    *slog.Logger
	now    func() time.Time

	// wake tells run that pending has grants to write (buffered, one).
	wake chan struct{}

	mu      sync.Mutex // guards pending and known
	pending map[string]sharedGrant
	known   map[string]sharedGrant // the records as last written or seen
}

func newGrantSharer(node *cluster.Node, g *grants, grace time.Duration, log *slog.Logger) *grantSharer {
	s := &grantSharer{node: node, grants: g, grace: grace, log: log, now: time.Now,
		wake:    make(chan struct{}, 1),
		pending: map[string]sharedGrant{}, known: map[string]sharedGrant{}}
	return s
}

func grantKeyName(peer, name string) string { return GrantPrefix + peer + "/" + name }

// offer queues a local grant for sharing when it adds an address or
// extends one by more than half the grace over what the cluster holds.
func (s *grantSharer) offer(peer, name string, until map[netip.Addr]time.Time) {
	key := grantKeyName(peer, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.pending[key]
	if !ok {
		cur = sharedGrant{Peer: peer, Name: name, Until: map[netip.Addr]time.Time{}}
		now := s.now()
		for a, t := range s.known[key].Until {
			if t.After(now) {
				cur.Until[a] = t
			}
		}
	}
	need := false
	for a, t := range until {
		if t.After(cur.Until[a].Add(s.grace / 2)) {
			need = true
		}
		if t.After(cur.Until[a]) {
			cur.Until[a] = t
		}
	}
	if need || ok {
		s.pending[key] = cur
		s.signal()
	}
}

// signal wakes run, which writes pending within shareInterval.
func (s *grantSharer) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// seen records a shared grant from the watch and applies it.
func (s *grantSharer) seen(key string, value []byte) {
	var r sharedGrant
	if err := json.Unmarshal(value, &r); err != nil || r.Peer == "" || r.Name == "" {
		s.log.Warn("ignoring an undecodable shared grant", "key", key)
		return
	}
	s.mu.Lock()
	s.known[key] = r
	s.mu.Unlock()
	s.grants.applyShared(r.Peer, r.Name, r.Until)
}

// run writes pending grants shareInterval after the first of them was
// offered (and again every shareInterval while a write fails) and sweeps
// expired records, until ctx ends. With nothing pending no timer runs.
func (s *grantSharer) run(ctx context.Context) {
	sweep := time.NewTicker(shareSweep)
	defer sweep.Stop()
	batch := time.NewTimer(shareInterval)
	batch.Stop()
	var due <-chan time.Time // batch.C while a write is due, nil otherwise
	for {
		select {
		case <-ctx.Done():
			batch.Stop()
			return
		case <-s.wake:
			if due == nil {
				batch.Reset(shareInterval)
				due = batch.C
			}
		case <-due:
			due = nil
			if s.flush(ctx) {
				batch.Reset(shareInterval)
				due = batch.C
			}
		case <-sweep.C:
			s.sweep(ctx)
		}
	}
}

// flush writes the pending grants and reports whether a write failed, the
// grants are pending again and run should retry after shareInterval.
func (s *grantSharer) flush(ctx context.Context) (retry bool) {
	s.mu.Lock()
	pending := s.pending
	s.pending = map[string]sharedGrant{}
	s.mu.Unlock()
	if len(pending) == 0 {
		return false
	}
	var ops []cluster.Op
	for key, r := range pending {
		data, err := json.Marshal(r)
		if err != nil {
			continue
		}
		ops = append(ops, cluster.Put(key, data))
	}
	for len(ops) > 0 {
		n := min(len(ops), 500)
		if _, err := s.node.Txn(ctx, cluster.Txn{Ops: ops[:n]}); err != nil {
			// No leader, or shutting down: try again shareInterval later.
			s.log.Debug("sharing host grants failed; retrying", "err", err)
			s.mu.Lock()
			for key, r := range pending {
				if _, newer := s.pending[key]; !newer {
					s.pending[key] = r
				}
			}
			s.mu.Unlock()
			return true
		}
		ops = ops[n:]
	}
	s.mu.Lock()
	for key, r := range pending {
		s.known[key] = r
	}
	s.mu.Unlock()
	return false
}

// sweep deletes records whose every address expired a grace ago. Any node
// may do it; deleting twice is harmless.
func (s *grantSharer) sweep(ctx context.Context) {
	now := s.now()
	var ops []cluster.Op
	s.mu.Lock()
	for key, r := range s.known {
		live := false
		for _, t := range r.Until {
			live = live || t.Add(s.grace).After(now)
		}
		if !live {
			ops = append(ops, cluster.Delete(key))
			delete(s.known, key)
		}
	}
	s.mu.Unlock()
	for len(ops) > 0 {
		n := min(len(ops), 500)
		if _, err := s.node.Txn(ctx, cluster.Txn{Ops: ops[:n]}); err != nil {
			s.log.Debug("deleting expired shared grants failed", "err", err)
			return
		}
		ops = ops[n:]
	}
}

// follow applies the watch of GrantPrefix: full listings and changes.
func (s *grantSharer) follow(ctx context.Context, msgs <-chan watchMsg) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			for _, kv := range m.kvs {
				s.seen(kv.Key, kv.Value)
			}
			for _, ev := range m.events {
				switch ev.Type {
				case cluster.EventPut:
					s.seen(ev.Key, ev.Value)
				case cluster.EventDelete:
					s.mu.Lock()
					delete(s.known, ev.Key)
					s.mu.Unlock()
				}
			}
		}
	}
}
