package profiles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
)

// Config configures a Store.
type Config struct {
	// Cluster is the replicated store. Required.
	Cluster *cluster.Node
	// Pool is the client address pool, e.g. 100.64.0.0/16. Its first
	// address is the server's tunnel address. Required.
	Pool netip.Prefix
	// Pool6, when set, makes the pool dual-stack: every client is also
	// given the IPv6 address Address6(Pool6, its IPv4 address), and the
	// server's IPv6 tunnel address is that of the server's IPv4 address.
	// An IPv6 prefix of /64 to /96, e.g. fd66:6572:7279::/96.
	Pool6 netip.Prefix
	// Recorder receives peer and profile audit events. Required.
	Recorder audit.Recorder
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Retention is how long expired and revoked peer records stay for
	// listings before the janitor removes them; default 24h.
	Retention time.Duration
	// AssignByVerifiedEmail lets a profile's users list assign it by
	// email address, to identities whose IdP says email_verified. Off by
	// default: profiles are assigned by user ID or group.
	AssignByVerifiedEmail bool
	// Policy is authn's admission and role policy (Sessions.Policy), the
	// part of the entitlement decision authn owns.
	Policy authn.Policy
	// Users, when set, is where Issue reads the user's current groups
	// (rather than those their session was created with) and what the
	// entitlement watcher (RunEntitlements) follows.
	Users *authn.Users
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Cluster == nil:
		return errors.New("profiles config: cluster: required")
	case !c.Pool.IsValid() || !c.Pool.Addr().Is4():
		return errors.New("profiles config: pool: an IPv4 prefix is required")
	case c.Pool.Bits() > 30:
		return fmt.Errorf("profiles config: pool: %s is too small (want /30 or larger)", c.Pool)
	case c.Recorder == nil:
		return errors.New("profiles config: recorder: required")
	}
	if c.Pool6.IsValid() {
		if err := ValidPool6(c.Pool6); err != nil {
			return fmt.Errorf("profiles config: pool6: %w", err)
		}
	}
	return nil
}

// Store manages profiles and peers in the cluster. It is safe for
// concurrent use.
type Store struct {
	c     *cluster.Node
	pool  netip.Prefix
	pool6 netip.Prefix // zero: IPv4 only
	rec   audit.Recorder
	now   func() time.Time
	log   *slog.Logger
	keep  time.Duration
	// byEmail is Config.AssignByVerifiedEmail.
	byEmail bool
	policy  authn.Policy
	users   *authn.Users
}

// New returns a Store.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{c: cfg.Cluster, pool: cfg.Pool.Masked(), rec: cfg.Recorder, now: cfg.Now, log: cfg.Logger, keep: cfg.Retention,
		byEmail: cfg.AssignByVerifiedEmail, policy: cfg.Policy, users: cfg.Users}
	if cfg.Pool6.IsValid() {
		s.pool6 = cfg.Pool6.Masked()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.keep == 0 {
		s.keep = 24 * time.Hour
	}
	return s, nil
}

// Pool returns the client address pool.
func (s *Store) Pool() netip.Prefix { return s.pool }

// ServerAddr returns the server's tunnel address: the pool's first host.
func (s *Store) ServerAddr() netip.Addr { return s.pool.Addr().Next() }

// Pool6 returns the IPv6 client pool; the zero Prefix when IPv4 only.
func (s *Store) Pool6() netip.Prefix { return s.pool6 }

// ServerAddr6 returns the server's IPv6 tunnel address, the zero Addr when
// the pool is IPv4 only.
func (s *Store) ServerAddr6() netip.Addr { return Address6(s.pool6, s.ServerAddr()) }

// Get returns a profile.
func (s *Store) Get(ctx context.Context, name string) (Profile, error) {
	kv, ok, err := s.c.Get(ctx, profileKey(name), cluster.Local)
	if err != nil {
		return Profile{}, err
	}
	if !ok {
		return Profile{}, fmt.Errorf("%w: profile %q", ErrNotFound, name)
	}
	return decodeProfile(kv)
}

