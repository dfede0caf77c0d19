package authn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// Revalidation defaults.
const (
	DefaultRevalidateInterval = 15 * time.Minute
	DefaultRevalidateGrace    = time.Hour
)

// ActionRevalidate marks the auth.login events of revalidation.
const ActionRevalidate = "login.revalidate"

// Reasons of the failed revalidation events (auth.login login.revalidate)
// that suspend the user: invalid_grant suspends until the next sign-in; an
// identity provider unreachable past the grace until a revalidation
// succeeds or the user signs in. report's entitlements --at replays them.
const (
	ReasonRevalidateRevoked    = "invalid_grant: access revoked"
	ReasonRevalidateFailClosed = "identity provider unreachable past the grace: access revoked (fail closed)"
)

// prefixRefresh holds one refreshRecord per user.
const prefixRefresh = "oidc/refresh/"

func refreshKey(userID string) string { return prefixRefresh + escapeID(userID) }

// Reasons a revalidation suspends a user; the prefix of the unreachable
// one lets a later success lift it.
const (
	suspendInvalidGrant = "identity provider refused the refresh token (invalid_grant)"
	suspendUnreachable  = "identity provider unreachable"
)

// refreshRecord is stored under oidc/refresh/<user>: the refresh token of
// the user's last sign-in, sealed under the master key with AD
// "oidc-refresh/"+userID, and the state of its revalidation.
type refreshRecord struct {
	V      int    `json:"v"`
	Sealed []byte `json:"token_sealed"`
	// Next is when the token is refreshed next; a node claims a round by
	// moving it forward (compare-and-swap) before asking the provider, so
	// two nodes never redeem the same token.
	Next   time.Time `json:"next"`
	LastOK time.Time `json:"last_ok,omitzero"`
	// FailingSince is when the provider first could not be asked, since
	// the last success.
	FailingSince time.Time `json:"failing_since,omitzero"`
}

func (r *refreshRecord) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if len(r.Sealed) == 0 {
		return errors.New("token_sealed: empty")
	}
	return nil
}

// RevalidatorConfig configures a Revalidator.
type RevalidatorConfig struct {
	// OIDC is the relying party's configuration (as the Flow's). Its
	// scopes should ask for refresh tokens where the provider needs it
	// (offline_access). Required.
	OIDC OIDCConfig
	// Store, Users and Recorder as for the Flow. Required.
	Store    *cluster.Node
	Users    *Users
	Recorder audit.Recorder
	// Key seals refresh tokens at rest (the master key). Required.
	Key seal.Key
	// Interval between refreshes of one user's token; default 15 min.
	Interval time.Duration
	// Grace is how long access stays while the provider cannot be asked;
	// then the user is suspended (fail closed). Default 1 h.
	Grace time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default discards.
	Logger *slog.Logger
}

// Validate reports the first missing or bad field.
func (c *RevalidatorConfig) Validate() error {
	switch {
	case c.Store == nil || c.Users == nil || c.Recorder == nil:
		return errors.New("authn: revalidator: store, users and recorder are required")
	case c.Key.IsZero():
		return errors.New("authn: revalidator: key is required")
	case c.Interval < 0 || c.Grace < 0:
		return errors.New("authn: revalidator: interval and grace must not be negative")
	case c.Interval > 0 && c.Interval < time.Second:
		return errors.New("authn: revalidator: interval: at least 1s")
	}
	return c.OIDC.Validate()
}

// Revalidator keeps each sign-in's refresh token and redeems it every
// Interval, so that what the identity provider says now reaches ferry
// without a new sign-in: new groups go through the user record (and so
// the entitlement watcher and every session); an invalid_grant suspends
// the user (sessions end, devices are revoked); an unreachable provider
// is tolerated for Grace, then the user is suspended too. Every outcome
// is an auth.login event with action login.revalidate.
//
// Run it on every node: only the leader works, and each round is claimed
// with a compare-and-swap, so no token is redeemed twice.
type Revalidator struct {
	rp       *relyingParty
	store    *cluster.Node
	users    *Users
	rec      audit.Recorder
	key      seal.Key
	interval time.Duration
	grace    time.Duration
	now      func() time.Time
	log      *slog.Logger
}

