package authn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// Session defaults.
const (
	DefaultSessionLifetime = 12 * time.Hour
	DefaultIdleTimeout     = time.Hour
	// touchInterval is how stale LastSeen may get before Validate writes
	// it again: one write a minute per active session, not one per
	// request. Idle detection is therefore up to a minute early.
	touchInterval = time.Minute
	tokenBytes    = 32 // 256 bits
	sessionIDLen  = 16 // bytes of the public session ID
)

// Audit actions of Sessions.
const (
	// ActionLoginSession marks the auth.login event of a session's
	// creation, the last step of a sign-in.
	ActionLoginSession = "login.session"
	// ActionRevoke marks an administrator ending sessions (type admin).
	ActionRevoke = "session.revoke"
)

// tokenLen is the length of a token's text: base64url of tokenBytes.
var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

// SessionConfig configures Sessions.
type SessionConfig struct {
	// Store holds sessions. Required.
	Store *cluster.Node
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Recorder receives auth.login and revocation events. Required.
	Recorder audit.Recorder
	// Logger; default discards.
	Logger *slog.Logger
	// Lifetime is a session's absolute lifetime from sign-in; 0 means
	// DefaultSessionLifetime (12h).
	Lifetime time.Duration
	// IdleTimeout ends a session not used for this long; 0 means
	// DefaultIdleTimeout (1h). There is no "never": set it at or above
	// Lifetime to make the lifetime the only limit. Use is recorded at most
	// once a minute, so a session may end up to a minute early.
	IdleTimeout time.Duration
	// AdminGroups: an identity in any of these identity provider groups
	// gets RoleAdmin, everyone else RoleUser. It is applied again on every
	// Validate to the user's current groups, so a demoted administrator's
	// live sessions lose the role at once.
	AdminGroups []string
	// RequiredGroups, when set, admits only users in at least one of these
	// groups (oidc.required_groups): a user who leaves them has every
	// session refused at once.
	RequiredGroups []string
}

// Validate checks the configuration, naming the first bad field.
func (c *SessionConfig) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("session config: store: required")
	case c.Recorder == nil:
		return errors.New("session config: recorder: required")
	case c.Lifetime < 0:
		return errors.New("session config: lifetime: must not be negative")
	case c.IdleTimeout < 0:
		return errors.New("session config: idle_timeout: must not be negative")
	}
	for i, g := range c.AdminGroups {
		if strings.TrimSpace(g) == "" {
			return fmt.Errorf("session config: admin_groups[%d]: empty", i)
		}
	}
	return nil
}

// Sessions creates, checks and revokes sign-in sessions. A session's token
// is 256 random bits given to its owner only; the store keeps its SHA-256.
// Validate reads linearizably, so a revocation or a user disable through
// any node holds on every node as soon as it returns. Sessions is safe for
// concurrent use.
type Sessions struct {
	store    *cluster.Node
	now      func() time.Time
	rec      audit.Recorder
	log      *slog.Logger
	lifetime time.Duration
	idle     time.Duration
	policy   Policy
}

