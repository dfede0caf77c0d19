package profiles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
)

// EntitlementActor is the audit actor of revocations the entitlement
// watcher makes; the event's reason names the change and who made it.
var EntitlementActor = audit.Actor{UserID: "ferry:entitlement", Role: "system"}

// Watcher timing.
const (
	// leaderPoll is how often the watcher checks whether this node leads;
	// a new leader re-evaluates every live peer.
	leaderPoll = time.Second
	// fullPassEvery re-evaluates every live peer now and then, so a
	// revocation that failed (no quorum, say) is retried.
	fullPassEvery = time.Minute
)

// RunEntitlements is the entitlement watcher. It follows user records
// (authn.Users.Watch), profiles and peers, and whenever one of them
// changes it re-decides, with Entitle, every live peer the change touches:
// a user's peers when their record changes (groups at sign-in, refresh or
// provisioning, disable, deletion), a profile's peers when it is edited,
// a new peer when it is issued (so an issuance racing a removal loses).
// Peers that no longer qualify are revoked, with the reason naming the
// change and who made it. Every node keeps the state; only the leader
// writes, so the work is done once; a node that becomes leader
// re-evaluates everything. Sessions need no watcher: Sessions.Validate
// applies the same policy on every request.
//
// The tunnel package on every node follows the revoked peers and cuts
// their connections. RunEntitlements needs Config.Users; it returns when
// ctx ends.
//
// If a watch fails (the store closing under it, say), the watcher starts
// over from fresh listings after a second, so enforcement never stops
// while ctx lives.
func (s *Store) RunEntitlements(ctx context.Context) error {
	if s.users == nil {
		return errors.New("profiles: entitlement watcher: config has no Users")
	}
	for {
		err := s.runEntitlements(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("entitlement watcher failed; starting over", "err", err)
		t := time.NewTimer(leaderPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (s *Store) runEntitlements(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs := make(chan entMsg, 64)
	errc := make(chan error, 3)
	for _, pump := range []func(context.Context, chan<- entMsg) error{
		s.pumpUsers,
		func(ctx context.Context, out chan<- entMsg) error { return s.pumpPrefix(ctx, ProfilePrefix, out) },
		func(ctx context.Context, out chan<- entMsg) error { return s.pumpPrefix(ctx, PeerPrefix, out) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- pump(ctx, msgs)
		}()
	}

	st := newEntState()
	poll := time.NewTicker(leaderPoll)
	defer poll.Stop()
	lastFull := time.Time{}
	wasLeader := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("entitlement watcher: %w", err)
		case m := <-msgs:
			st.apply(m)
		drain:
			for {
				select {
				case m := <-msgs:
					st.apply(m)
				default:
					break drain
				}
			}
		case <-poll.C:
		}
		if !st.ready() {
			continue
		}
		leader := s.c.IsLeader()
		if !leader {
			wasLeader = false
			st.clearDirty()
			continue
		}
		if !wasLeader || s.now().Sub(lastFull) >= fullPassEvery {
			st.full = true
		}
		wasLeader = true
		if st.full {
			lastFull = s.now()
		}
		if err := s.enforce(ctx, st); err != nil && ctx.Err() == nil {
			s.log.Warn("entitlement watcher: enforcing failed; will retry", "err", err)
			st.full = true
		}
	}
}

// entMsg is one batch from a watch.
type entMsg struct {
	// users
	users     []authn.UserChange
	userReset []authn.User
	isUsers   bool
	reset     bool // users: userReset replaces every user
	// a prefix
	prefix   string
	snapshot bool
	kvs      []cluster.KV
	events   []cluster.Event
}

func (s *Store) pumpUsers(ctx context.Context, out chan<- entMsg) error {
	w, all, err := s.users.Watch()
	if err != nil {
		return err
	}
	defer w.Close()
	if !sendMsg(ctx, out, entMsg{isUsers: true, reset: true, userReset: all}) {
		return nil
	}
	for {
		changes, reset, all, err := w.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		m := entMsg{isUsers: true, users: changes}
		if reset {
			m = entMsg{isUsers: true, reset: true, userReset: all}
		}
		if !sendMsg(ctx, out, m) {
			return nil
		}
	}
}

func (s *Store) pumpPrefix(ctx context.Context, prefix string, out chan<- entMsg) error {
	w, kvs, _, err := s.c.Watch(prefix)
	if err != nil {
		return err
	}
	defer func() { w.Close() }()
	if !sendMsg(ctx, out, entMsg{prefix: prefix, snapshot: true, kvs: kvs}) {
		return nil
	}
	for {
		evs, err := w.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		reset := false
		for _, e := range evs {
			reset = reset || e.Type == cluster.EventReset
		}
		m := entMsg{prefix: prefix, events: evs}
		if reset {
			w.Close()
			if w, kvs, _, err = s.c.Watch(prefix); err != nil {
				return err
			}
			m = entMsg{prefix: prefix, snapshot: true, kvs: kvs}
		}
		if !sendMsg(ctx, out, m) {
			return nil
		}
	}
}

func sendMsg(ctx context.Context, out chan<- entMsg, m entMsg) bool {
	select {
	case out <- m:
		return true
	case <-ctx.Done():
		return false
	}
}

// peerEntry is a mirrored peer and its store version.
type peerEntry struct {
	peer    Peer
	version uint64
}

// entState mirrors the watcher's inputs. It is owned by the watcher's
// goroutine.
type entState struct {
	users    map[string]authn.User
	deleted  map[string]bool // users whose record was deleted
	profiles map[string]*Profile
	peers    map[string]*peerEntry
	byUser   map[string]map[string]bool // user ID -> peer IDs
	// what to re-decide
	dirtyUsers    map[string]bool
	dirtyProfiles map[string]bool
	dirtyPeers    map[string]bool
	full          bool
	seen          int // which of the three watches have listed (bits)
}

func newEntState() *entState {
	st := &entState{
		users: map[string]authn.User{}, deleted: map[string]bool{}, profiles: map[string]*Profile{},
		peers: map[string]*peerEntry{}, byUser: map[string]map[string]bool{},
	}
	st.clearDirty()
	return st
}

func (st *entState) ready() bool { return st.seen == 7 }

func (st *entState) clearDirty() {
	st.dirtyUsers, st.dirtyProfiles, st.dirtyPeers, st.full = map[string]bool{}, map[string]bool{}, map[string]bool{}, false
}

func (st *entState) apply(m entMsg) {
	switch {
	case m.isUsers && m.reset:
		st.seen |= 1
		st.users = make(map[string]authn.User, len(m.userReset))
		for _, u := range m.userReset {
			st.users[u.ID] = u
		}
		st.full = true
	case m.isUsers:
		for _, c := range m.users {
			if c.User == nil {
				delete(st.users, c.ID)
				st.deleted[c.ID] = true
			} else {
				st.users[c.ID] = *c.User
				delete(st.deleted, c.ID)
			}
			st.dirtyUsers[c.ID] = true
		}
	case m.prefix == ProfilePrefix:
		if m.snapshot {
			st.seen |= 2
			st.profiles = map[string]*Profile{}
			for _, kv := range m.kvs {
				st.putProfile(kv.Key, kv.Value, kv.Version)
			}
			st.full = true
			return
		}
		for _, e := range m.events {
			name := strings.TrimPrefix(e.Key, ProfilePrefix)
			if e.Type == cluster.EventDelete {
				delete(st.profiles, name)
			} else {
				st.putProfile(e.Key, e.Value, e.Revision)
			}
			st.dirtyProfiles[name] = true
		}
	case m.prefix == PeerPrefix:
		if m.snapshot {
			st.seen |= 4
			st.peers, st.byUser = map[string]*peerEntry{}, map[string]map[string]bool{}
			for _, kv := range m.kvs {
				st.putPeer(kv.Value, kv.Version)
			}
			st.full = true
			return
		}
		for _, e := range m.events {
			id := strings.TrimPrefix(e.Key, PeerPrefix)
			if e.Type == cluster.EventDelete {
				if pe := st.peers[id]; pe != nil {
					delete(st.byUser[pe.peer.UserID], id)
				}
				delete(st.peers, id)
				continue
			}
			if p := st.putPeer(e.Value, e.Revision); p != nil {
				st.dirtyPeers[p.ID] = true
			}
		}
	}
}

func (st *entState) putProfile(key string, value []byte, version uint64) {
	p, err := decodeProfile(cluster.KV{Key: key, Value: value, Version: version})
	if err != nil {
		return // refused wherever it is read
	}
	st.profiles[p.Name] = &p
}

func (st *entState) putPeer(value []byte, version uint64) *Peer {
	var p Peer
	if err := json.Unmarshal(value, &p); err != nil || p.ID == "" {
		return nil
	}
	st.peers[p.ID] = &peerEntry{peer: p, version: version}
	if st.byUser[p.UserID] == nil {
		st.byUser[p.UserID] = map[string]bool{}
	}
	st.byUser[p.UserID][p.ID] = true
	return &p
}

// enforce re-decides the dirty peers and revokes those that no longer
// qualify. Items stay dirty until their decision is carried out.
func (s *Store) enforce(ctx context.Context, st *entState) error {
	now := s.now()
	todo := map[string]bool{}
	if st.full {
		for id := range st.peers {
			todo[id] = true
		}
	} else {
		for uid := range st.dirtyUsers {
			for id := range st.byUser[uid] {
				todo[id] = true
			}
		}
		if len(st.dirtyProfiles) > 0 {
			for id, pe := range st.peers {
				if st.dirtyProfiles[pe.peer.Profile] {
					todo[id] = true
				}
			}
		}
		for id := range st.dirtyPeers {
			todo[id] = true
		}
	}
	st.clearDirty()
	var errs []error
	for id := range todo {
		pe := st.peers[id]
		if pe == nil || !pe.peer.Valid(now) {
			continue
		}
		if _, revoke := st.decide(s, &pe.peer); !revoke {
			continue
		}
		// The three watches are not ordered with each other: a peer
		// issued right after its user gained a group can arrive before
		// that change. So a revocation is decided again on fresh reads.
		reason, revoke, err := s.recheck(ctx, &pe.peer)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !revoke {
			continue
		}
		if _, err := s.revoke(ctx, pe.peer, pe.version, reason, EntitlementActor, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// decide applies Entitle to one live peer on the mirrored state.
func (st *entState) decide(s *Store, p *Peer) (reason string, revoke bool) {
	u, known := st.users[p.UserID]
	return s.decide(p, u, known, st.deleted[p.UserID], st.profiles[p.Profile])
}

// recheck decides for p again on linearizable reads of its user and
// profile.
func (s *Store) recheck(ctx context.Context, p *Peer) (reason string, revoke bool, err error) {
	u, known, err := s.users.Get(ctx, p.UserID)
	if err != nil {
		return "", false, err
	}
	var prof *Profile
	got, err := s.Get(ctx, p.Profile) // local, after the linearizable read
	switch {
	case err == nil:
		prof = &got
	case !errors.Is(err, ErrNotFound):
		return "", false, err
	}
	// A user record that is gone now was deleted (peers are issued only
	// to stored users, by Issue).
	reason, revoke = s.decide(p, u, known, !known, prof)
	return reason, revoke, nil
}

// decide applies Entitle to one live peer and, if it no longer
// qualifies, says why: the decision, the change that caused it and who
// made it. known reports whether the user has a record; deleted whether
// it was deleted.
func (s *Store) decide(p *Peer, u authn.User, known, deleted bool, prof *Profile) (reason string, revoke bool) {
	if !known {
		if deleted {
			return "no longer entitled: user deleted", true
		}
		return "", false // a peer of no stored user: nothing to decide on
	}
	ok, _, why := s.Entitle(u, prof)
	if ok {
		return "", false
	}
	reason = "no longer entitled: " + why
	userCause := u.Change != nil
	if admitted, _ := s.policy.Admit(u); admitted && prof != nil && (u.Change == nil || prof.Updated.After(u.Change.At)) {
		userCause = false
		reason += fmt.Sprintf("; profile %q edited (version %d) by %s", prof.Name, prof.Version, nonEmpty(prof.UpdatedBy, "unknown"))
	}
	if userCause {
		reason += "; " + u.Change.What + " by " + nonEmpty(u.Change.By, "unknown")
	}
	return reason, true
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