// NewRevalidator returns a Revalidator for cfg.
func NewRevalidator(cfg RevalidatorConfig) (*Revalidator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rp, err := newRelyingParty(cfg.OIDC)
	if err != nil {
		return nil, err
	}
	r := &Revalidator{rp: rp, store: cfg.Store, users: cfg.Users, rec: cfg.Recorder, key: cfg.Key,
		interval: cfg.Interval, grace: cfg.Grace, now: cfg.Now, log: cfg.Logger}
	if r.interval == 0 {
		r.interval = DefaultRevalidateInterval
	}
	if r.grace == 0 {
		r.grace = DefaultRevalidateGrace
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return r, nil
}

// Interval returns the revalidation interval.
func (r *Revalidator) Interval() time.Duration { return r.interval }

// Keep stores userID's refresh token from a sign-in, sealed, due for
// revalidation after Interval. An empty token (the provider granted none)
// removes an older one.
func (r *Revalidator) Keep(ctx context.Context, userID, refreshToken string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if refreshToken == "" {
		_, err := r.store.Txn(ctx, cluster.Txn{Ops: []cluster.Op{cluster.Delete(refreshKey(userID))}})
		return err
	}
	sealed, err := seal.Seal(r.key, []byte(refreshToken), []byte("oidc-refresh/"+userID))
	if err != nil {
		return fmt.Errorf("sealing refresh token: %w", err)
	}
	now := utcNow(r.now)
	rec := refreshRecord{V: recordVersion, Sealed: sealed, Next: now.Add(r.interval), LastOK: now}
	if _, err := r.store.Txn(ctx, cluster.Txn{Ops: []cluster.Op{cluster.Put(refreshKey(userID), encodeRecord(&rec))}}); err != nil {
		return fmt.Errorf("storing refresh token: %w", err)
	}
	return nil
}

// RevalidateReport counts the outcomes of one round.
type RevalidateReport struct {
	OK, Refused, Unreachable, Suspended int
}

// RunOnce revalidates every user whose token is due, on this node
// whether it leads or not (Run calls it on the leader only).
func (r *Revalidator) RunOnce(ctx context.Context) (RevalidateReport, error) {
	var rep RevalidateReport
	kvs, _, err := r.store.List(ctx, prefixRefresh, cluster.Linearizable)
	if err != nil {
		return rep, fmt.Errorf("listing refresh tokens: %w", err)
	}
	now := utcNow(r.now)
	var errs []error
	for _, kv := range kvs {
		rec, err := decodeRecord[refreshRecord](kv.Key, kv.Value)
		if err != nil {
			r.log.Warn("skipping malformed refresh token record", "err", err)
			continue
		}
		if now.Before(rec.Next) {
			continue
		}
		userID, err := unescapeKey(kv.Key, prefixRefresh)
		if err != nil {
			continue
		}
		if err := r.revalidate(ctx, userID, kv, rec, now, &rep); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

// revalidate claims one user's round and carries it out.
func (r *Revalidator) revalidate(ctx context.Context, userID string, kv cluster.KV, rec refreshRecord, now time.Time, rep *RevalidateReport) error {
	// Claim the round: whoever moves Next first redeems the token.
	claim := rec
	claim.Next = now.Add(r.retryAfter())
	res, err := r.store.Txn(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfVersion(kv.Key, kv.Version)},
		Ops:      []cluster.Op{cluster.Put(kv.Key, encodeRecord(&claim))},
	})
	if err != nil || !res.Succeeded {
		return err
	}
	ver := res.Revision
	user, ok, err := r.users.Get(ctx, userID)
	if err != nil {
		return err
	}
	if !ok {
		_, err := r.store.Txn(ctx, cluster.Txn{Ops: []cluster.Op{cluster.Delete(kv.Key)}})
		return err
	}
	tok, err := seal.Open(r.key, rec.Sealed, []byte("oidc-refresh/"+userID))
	if err != nil {
		return fmt.Errorf("opening refresh token of %s: %w", userID, err)
	}
	id, claims, kept, err := r.rp.refresh(ctx, string(tok))
	if err == nil && (user.Issuer != "" && (id.Issuer != user.Issuer || id.Subject != user.Subject)) {
		err = fmt.Errorf("refreshed token names another subject")
	}
	switch {
	case errors.Is(err, errInvalidGrant):
		rep.Refused++
		if _, derr := r.store.Txn(ctx, cluster.Txn{Ops: []cluster.Op{cluster.Delete(kv.Key)}}); derr != nil {
			return derr
		}
		rep.Suspended++
		return r.suspend(ctx, userID, suspendInvalidGrant, "identity provider "+r.rp.cfg.Issuer,
			r.eventOf(user, audit.Failure, ReasonRevalidateRevoked, nil))
	case err != nil:
		rep.Unreachable++
		if rec.FailingSince.IsZero() {
			rec.FailingSince = now
		}
		rec.Next = claim.Next
		if _, werr := r.store.Txn(ctx, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(kv.Key, ver)},
			Ops:      []cluster.Op{cluster.Put(kv.Key, encodeRecord(&rec))},
		}); werr != nil {
			return werr
		}
		if now.Sub(rec.FailingSince) < r.grace {
			return r.event(ctx, user, audit.Failure, "identity provider unreachable: access kept within the grace", map[string]string{
				"failing_since": rec.FailingSince.Format(time.RFC3339), "grace": r.grace.String(), "error": truncate(err.Error(), 200)})
		}
		if user.Suspended != "" {
			return nil
		}
		why := fmt.Sprintf("%s since %s (grace %s)", suspendUnreachable, rec.FailingSince.Format(time.RFC3339), r.grace)
		rep.Suspended++
		return r.suspend(ctx, userID, why, "ferry revalidation", r.eventOf(user, audit.Failure, ReasonRevalidateFailClosed, nil))
	}
	rep.OK++
	id.UserID = userID
	if aerr := r.rp.admit(id, claims); aerr != nil {
		_, _, uerr := r.users.Refused(ctx, id)
		if uerr != nil {
			return uerr
		}
	} else if _, perr := r.users.Provision(ctx, id, "revalidation"); perr != nil {
		return perr
	}
	// A lifted suspension commits with the round's record; otherwise the
	// record follows the refresh token's update.
	details := map[string]string{}
	putGroups(details, id.Groups)
	done := r.eventOf(user, audit.Success, "", details)
	lifted, err := r.users.lift(ctx, userID, suspendUnreachable, "identity provider "+r.rp.cfg.Issuer, done)
	if err != nil {
		return err
	}
	sealed, err := seal.Seal(r.key, []byte(kept), []byte("oidc-refresh/"+userID))
	if err != nil {
		return err
	}
	next := refreshRecord{V: recordVersion, Sealed: sealed, Next: now.Add(r.interval), LastOK: now}
	if _, err := r.store.Txn(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfVersion(kv.Key, ver)},
		Ops:      []cluster.Op{cluster.Put(kv.Key, encodeRecord(&next))},
	}); err != nil {
		return err
	}
	if lifted {
		return nil
	}
	return recordEvent(ctx, r.rec, done)
}