// NewSessions returns Sessions for cfg.
func NewSessions(cfg SessionConfig) (*Sessions, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sessions{
		store: cfg.Store, now: cfg.Now, rec: cfg.Recorder, log: cfg.Logger,
		lifetime: cfg.Lifetime, idle: cfg.IdleTimeout,
		policy: Policy{AdminGroups: slices.Clone(cfg.AdminGroups), RequiredGroups: slices.Clone(cfg.RequiredGroups)},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.lifetime == 0 {
		s.lifetime = DefaultSessionLifetime
	}
	if s.idle == 0 {
		s.idle = DefaultIdleTimeout
	}
	return s, nil
}

func (s *Sessions) role(id Identity) string { return s.policy.Role(id.Groups) }

// Policy returns the admission and role policy sessions apply; the
// entitlement watcher in profiles applies the same one.
func (s *Sessions) Policy() Policy {
	return Policy{AdminGroups: slices.Clone(s.policy.AdminGroups), RequiredGroups: slices.Clone(s.policy.RequiredGroups)}
}

// Create starts a session for id, who proved a second factor with
// mfaMethod (MethodTOTP or MethodRecovery), and records auth.login. It
// returns ErrUserDisabled for a disabled user. The token goes to its owner
// only.
func (s *Sessions) Create(ctx context.Context, id Identity, mfaMethod string, src Source) (SessionToken, Session, error) {
	if err := checkUserID(id.UserID); err != nil {
		return "", Session{}, err
	}
	if mfaMethod != MethodTOTP && mfaMethod != MethodRecovery {
		return "", Session{}, fmt.Errorf("%w: mfa_method %q: want %q or %q", ErrInvalidInput, mfaMethod, MethodTOTP, MethodRecovery)
	}
	e := audit.Event{
		Type: audit.TypeLogin, Action: ActionLoginSession, Actor: identityActor(id), Source: auditSource(src),
		Target: audit.Target{User: id.UserID}, Details: map[string]string{"mfa_method": mfaMethod, DetailEmailVerified: strconv.FormatBool(id.EmailVerified)},
	}
	// The user is read locally first; the transaction compares its version,
	// so a disable this node has not applied yet makes it fail and retry
	// on a linearizable read (see rounds).
	var r rounds
	for range maxCASAttempts {
		user, userVer, _, err := getRecord[userRecord](ctx, s.store, userKey(id.UserID), r.consistency())
		if err != nil {
			return "", Session{}, fmt.Errorf("reading user: %w", err)
		}
		if user.Disabled {
			if !r.final() {
				continue
			}
			e.Outcome, e.Reason = audit.Failure, ReasonUserDisabled
			return "", Session{}, failWith(ErrUserDisabled, recordEvent(ctx, s.rec, e))
		}
		raw, err := randomString(tokenBytes)
		if err != nil {
			return "", Session{}, err
		}
		sid, err := randomString(sessionIDLen)
		if err != nil {
			return "", Session{}, err
		}
		tok := SessionToken(raw)
		now := utcNow(s.now)
		sess := Session{
			ID: sid, Identity: cloneIdentity(id), Role: s.role(id), AuthTime: now, MFAMethod: mfaMethod,
			Expires: now.Add(s.lifetime), LastSeen: now, SourceIP: src.Addr, UserAgent: src.UserAgent,
		}
		ref := sessionRef{V: recordVersion, Hash: tok.Hash(), UserID: id.UserID}
		// The session and its record commit together or not at all: a
		// sign-in that left no audit record must not stand.
		ev := e
		ev.Outcome, ev.Actor.Session, ev.Actor.Role = audit.Success, sid, sess.Role
		res, err := audit.Commit(ctx, s.store, s.rec, cluster.Txn{
			Compares: []cluster.Compare{
				// A disable committed since the read makes this retry (and refuse).
				cluster.IfVersion(userKey(id.UserID), userVer),
				cluster.IfAbsent(sessionKey(ref.Hash)),
				cluster.IfAbsent(sessionIDKey(sid)),
			},
			Ops: []cluster.Op{
				cluster.Put(sessionKey(ref.Hash), encodeRecord(&sessionRecord{V: recordVersion, Session: sess})),
				cluster.Put(sessionIDKey(sid), encodeRecord(&ref)),
				cluster.Put(userSessionKey(id.UserID, sid), encodeRecord(&ref)),
				cluster.Put(sessionGenKey(id.UserID), []byte(`{"v":1}`)),
			},
		}, ev)
		if err != nil && res.Succeeded {
			// Only a Recorder that is no audit.Journaler (a test double)
			// commits before it records: take the session back.
			if _, derr := s.store.Txn(ctx, cluster.Txn{Ops: deleteSessionOps(ref, sid)}); derr != nil {
				err = errors.Join(err, fmt.Errorf("removing unrecorded session: %w", derr))
			}
			return "", Session{}, err
		}
		if err != nil {
			return "", Session{}, fmt.Errorf("storing session: %w", err)
		}
		if !res.Succeeded {
			r.conflict()
			continue
		}
		return tok, sess, nil
	}
	return "", Session{}, fmt.Errorf("creating session for %q: %w", id.UserID, ErrContended)
}

func cloneIdentity(id Identity) Identity {
	id.Groups = slices.Clone(id.Groups)
	return id
}

// deleteSessionOps returns the ops removing a session and its indexes.
func deleteSessionOps(ref sessionRef, sid string) []cluster.Op {
	return []cluster.Op{
		cluster.Delete(sessionKey(ref.Hash)),
		cluster.Delete(sessionIDKey(sid)),
		cluster.Delete(userSessionKey(ref.UserID, sid)),
	}
}

// invalid says why a session is no longer valid at now, or "".
func (s *Sessions) invalid(sess *Session, now time.Time) string {
	switch {
	case !now.Before(sess.Expires):
		return "expired"
	case now.Sub(sess.LastSeen) >= s.idle:
		return "idle"
	}
	return ""
}

// Validate returns the session of tok if it is known, unexpired, not idle
// and its user still admitted (not disabled, in a required group);
// otherwise an error wrapping ErrSessionInvalid that says why. The read is
// linearizable. The returned session carries the user's current groups,
// email and name, and its role is re-decided on them: an administrator
// removed from the admin groups gets RoleUser on the very next request.
// Use is recorded in LastSeen at most once a minute.
func (s *Sessions) Validate(ctx context.Context, tok SessionToken) (Session, error) {
	if len(tok) != tokenLen { // no store access for junk
		return Session{}, fmt.Errorf("%w: malformed token", ErrSessionInvalid)
	}
	key := sessionKey(tok.Hash())
	rec, ver, ok, err := getRecord[sessionRecord](ctx, s.store, key, cluster.Linearizable)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return Session{}, fmt.Errorf("%w: %w", ErrSessionInvalid, err)
		}
		return Session{}, fmt.Errorf("reading session: %w", err)
	}
	if !ok {
		return Session{}, fmt.Errorf("%w: unknown or revoked", ErrSessionInvalid)
	}
	now := utcNow(s.now)
	if why := s.invalid(&rec.Session, now); why != "" {
		return Session{}, fmt.Errorf("%w: %s", ErrSessionInvalid, why)
	}
	// The linearizable read above brought this node up to date; a local
	// read now is at least as fresh.
	user, _, known, err := getRecord[userRecord](ctx, s.store, userKey(rec.Identity.UserID), cluster.Local)
	if err != nil {
		return Session{}, fmt.Errorf("%w: reading user: %w", ErrSessionInvalid, err)
	}
	if user.Disabled {
		return Session{}, fmt.Errorf("%w: user disabled", ErrSessionInvalid)
	}
	out := rec.Session
	if known {
		if ok, why := s.policy.Admit(user.user()); !ok {
			return Session{}, fmt.Errorf("%w: %s", ErrSessionInvalid, why)
		}
		out.Identity.Groups = slices.Clone(user.Groups)
		out.Identity.Email, out.Identity.EmailVerified, out.Identity.Name = user.Email, user.EmailVerified, user.Name
		out.Role = lowerRole(rec.Role, s.policy.Role(user.Groups))
	}
	if now.Sub(rec.LastSeen) >= touchInterval {
		rec.LastSeen = now
		_, err := s.store.Txn(ctx, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(key, ver)},
			Ops:      []cluster.Op{cluster.Put(key, encodeRecord(&rec))},
		})
		if err != nil {
			// The session was valid when read; only the idle clock lags.
			s.log.Warn("session touch failed", "session", rec.ID, "err", err)
		}
	}
	out.LastSeen = rec.LastSeen
	return out, nil
}

