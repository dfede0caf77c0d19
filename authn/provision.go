package authn

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// ActionProvision marks the admin event of an identity provider pushing a
// user's attributes (SCIM).
const ActionProvision = "user.provision"

// Provisioned is what an identity provider pushed about a person outside a
// sign-in (SCIM provisioning): their attributes and whether the account is
// active. UserID is the key a sign-in of the same person produces.
type Provisioned struct {
	UserID string
	Email  string
	Name   string
	// Groups replaces the stored groups when not nil.
	Groups []string
	// Active false disables the user (ending every session; watchers of
	// users/ revoke the user's peers); true enables a user disabled before.
	Active bool
}

// Provision creates or updates p.UserID's record from the identity
// provider's push, as actor, and records admin user.provision. A change of
// the active state goes through SetDisabled, the one path for disabling, so
// it ends sessions and is recorded as user.disable or user.enable. A user
// created here has never signed in: LastLogin stays zero.
func (u *Users) Provision(ctx context.Context, p Provisioned, actor audit.Actor, src Source) (User, error) {
	if err := checkUserID(p.UserID); err != nil {
		return User{}, err
	}
	if len(p.Email) > maxClaimLen || len(p.Name) > maxClaimLen {
		return User{}, fmt.Errorf("%w: email or name longer than %d bytes", ErrInvalidInput, maxClaimLen)
	}
	if len(p.Groups) > maxGroups || len(strings.Join(p.Groups, "")) > maxGroupsLen {
		return User{}, fmt.Errorf("%w: groups: more than %d groups or %d bytes", ErrInvalidInput, maxGroups, maxGroupsLen)
	}
	key := userKey(p.UserID)
	var (
		rec     userRecord
		created bool
	)
	for attempt := 0; ; attempt++ {
		if attempt == maxCASAttempts {
			return User{}, fmt.Errorf("provisioning user %q: %w", p.UserID, ErrContended)
		}
		cur, ver, ok, err := getRecord[userRecord](ctx, u.store, key, cluster.Linearizable)
		if err != nil {
			return User{}, fmt.Errorf("reading user: %w", err)
		}
		rec, created = cur, !ok
		if created {
			// Created disabled when inactive, so no window where an
			// inactive account could sign in.
			rec = userRecord{V: recordVersion, ID: p.UserID, Created: utcNow(u.now), Disabled: !p.Active}
		}
		rec.Email, rec.Name = p.Email, p.Name
		if p.Groups != nil {
			rec.Groups = slices.Clone(p.Groups)
		}
		if ok && cur.Email == rec.Email && cur.Name == rec.Name && slices.Equal(cur.Groups, rec.Groups) {
			break // nothing to write
		}
		res, err := u.store.Txn(ctx, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(key, ver)},
			Ops:      []cluster.Op{cluster.Put(key, encodeRecord(&rec))},
		})
		if err != nil {
			return User{}, fmt.Errorf("storing user: %w", err)
		}
		if res.Succeeded {
			if err := recordEvent(ctx, u.rec, audit.Event{
				Type: audit.TypeAdmin, Action: ActionProvision, Actor: actor, Source: auditSource(src),
				Target: audit.Target{User: p.UserID}, Outcome: audit.Success,
				Details: map[string]string{"created": strconv.FormatBool(created), "groups": strconv.Itoa(len(rec.Groups))},
			}); err != nil {
				return User{}, err
			}
			break
		}
	}
	if rec.Disabled == !p.Active {
		return rec.user(), nil
	}
	if err := u.SetDisabled(ctx, p.UserID, !p.Active, actor, src); err != nil {
		return User{}, err
	}
	rec.Disabled = !p.Active
	return rec.user(), nil
}