// suspend suspends userID with e, the round's record, in the same
// transaction. If the suspension fails, e is recorded on its own: the
// revalidation's outcome is evidence even when the change is not made
// (after an unknown outcome it may then be stored twice, never not at all).
func (r *Revalidator) suspend(ctx context.Context, userID, why, by string, e audit.Event) error {
	if err := r.users.Suspend(ctx, userID, why, by, e); err != nil {
		return errors.Join(err, recordEvent(ctx, r.rec, e))
	}
	return nil
}

// retryAfter is how soon a round is tried again if this one fails: the
// interval, but often enough to notice the end of the grace.
func (r *Revalidator) retryAfter() time.Duration {
	return max(min(r.interval, r.grace/4), time.Second)
}

func (r *Revalidator) event(ctx context.Context, u User, outcome audit.Outcome, reason string, details map[string]string) error {
	return recordEvent(ctx, r.rec, r.eventOf(u, outcome, reason, details))
}

// eventOf returns the login.revalidate event of a round for u.
func (r *Revalidator) eventOf(u User, outcome audit.Outcome, reason string, details map[string]string) audit.Event {
	return audit.Event{
		Type: audit.TypeLogin, Action: ActionRevalidate, Actor: audit.Actor{UserID: u.ID, Email: u.Email},
		Target: audit.Target{User: u.ID}, Outcome: outcome, Reason: reason, Details: details,
	}
}

// Run revalidates due tokens every tick while this node leads, until ctx
// ends.
func (r *Revalidator) Run(ctx context.Context) {
	tick := max(min(r.interval/10, 30*time.Second), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !r.store.IsLeader() {
			continue
		}
		if rep, err := r.RunOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("revalidation round failed", "err", err)
		} else if rep != (RevalidateReport{}) {
			r.log.Info("revalidation round", "ok", rep.OK, "refused", rep.Refused, "unreachable", rep.Unreachable, "suspended", rep.Suspended)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// unescapeKey returns the user ID of a key under prefix.
func unescapeKey(key, prefix string) (string, error) {
	return pathUnescape(strings.TrimPrefix(key, prefix))
}