// Revoke ends the session with public ID sessionID, as actor, and records
// it: auth.logout when actor is the session's own user, otherwise admin
// with action session.revoke. It returns ErrUnknownSession if there is no
// such session.
func (s *Sessions) Revoke(ctx context.Context, sessionID string, actor audit.Actor) error {
	if sessionID == "" || len(sessionID) > 64 || strings.ContainsAny(sessionID, "/%") {
		return fmt.Errorf("%w: session ID: malformed", ErrInvalidInput)
	}
	key := sessionIDKey(sessionID)
	e := audit.Event{Type: audit.TypeAdmin, Action: ActionRevoke, Actor: actor, Details: map[string]string{"session": sessionID}}
	for range maxCASAttempts {
		ref, ver, ok, err := getRecord[sessionRef](ctx, s.store, key, cluster.Linearizable)
		if err != nil {
			return fmt.Errorf("reading session: %w", err)
		}
		if !ok {
			e.Outcome, e.Reason = audit.Failure, ReasonUnknownSession
			return failWith(ErrUnknownSession, recordEvent(ctx, s.rec, e))
		}
		ev := e
		if actor.UserID == ref.UserID {
			ev.Type, ev.Action = audit.TypeLogout, ""
		}
		ev.Target.User, ev.Outcome = ref.UserID, audit.Success
		// The revocation and its record commit together or not at all.
		res, err := audit.Commit(ctx, s.store, s.rec, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(key, ver)},
			Ops:      deleteSessionOps(ref, sessionID),
		}, ev)
		if err != nil {
			return fmt.Errorf("revoking session: %w", err)
		}
		if res.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("revoking session %s: %w", sessionID, ErrContended)
}

