package report

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// Entitlement history. Who could reach what at a past time follows from
// the journal's events about profiles and users: profile.change events
// (a profile's rules, groups and users as of each version:
// profiles.ProfileFromChange), sign-ins (auth.login and auth.mfa
// successes: the groups the identity provider gave the user then),
// revalidations (the groups a refreshed token gave), user.provision events
// (a user record created or regrouped without a sign-in — SCIM pushes,
// revalidation, a sign-in the policy refused — with the resulting email
// and groups: authn.ProvisionedFrom), user.disable/user.enable (an
// administrator, SCIM deactivation or deletion, a Shared Signals event)
// and the revalidations that suspended a user (lifted by a sign-in, or
// for an unreachable provider by a revalidation that succeeded).
// The rollup keeps those events, in journal order, in its history bucket,
// so that the question needs no scan of the journal's flow records; like
// the rest of the rollup it is derived from the journal and rebuilt with
// it.
//
// A user the journal shows to exist without saying their groups (a SCIM
// event recorded before user.provision events, a user.provision event
// whose groups were too many to record, a disable of a user never seen
// otherwise) is unknown until an event says their groups.

var (
	bucketHistory = []byte("history")
	// metaFormat is the rollup's format; a file without it (written
	// before the history bucket) or of an older format is rebuilt.
	metaFormat = []byte("format")
)

// rollupFormat is the current format of the rollup file.
// Format 3 added the granting host to the bucket keys; format 4 the
// user.provision, revalidation and user-existence history entries; format
// 5 revalidation suspensions; format 6 whether emails were verified;
// format 7 the stubs of pruned flow records met (bucketPruned) and flow
// summaries; format 8 the daytotal bucket (daytotals.go), format 9 its
// rows by email.
const rollupFormat = "9"

// histEntry is one history event.
type histEntry struct {
	Kind     string            `json:"k"` // "profile", "profile.delete", "user", "user.unknown", "user.exists", "disable", "enable", "suspend"
	Time     int64             `json:"t"` // Unix nanoseconds
	Profile  *profiles.Profile `json:"p,omitempty"`
	Name     string            `json:"n,omitempty"` // profile name (profile, profile.delete)
	User     string            `json:"u,omitempty"`
	Email    string            `json:"e,omitempty"`
	Groups   []string          `json:"g,omitempty"`
	NoDetail bool              `json:"x,omitempty"` // a profile.put recorded without its rules
	// Lift, on a "user" entry, is the suspension it lifts: "all" (a
	// sign-in), "unreachable" (a revalidation that succeeded).
	Lift string `json:"l,omitempty"`
	// Suspend, on a "suspend" entry, is why: "invalid_grant" or
	// "unreachable".
	Suspend string `json:"s,omitempty"`
	// Verified, on a "user" or "user.unknown" entry, is whether the
	// identity provider verified the email, when the event says it.
	Verified *bool `json:"v,omitempty"`
}

