package authn

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// User is what ferry remembers about a person: the identity provider's
// latest word on them, and whether an administrator disabled them.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email,omitempty"`
	Name      string    `json:"name,omitempty"`
	Groups    []string  `json:"groups,omitempty"`
	Disabled  bool      `json:"disabled"`
	Created   time.Time `json:"created"`
	LastLogin time.Time `json:"last_login"`
}

func (r *userRecord) user() User {
	return User{
		ID: r.ID, Email: r.Email, Name: r.Name, Groups: append([]string(nil), r.Groups...),
		Disabled: r.Disabled, Created: r.Created, LastLogin: r.LastLogin,
	}
}

// Users keeps user records, created or updated at each sign-in, under
// users/<id>. Other packages watch that prefix (profiles revokes a disabled
// user's peers). It is safe for concurrent use.
type Users struct {
	store *cluster.Node
	now   func() time.Time
	rec   audit.Recorder
}

// NewUsers returns Users on store. now defaults to time.Now. rec receives
// user.disable and user.enable events; without it SetDisabled fails.
func NewUsers(store *cluster.Node, now func() time.Time, rec audit.Recorder) *Users {
	if now == nil {
		now = time.Now
	}
	if rec == nil {
		rec = noRecorder{}
	}
	return &Users{store: store, now: now, rec: rec}
}

// Upsert creates or updates id's user record from what the identity
// provider said and returns it. LastLogin moves only for users who are not
// disabled. Upsert does not refuse disabled users: check User.Disabled
// (Sessions.Create refuses them).
func (u *Users) Upsert(ctx context.Context, id Identity) (User, error) {
	if err := checkUserID(id.UserID); err != nil {
		return User{}, err
	}
	key := userKey(id.UserID)
	var r rounds // a local read first; the compare catches a stale one
	for range maxCASAttempts {
		rec, ver, ok, err := getRecord[userRecord](ctx, u.store, key, r.consistency())
		if err != nil {
			return User{}, fmt.Errorf("reading user: %w", err)
		}
		now := utcNow(u.now)
		if !ok {
			rec = userRecord{V: recordVersion, ID: id.UserID, Created: now}
		}
		rec.Email, rec.Name, rec.Groups = id.Email, id.Name, append([]string(nil), id.Groups...)
		if !rec.Disabled {
			rec.LastLogin = now
		}
		res, err := u.store.Txn(ctx, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(key, ver)},
			Ops:      []cluster.Op{cluster.Put(key, encodeRecord(&rec))},
		})
		if err != nil {
			return User{}, fmt.Errorf("storing user: %w", err)
		}
		if res.Succeeded {
			return rec.user(), nil
		}
		r.conflict()
	}
	return User{}, fmt.Errorf("updating user %q: %w", id.UserID, ErrContended)
}

// Get returns userID's record; ok is false if there is none.
func (u *Users) Get(ctx context.Context, userID string) (User, bool, error) {
	if err := checkUserID(userID); err != nil {
		return User{}, false, err
	}
	rec, _, ok, err := getRecord[userRecord](ctx, u.store, userKey(userID), cluster.Linearizable)
	if err != nil || !ok {
		return User{}, false, err
	}
	return rec.user(), true, nil
}

// List returns every user, ordered by ID.
func (u *Users) List(ctx context.Context) ([]User, error) {
	kvs, _, err := u.store.List(ctx, prefixUsers, cluster.Linearizable)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	out := make([]User, 0, len(kvs))
	for _, kv := range kvs {
		rec, err := decodeRecord[userRecord](kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, rec.user())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// SetDisabled disables or re-enables userID, as actor from src, and records
// user.disable or user.enable. Disabling ends every session of the user in
// the same transaction, so no node accepts them afterwards; sessions are
// not restored by enabling again. It returns ErrUnknownUser for a user who
// never signed in.
func (u *Users) SetDisabled(ctx context.Context, userID string, disabled bool, actor audit.Actor, src Source) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	e := audit.Event{Type: audit.TypeUserEnable, Actor: actor, Source: auditSource(src), Target: audit.Target{User: userID}}
	if disabled {
		e.Type = audit.TypeUserDisable
	}
	key := userKey(userID)
	for range maxCASAttempts {
		rec, ver, ok, err := getRecord[userRecord](ctx, u.store, key, cluster.Linearizable)
		if err != nil {
			return fmt.Errorf("reading user: %w", err)
		}
		if !ok {
			e.Outcome, e.Reason = audit.Failure, ReasonUnknownUser
			return failWith(ErrUnknownUser, recordEvent(ctx, u.rec, e))
		}
		rec.Disabled = disabled
		compares := []cluster.Compare{cluster.IfVersion(key, ver)}
		ops := []cluster.Op{cluster.Put(key, encodeRecord(&rec))}
		ended := 0
		if disabled {
			end, err := endUserSessions(ctx, u.store, userID)
			if err != nil {
				return err
			}
			compares = append(compares, end.compares...)
			ops = append(ops, end.ops...)
			ended = end.count
		}
		res, err := u.store.Txn(ctx, cluster.Txn{Compares: compares, Ops: ops})
		if err != nil {
			return fmt.Errorf("storing user: %w", err)
		}
		if !res.Succeeded {
			continue
		}
		e.Outcome = audit.Success
		e.Details = map[string]string{"sessions_ended": strconv.Itoa(ended)}
		return recordEvent(ctx, u.rec, e)
	}
	return fmt.Errorf("changing user %q: %w", userID, ErrContended)
}