// sessionEnd holds what a transaction needs to end all of a user's
// sessions.
type sessionEnd struct {
	compares []cluster.Compare
	ops      []cluster.Op
	count    int
}

// endUserSessions reads userID's sessions and returns the compares and ops
// that end them all, guarded so that a session created meanwhile makes the
// transaction fail (and the caller retry).
func endUserSessions(ctx context.Context, n *cluster.Node, userID string) (sessionEnd, error) {
	// Read the generation before the index: a creation between the two
	// reads then shows up as a changed generation, never as a missed entry.
	gen, ok, err := n.Get(ctx, sessionGenKey(userID), cluster.Linearizable)
	if err != nil {
		return sessionEnd{}, fmt.Errorf("reading sessions: %w", err)
	}
	var genVer uint64
	if ok {
		genVer = gen.Version
	}
	prefix := userSessionsPrefix(userID)
	kvs, _, err := n.List(ctx, prefix, cluster.Local)
	if err != nil {
		return sessionEnd{}, fmt.Errorf("reading sessions: %w", err)
	}
	end := sessionEnd{compares: []cluster.Compare{cluster.IfVersion(sessionGenKey(userID), genVer)}}
	for _, kv := range kvs {
		ref, err := decodeRecord[sessionRef](kv.Key, kv.Value)
		if err != nil {
			return sessionEnd{}, err
		}
		end.ops = append(end.ops, deleteSessionOps(ref, strings.TrimPrefix(kv.Key, prefix))...)
		end.count++
	}
	return end, nil
}

// RevokeUser ends every session of userID, as actor, and records it (admin,
// session.revoke, with the count).
func (s *Sessions) RevokeUser(ctx context.Context, userID string, actor audit.Actor) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	for range maxCASAttempts {
		end, err := endUserSessions(ctx, s.store, userID)
		if err != nil {
			return err
		}
		// The revocation and its record commit together or not at all
		// (with no session to end, the record alone, while there is none).
		res, err := audit.Commit(ctx, s.store, s.rec, cluster.Txn{Compares: end.compares, Ops: end.ops}, audit.Event{
			Type: audit.TypeAdmin, Action: ActionRevoke, Actor: actor, Target: audit.Target{User: userID},
			Outcome: audit.Success, Details: map[string]string{"sessions_ended": strconv.Itoa(end.count)},
		})
		if err != nil {
			return fmt.Errorf("revoking sessions: %w", err)
		}
		if res.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("revoking sessions of %q: %w", userID, ErrContended)
}