// historyOf returns the history entry of an event, if it is one.
func historyOf(ev *audit.Event) (histEntry, bool) {
	h := histEntry{Time: ev.Time.UnixNano()}
	switch {
	case ev.Type == audit.TypeProfileChange && ev.Action == "profile.put" && ev.Outcome == audit.Success:
		h.Kind, h.Name = "profile", ev.Target.Profile
		if p, ok := profiles.ProfileFromChange(ev); ok {
			h.Profile = &p
		} else {
			h.NoDetail = true
		}
	case ev.Type == audit.TypeProfileChange && ev.Action == "profile.delete" && ev.Outcome == audit.Success:
		h.Kind, h.Name = "profile.delete", ev.Target.Profile
	case ev.Type == audit.TypeLogin && ev.Action == authn.ActionRevalidate && ev.Outcome == audit.Failure:
		// A revalidation that suspended the user.
		switch {
		case ev.Target.User == "":
			return histEntry{}, false
		case ev.Reason == authn.ReasonRevalidateRevoked:
			h.Kind, h.User, h.Suspend = "suspend", ev.Target.User, "invalid_grant"
		case ev.Reason == authn.ReasonRevalidateFailClosed:
			h.Kind, h.User, h.Suspend = "suspend", ev.Target.User, "unreachable"
		default:
			return histEntry{}, false
		}
	case ev.Type == audit.TypeLogin && ev.Action == authn.ActionRevalidate:
		// A refreshed token's groups, in the details (its actor is the
		// record as it was before); it lifts an unreachable suspension.
		groups, known := authn.RevalidatedGroups(ev)
		if !known || ev.Target.User == "" {
			return histEntry{}, false
		}
		h.Kind, h.User, h.Email, h.Groups, h.Lift = "user", ev.Target.User, ev.Actor.Email, groups, "unreachable"
	case (ev.Type == audit.TypeLogin || ev.Type == audit.TypeMFA) && ev.Outcome == audit.Success && ev.Actor.UserID != "" &&
		(ev.Target.User == "" || ev.Target.User == ev.Actor.UserID):
		// A sign-in step: the actor is the user, as the identity provider
		// described them. (Logouts and lockout clears name another actor
		// or no groups, and say nothing of the user's groups.)
		h.Kind, h.User, h.Email, h.Groups, h.Lift = "user", ev.Actor.UserID, ev.Actor.Email, ev.Actor.Groups, "all"
	case ev.Type == audit.TypeAdmin && ev.Action == authn.ActionProvision:
		user, email, groups, known, ok := authn.ProvisionedFrom(ev)
		if !ok {
			return histEntry{}, false
		}
		h.Kind, h.User, h.Email, h.Groups = "user", user, email, groups
		if !known {
			h.Kind = "user.unknown"
		}
	case ev.Type == audit.TypeAdmin && strings.HasPrefix(ev.Action, "scim.user.") && ev.Outcome == audit.Success && ev.Target.User != "":
		// The user exists; their groups come from user.provision events
		// (recorded before this one), which older journals lack.
		h.Kind, h.User = "user.exists", ev.Target.User
	case (ev.Type == audit.TypeUserDisable || ev.Type == audit.TypeUserEnable) && ev.Outcome == audit.Success && ev.Target.User != "":
		h.Kind, h.User = "enable", ev.Target.User
		if ev.Type == audit.TypeUserDisable {
			h.Kind = "disable"
		}
	default:
		return histEntry{}, false
	}
	if v, err := strconv.ParseBool(ev.Details[authn.DetailEmailVerified]); err == nil && (h.Kind == "user" || h.Kind == "user.unknown") {
		h.Verified = &v
	}
	return h, true
}

// putHistory stores e's history entry, if it has one, under its sequence
// number.
func putHistory(tx *bolt.Tx, e *audit.Entry) error {
	if e.Event == nil {
		return nil
	}
	h, ok := historyOf(e.Event)
	if !ok {
		return nil
	}
	v, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketHistory).Put(binary.BigEndian.AppendUint64(nil, e.Seq), v)
}

// histUser is a user as the history says at some time.
type histUser struct {
	authn.User
	known bool // the history says their groups
}

// setEmail takes h's email, verified as h says; an event that does not
// say leaves a verified email verified while it is unchanged.
func (u *histUser) setEmail(h histEntry) {
	switch {
	case h.Verified != nil:
		u.EmailVerified = *h.Verified
	case !strings.EqualFold(u.Email, h.Email):
		u.EmailVerified = false
	}
	u.Email = h.Email
}