// List returns every profile, by name.
func (s *Store) List(ctx context.Context) ([]Profile, error) {
	kvs, _, err := s.c.List(ctx, ProfilePrefix, cluster.Local)
	if err != nil {
		return nil, err
	}
	out := make([]Profile, 0, len(kvs))
	for _, kv := range kvs {
		p, err := decodeProfile(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func decodeProfile(kv cluster.KV) (Profile, error) {
	var p Profile
	if err := json.Unmarshal(kv.Value, &p); err != nil {
		return Profile{}, fmt.Errorf("decoding stored profile %s: %w", kv.Key, err)
	}
	p.Version = kv.Version
	return p, nil
}

// Allowed returns the profiles assigned to a person, by name.
func (s *Store) Allowed(ctx context.Context, id authn.Identity) ([]Profile, error) {
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(p Profile) bool { _, ok := p.AssignedTo(id, s.byEmail); return !ok }), nil
}

// Assigned reports whether p is assigned to id under this store's
// policy (see Profile.AssignedTo).
func (s *Store) Assigned(p *Profile, id authn.Identity) bool {
	_, ok := p.AssignedTo(id, s.byEmail)
	return ok
}

// Put creates or replaces a profile. With ifVersion set (non-nil) it
// succeeds only if the stored profile is at that version (0: absent),
// so concurrent edits cannot overwrite each other. It returns the stored
// profile with its new version.
func (s *Store) Put(ctx context.Context, p Profile, ifVersion *uint64, actor audit.Actor) (Profile, error) {
	p.Normalize()
	if err := p.Validate(s.pool, s.pool6); err != nil {
		return Profile{}, err
	}
	p.Version = 0
	p.Updated = s.now().UTC()
	p.UpdatedBy = actorName(actor)
	data, err := json.Marshal(p)
	if err != nil {
		return Profile{}, err
	}
	txn := cluster.Txn{Ops: []cluster.Op{cluster.Put(profileKey(p.Name), data)}}
	if ifVersion != nil {
		txn.Compares = []cluster.Compare{cluster.IfVersion(profileKey(p.Name), *ifVersion)}
	}
	// The change and its record commit in one transaction, or neither
	// does; the record names the version the transaction gives the
	// profile.
	e := audit.Event{Type: audit.TypeProfileChange, Action: "profile.put", Actor: actor,
		Target: audit.Target{Profile: p.Name}, Outcome: audit.Success, PolicyVersion: audit.TxnRevision, Details: map[string]string{}}
	addSpecDetails(e.Details, &p)
	r, err := audit.Commit(ctx, s.c, s.rec, txn, e)
	if err != nil {
		return Profile{}, err
	}
	if !r.Succeeded {
		return Profile{}, fmt.Errorf("%w: profile %q changed since version %d", ErrConflict, p.Name, *ifVersion)
	}
	p.Version = r.Revision
	return p, nil
}

// Delete removes a profile and revokes every peer issued under it.
func (s *Store) Delete(ctx context.Context, name string, actor audit.Actor) error {
	if _, err := s.Get(ctx, name); err != nil {
		return err
	}
	if _, err := s.RevokeWhere(ctx, func(p *Peer) bool { return p.Profile == name }, "profile deleted", actor); err != nil {
		return err
	}
	_, err := audit.Commit(ctx, s.c, s.rec, cluster.Txn{Ops: []cluster.Op{cluster.Delete(profileKey(name))}},
		audit.Event{Type: audit.TypeProfileChange, Action: "profile.delete", Actor: actor,
			Target: audit.Target{Profile: name}, Outcome: audit.Success, PolicyVersion: audit.TxnRevision})
	return err
}

// recordTimeout bounds the wait for an audit record of a change already
// made: long enough to ride out a leader election.
const recordTimeout = 30 * time.Second

// record writes an audit event; a failure is logged, since the change it
// describes has already been made. The change is made whether or not the
// caller is still there (a client that hung up), so its record is written
// regardless too, within recordTimeout.
func (s *Store) record(ctx context.Context, e audit.Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := s.rec.Record(ctx, e); err != nil {
		s.log.Error("recording audit event failed", "type", string(e.Type), "err", err)
	}
}