// List returns the valid sessions of userID, or of everyone for "", oldest
// sign-in first.
func (s *Sessions) List(ctx context.Context, userID string) ([]Session, error) {
	var hashes []string
	if userID == "" {
		kvs, _, err := s.store.List(ctx, prefixSessions, cluster.Linearizable)
		if err != nil {
			return nil, fmt.Errorf("listing sessions: %w", err)
		}
		for _, kv := range kvs {
			hashes = append(hashes, strings.TrimPrefix(kv.Key, prefixSessions))
		}
	} else {
		if err := checkUserID(userID); err != nil {
			return nil, err
		}
		kvs, _, err := s.store.List(ctx, userSessionsPrefix(userID), cluster.Linearizable)
		if err != nil {
			return nil, fmt.Errorf("listing sessions: %w", err)
		}
		for _, kv := range kvs {
			ref, err := decodeRecord[sessionRef](kv.Key, kv.Value)
			if err != nil {
				return nil, err
			}
			hashes = append(hashes, ref.Hash)
		}
	}
	now := utcNow(s.now)
	out := []Session{}
	for _, h := range hashes {
		rec, _, ok, err := getRecord[sessionRecord](ctx, s.store, sessionKey(h), cluster.Local)
		if err != nil {
			return nil, err
		}
		if ok && s.invalid(&rec.Session, now) == "" {
			out = append(out, rec.Session)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].AuthTime.Equal(out[j].AuthTime) {
			return out[i].AuthTime.Before(out[j].AuthTime)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Sweep deletes sessions that have expired or gone idle and returns how
// many it deleted. They are refused either way; sweeping keeps the store
// small. Run it now and then on one node (the leader, say).
func (s *Sessions) Sweep(ctx context.Context) (int, error) {
	kvs, _, err := s.store.List(ctx, prefixSessions, cluster.Linearizable)
	if err != nil {
		return 0, fmt.Errorf("listing sessions: %w", err)
	}
	now := utcNow(s.now)
	n := 0
	for _, kv := range kvs {
		rec, err := decodeRecord[sessionRecord](kv.Key, kv.Value)
		if err != nil {
			s.log.Warn("skipping malformed session", "err", err)
			continue
		}
		if s.invalid(&rec.Session, now) == "" {
			continue
		}
		ref := sessionRef{V: recordVersion, Hash: strings.TrimPrefix(kv.Key, prefixSessions), UserID: rec.Identity.UserID}
		res, err := s.store.Txn(ctx, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(kv.Key, kv.Version)},
			Ops:      deleteSessionOps(ref, rec.ID),
		})
		if err != nil {
			return n, fmt.Errorf("deleting session: %w", err)
		}
		if res.Succeeded {
			n++
		}
	}
	return n, nil
}

// Count returns how many sessions are valid (what List(ctx, "") would
// return), reading each record's times only.
func (s *Sessions) Count(ctx context.Context) (int, error) {
	kvs, _, err := s.store.List(ctx, prefixSessions, cluster.Linearizable)
	if err != nil {
		return 0, fmt.Errorf("counting sessions: %w", err)
	}
	now := utcNow(s.now)
	n := 0
	for _, kv := range kvs {
		var times struct {
			Expires  time.Time `json:"expires"`
			LastSeen time.Time `json:"last_seen"`
		}
		if err := json.Unmarshal(kv.Value, &times); err != nil {
			return 0, fmt.Errorf("%w: %s: %s", ErrCorrupt, kv.Key, jsonErrText(err))
		}
		if s.invalid(&Session{Expires: times.Expires, LastSeen: times.LastSeen}, now) == "" {
			n++
		}
	}
	return n, nil
}