// stateAt replays the history up to and including at: the profiles and
// users as they were then, the profiles whose rules the journal does not
// say, and the users it shows to exist (not disabled) without saying
// their groups.
func stateAt(tx *bolt.Tx, at time.Time) (users []authn.User, all []profiles.Profile, unknown, unknownUsers []string) {
	profs := map[string]*profiles.Profile{}
	blind := map[string]bool{}
	byID := map[string]*histUser{}
	user := func(id string) *histUser {
		u := byID[id]
		if u == nil {
			u = &histUser{User: authn.User{ID: id}}
			byID[id] = u
		}
		return u
	}
	limit := at.UnixNano()
	c := tx.Bucket(bucketHistory).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var h histEntry
		if json.Unmarshal(v, &h) != nil || h.Time > limit {
			continue
		}
		switch h.Kind {
		case "profile":
			delete(blind, h.Name)
			if h.Profile == nil {
				delete(profs, h.Name)
				blind[h.Name] = true
				continue
			}
			profs[h.Name] = h.Profile
		case "profile.delete":
			delete(profs, h.Name)
			delete(blind, h.Name)
		case "user":
			u := user(h.User)
			u.setEmail(h)
			u.Groups, u.known = slices.Clone(h.Groups), true
			if h.Lift == "all" || h.Lift == u.Suspended {
				u.Suspended = ""
			}
		case "suspend":
			user(h.User).Suspended = h.Suspend
		case "user.unknown":
			u := user(h.User)
			u.setEmail(h)
			u.Groups, u.known = nil, false
		case "user.exists":
			user(h.User)
		case "disable", "enable":
			user(h.User).Disabled = h.Kind == "disable"
		}
	}
	for _, u := range byID {
		switch {
		case u.known:
			users = append(users, u.User)
		case !u.Disabled && u.Suspended == "":
			unknownUsers = append(unknownUsers, u.ID)
		}
	}
	slices.SortFunc(users, func(a, b authn.User) int { return strings.Compare(a.ID, b.ID) })
	slices.Sort(unknownUsers)
	for _, p := range profs {
		all = append(all, *p)
	}
	slices.SortFunc(all, func(a, b profiles.Profile) int { return strings.Compare(a.Name, b.Name) })
	for n := range blind {
		unknown = append(unknown, n)
	}
	slices.Sort(unknown)
	return users, all, unknown, unknownUsers
}

// EntitlementsAt is Entitlements as of a past time: the users (as the
// last event before at that said their groups described them — a
// sign-in, a revalidation, an identity provider's push — and whether they
// were disabled) and the profiles (their rules, groups and users at the
// version in force at at) come from the journal's history, not the
// current state; entitle decides as it does now. Usage is counted between
// since and until as in Entitlements. Profiles whose rules the journal
// does not say at that time (changed before profile events carried them)
// are listed in Unknown; users it shows to exist without saying their
// groups, and users of current (the user records now) created by at whom
// the journal does not show by then (their events trimmed, or written
// before events carried groups), in UnknownUsers.
func (r *Rollup) EntitlementsAt(ctx context.Context, at time.Time, current []authn.User, entitle Entitlement, since, until time.Time, unused bool) (EntitlementsReport, error) {
	var users []authn.User
	var all []profiles.Profile
	var unknown, unknownUsers []string
	err := r.db.View(func(tx *bolt.Tx) error {
		users, all, unknown, unknownUsers = stateAt(tx, at)
		return nil
	})
	if err != nil {
		return EntitlementsReport{}, err
	}
	seen := make(map[string]bool, len(users)+len(unknownUsers))
	for _, u := range users {
		seen[u.ID] = true
	}
	for _, id := range unknownUsers {
		seen[id] = true
	}
	for _, u := range current {
		if !seen[u.ID] && !u.Created.IsZero() && !u.Created.After(at) {
			unknownUsers = append(unknownUsers, u.ID)
		}
	}
	slices.Sort(unknownUsers)
	rep, err := r.Entitlements(ctx, users, all, entitle, since, until, unused)
	rep.At, rep.Unknown, rep.UnknownUsers = at.UTC(), unknown, unknownUsers
	if rep.Unknown == nil {
		rep.Unknown = []string{}
	}
	if rep.UnknownUsers == nil {
		rep.UnknownUsers = []string{}
	}
	return rep, err
}
