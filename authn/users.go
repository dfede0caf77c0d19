package authn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// User is what ferry remembers about a person: the identity provider's
// latest word on them, and whether an administrator disabled them.
type User struct {
	// ID is the user key (see UserKey), or the bare subject for records
	// stored before keys named the issuer.
	ID            string   `json:"id"`
	Issuer        string   `json:"iss,omitempty"`
	Subject       string   `json:"sub,omitempty"`
	Email         string   `json:"email,omitempty"`
	EmailVerified bool     `json:"email_verified,omitempty"`
	Name          string   `json:"name,omitempty"`
	Groups        []string `json:"groups,omitempty"`
	// GroupsClaimMissing reports whether the last sign-in carried no
	// groups claim at all (see Identity.GroupsClaimMissing).
	GroupsClaimMissing bool      `json:"groups_claim_missing,omitempty"`
	Disabled           bool      `json:"disabled"`
	Created            time.Time `json:"created"`
	LastLogin          time.Time `json:"last_login"`
	// Change is the last change to what the record grants, if known.
	Change *Change `json:"change,omitempty"`
	// Suspended, when set, says why the identity provider's word took the
	// user's access away (see Users.Suspend); a sign-in lifts it.
	Suspended string `json:"suspended,omitempty"`
}

// Change says what last changed a user's access and who changed it; the
// entitlement watcher quotes it when it revokes.
type Change struct {
	// What happened, e.g. "groups changed at sign-in (removed: eng)".
	What string `json:"what"`
	// By is who made the change: an administrator's email or ID, or
	// "identity provider <issuer>".
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// Display returns how to name the user to people (never the opaque key).
func (u User) Display() string { return displayPerson(u.Name, u.Email) }

// Identity returns the user as an Identity (what the IdP last said).
func (u User) Identity() Identity {
	return Identity{UserID: u.ID, Issuer: u.Issuer, Subject: u.Subject, Email: u.Email,
		EmailVerified: u.EmailVerified, Name: u.Name, Groups: slices.Clone(u.Groups)}
}

func (r *userRecord) user() User {
	u := User{
		ID: r.ID, Issuer: r.Issuer, Subject: r.Subject, Email: r.Email, EmailVerified: r.EmailVerified,
		Name: r.Name, Groups: append([]string(nil), r.Groups...), GroupsClaimMissing: r.GroupsClaimMissing,
		Disabled: r.Disabled, Created: r.Created, LastLogin: r.LastLogin, Suspended: r.Suspended,
	}
	if r.Change != nil {
		c := *r.Change
		u.Change = &c
	}
	return u
}

// Users keeps user records, created or updated at each sign-in, under
// users/<id>. Other packages follow them through Watch (profiles revokes
// what a user no longer qualifies for). It is safe for concurrent use.
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

// Upsert creates or updates the user record of id, as the identity
// provider described them at a sign-in, and returns it; LastLogin moves
// only for users who are not disabled. Upsert does not refuse disabled
// users: check User.Disabled (Sessions.Create refuses them).
//
// An identity with Issuer and Subject is keyed by UserKey(Issuer,
// Subject), except that a record stored before keys named the issuer
// (ID = the bare subject, no issuer) is claimed by the first sign-in with
// that subject and keeps its ID, so its MFA enrollment, devices and
// sessions stay its own. The returned User.ID is the key to use from then
// on.
func (u *Users) Upsert(ctx context.Context, id Identity) (User, error) {
	return u.update(ctx, id, "sign-in", true, true)
}

// Refused updates an existing user record from an identity the sign-in
// policy refused (not in a required group, email domain not allowed), so
// that what the user held is re-decided on what the IdP says now. It
// creates no record for someone never admitted; ok is false then.
func (u *Users) Refused(ctx context.Context, id Identity) (user User, ok bool, err error) {
	user, err = u.update(ctx, id, "refused sign-in", false, false)
	if errors.Is(err, ErrUnknownUser) {
		return User{}, false, nil
	}
	return user, err == nil, err
}

// Provision creates or updates the user record of id without signing
// them in (LastLogin does not move): for identity provider pushes and
// revalidation. how says what brought the change ("revalidation", "SCIM
// replace", ...); the record's Change names it when groups change. A
// new record, or a change of email or groups, is recorded as a
// user.provision event with the resulting email and groups
// (ProvisionedFrom), as is Refused's.
func (u *Users) Provision(ctx context.Context, id Identity, how string) (User, error) {
	return u.update(ctx, id, how, false, true)
}

// resolveID returns the ID under which id is (or will be) stored, and a
// compare that fails if the decision's other input (a legacy record that
// could be claimed) changed since this read.
func (u *Users) resolveID(ctx context.Context, id Identity, c cluster.Consistency) (string, []cluster.Compare, error) {
	if id.Issuer == "" && id.Subject == "" {
		return id.UserID, nil, checkUserID(id.UserID)
	}
	if err := checkIssuerSubject(id.Issuer, id.Subject); err != nil {
		return "", nil, err
	}
	key := UserKey(id.Issuer, id.Subject)
	if _, _, ok, err := getRecord[userRecord](ctx, u.store, userKey(key), c); err != nil || ok {
		return key, nil, err
	}
	if checkUserID(id.Subject) != nil {
		return key, nil, nil
	}
	legacy, ver, ok, err := getRecord[userRecord](ctx, u.store, userKey(id.Subject), c)
	if err != nil {
		return "", nil, err
	}
	if ok && (legacy.Issuer == "" || (legacy.Issuer == id.Issuer && legacy.Subject == id.Subject)) {
		return id.Subject, nil, nil
	}
	return key, []cluster.Compare{cluster.IfVersion(userKey(id.Subject), ver)}, nil
}

func (u *Users) update(ctx context.Context, id Identity, how string, login, create bool) (User, error) {
	var r rounds // a local read first; the compare catches a stale one
	for range maxCASAttempts {
		uid, compares, err := u.resolveID(ctx, id, r.consistency())
		if err != nil {
			return User{}, fmt.Errorf("resolving user: %w", err)
		}
		key := userKey(uid)
		rec, ver, ok, err := getRecord[userRecord](ctx, u.store, key, r.consistency())
		if err != nil {
			return User{}, fmt.Errorf("reading user: %w", err)
		}
		if ok && rec.Issuer != "" && id.Issuer != "" && (rec.Issuer != id.Issuer || rec.Subject != id.Subject) {
			// Only a legacy record can be found under another key, and
			// resolveID checked it; anything else is a changed record.
			r.conflict()
			continue
		}
		now := utcNow(u.now)
		if !ok && !create {
			if !r.final() {
				continue
			}
			return User{}, ErrUnknownUser
		}
		if !ok {
			rec = userRecord{V: recordVersion, ID: uid, Created: now}
		}
		if id.Issuer != "" {
			rec.Issuer, rec.Subject = id.Issuer, id.Subject
		}
		// A change without a sign-in is recorded with what results (a
		// sign-in's own event carries the groups).
		provisioned := !login && (!ok || rec.Email != id.Email || !slices.Equal(rec.Groups, id.Groups))
		change := groupChange(rec.Groups, id.Groups, ok)
		if change != "" {
			by := "identity provider"
			if id.Issuer != "" {
				by += " " + id.Issuer
			}
			rec.Change = &Change{What: "groups changed at " + how + " (" + change + ")", By: by, At: now}
		}
		rec.Email, rec.EmailVerified, rec.Name = id.Email, id.EmailVerified, id.Name
		rec.Groups = append([]string(nil), id.Groups...)
		if login {
			rec.GroupsClaimMissing = id.GroupsClaimMissing
		}
		if login && !rec.Disabled {
			rec.LastLogin = now
		}
		if login && rec.Suspended != "" {
			// The provider has just vouched for the user again.
			rec.Suspended = ""
			rec.Change = &Change{What: "suspension lifted by a sign-in", By: "identity provider " + id.Issuer, At: now}
		}
		// The user.provision event commits with the change or not at all,
		// so a retried push never finds the change made but unrecorded.
		var events []audit.Event
		if provisioned {
			events = append(events, provisionEvent(&rec, how, change))
		}
		res, err := audit.Commit(ctx, u.store, u.rec, cluster.Txn{
			Compares: append(compares, cluster.IfVersion(key, ver)),
			Ops:      []cluster.Op{cluster.Put(key, encodeRecord(&rec))},
		}, events...)
		if err != nil {
			return User{}, fmt.Errorf("storing user: %w", err)
		}
		if !res.Succeeded {
			r.conflict()
			continue
		}
		return rec.user(), nil
	}
	return User{}, fmt.Errorf("updating user %q: %w", id.UserID, ErrContended)
}

// groupChange describes how groups changed from old to cur, or "" when
// they did not (or the record is new).
func groupChange(old, cur []string, existed bool) string {
	if !existed {
		return ""
	}
	var removed, added []string
	for _, g := range old {
		if !slices.Contains(cur, g) {
			removed = append(removed, g)
		}
	}
	for _, g := range cur {
		if !slices.Contains(old, g) {
			added = append(added, g)
		}
	}
	var parts []string
	if len(removed) > 0 {
		parts = append(parts, "removed: "+strings.Join(removed, ", "))
	}
	if len(added) > 0 {
		parts = append(parts, "added: "+strings.Join(added, ", "))
	}
	return strings.Join(parts, "; ")
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
		rec.Change = &Change{What: "enabled", By: actorName(actor), At: utcNow(u.now)}
		if disabled {
			rec.Change.What = "disabled"
		}
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
		e.Outcome = audit.Success
		e.Details = map[string]string{"sessions_ended": strconv.Itoa(ended)}
		// The change and its record commit together or not at all.
		res, err := audit.Commit(ctx, u.store, u.rec, cluster.Txn{Compares: compares, Ops: ops}, e)
		if err != nil {
			return fmt.Errorf("storing user: %w", err)
		}
		if res.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("changing user %q: %w", userID, ErrContended)
}

// actorName names an actor for people: email, else user ID, else "system".
func actorName(a audit.Actor) string {
	switch {
	case a.Email != "":
		return a.Email
	case a.UserID != "":
		return a.UserID
	}
	return "system"
}

// Suspend takes a user's access away on the identity provider's word
// (why: "identity provider refused the refresh token", ...), as by: the
// record says so, every session of the user ends in the same transaction,
// and the entitlement watcher revokes their devices. The user's next
// successful sign-in lifts it. It returns ErrUnknownUser for a user with
// no record. Identity provider events (SCIM, Shared Signals, back-channel
// logout) may use it as well as revalidation.
//
// events are the audit records of the suspension (the caller's account of
// why); they commit in the same transaction as the suspension, or, when
// it fails, not at all.
func (u *Users) Suspend(ctx context.Context, userID, why, by string, events ...audit.Event) error {
	_, err := u.suspend(ctx, userID, why, by, true, events)
	return err
}

// lift clears a suspension whose reason starts with prefix, committing
// events with it; lifted is false (and nothing is recorded) when there was
// no such suspension.
func (u *Users) lift(ctx context.Context, userID, prefix, by string, events ...audit.Event) (lifted bool, err error) {
	return u.suspend(ctx, userID, prefix, by, false, events)
}

func (u *Users) suspend(ctx context.Context, userID, why, by string, on bool, events []audit.Event) (bool, error) {
	if err := checkUserID(userID); err != nil {
		return false, err
	}
	key := userKey(userID)
	for range maxCASAttempts {
		rec, ver, ok, err := getRecord[userRecord](ctx, u.store, key, cluster.Linearizable)
		if err != nil {
			return false, fmt.Errorf("reading user: %w", err)
		}
		if !ok {
			return false, ErrUnknownUser
		}
		now := utcNow(u.now)
		compares := []cluster.Compare{cluster.IfVersion(key, ver)}
		var ops []cluster.Op
		if on {
			rec.Suspended = why
			rec.Change = &Change{What: "suspended: " + why, By: by, At: now}
			end, err := endUserSessions(ctx, u.store, userID)
			if err != nil {
				return false, err
			}
			compares, ops = append(compares, end.compares...), end.ops
		} else {
			if rec.Suspended == "" || !strings.HasPrefix(rec.Suspended, why) {
				return false, nil
			}
			rec.Suspended = ""
			rec.Change = &Change{What: "suspension lifted", By: by, At: now}
		}
		ops = append(ops, cluster.Put(key, encodeRecord(&rec)))
		res, err := audit.Commit(ctx, u.store, u.rec, cluster.Txn{Compares: compares, Ops: ops}, events...)
		if err != nil {
			return false, fmt.Errorf("storing user: %w", err)
		}
		if res.Succeeded {
			return true, nil
		}
	}
	return false, fmt.Errorf("suspending user %q: %w", userID, ErrContended)
}

// Count returns how many users are known, without decoding them (the
// console's overview).
func (u *Users) Count(ctx context.Context) (int, error) {
	kvs, _, err := u.store.List(ctx, prefixUsers, cluster.Linearizable)
	if err != nil {
		return 0, fmt.Errorf("counting users: %w", err)
	}
	return len(kvs), nil
}
