package report

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"slices"
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
// profiles.ProfileFromChange), sign-ins (auth.* successes: the groups the
// identity provider gave the user then) and user.disable/user.enable. The
// rollup keeps those events, in journal order, in its history bucket, so
// that the question needs no scan of the journal's flow records; like the
// rest of the rollup it is derived from the journal and rebuilt with it.

var (
	bucketHistory = []byte("history")
	// metaFormat is the rollup's format; a file without it (written
	// before the history bucket) or of an older format is rebuilt.
	metaFormat = []byte("format")
)

// rollupFormat is the current format of the rollup file.
// Format 3 added the granting host to the bucket keys, format 4 the
// daytotal bucket (daytotals.go).
const rollupFormat = "4"

// histEntry is one history event.
type histEntry struct {
	Kind     string            `json:"k"` // "profile", "profile.delete", "user", "disable", "enable"
	Time     int64             `json:"t"` // Unix nanoseconds
	Profile  *profiles.Profile `json:"p,omitempty"`
	Name     string            `json:"n,omitempty"` // profile name (profile, profile.delete)
	User     string            `json:"u,omitempty"`
	Email    string            `json:"e,omitempty"`
	Groups   []string          `json:"g,omitempty"`
	NoDetail bool              `json:"x,omitempty"` // a profile.put recorded without its rules
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
	case strings.HasPrefix(string(ev.Type), "auth.") && ev.Outcome == audit.Success && ev.Actor.UserID != "":
		h.Kind, h.User, h.Email, h.Groups = "user", ev.Actor.UserID, ev.Actor.Email, ev.Actor.Groups
	case (ev.Type == audit.TypeUserDisable || ev.Type == audit.TypeUserEnable) && ev.Outcome == audit.Success && ev.Target.User != "":
		h.Kind, h.User = "enable", ev.Target.User
		if ev.Type == audit.TypeUserDisable {
			h.Kind = "disable"
		}
	default:
		return histEntry{}, false
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

// stateAt replays the history up to and including at: the profiles and
// users as they were then, and the profiles whose rules the journal does
// not say.
func stateAt(tx *bolt.Tx, at time.Time) (users []authn.User, all []profiles.Profile, unknown []string) {
	profs := map[string]*profiles.Profile{}
	blind := map[string]bool{}
	byID := map[string]*authn.User{}
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
			u := byID[h.User]
			if u == nil {
				u = &authn.User{ID: h.User}
				byID[h.User] = u
			}
			u.Email, u.Groups = h.Email, slices.Clone(h.Groups)
		case "disable", "enable":
			if u := byID[h.User]; u != nil {
				u.Disabled = h.Kind == "disable"
			}
		}
	}
	for _, u := range byID {
		users = append(users, *u)
	}
	slices.SortFunc(users, func(a, b authn.User) int { return strings.Compare(a.ID, b.ID) })
	for _, p := range profs {
		all = append(all, *p)
	}
	slices.SortFunc(all, func(a, b profiles.Profile) int { return strings.Compare(a.Name, b.Name) })
	for n := range blind {
		unknown = append(unknown, n)
	}
	slices.Sort(unknown)
	return users, all, unknown
}

// EntitlementsAt is Entitlements as of a past time: the users (as their
// last sign-in before at described them, and whether they were disabled)
// and the profiles (their rules, groups and users at the version in force
// at at) come from the journal's history, not the current state; entitle
// decides as it does now. Usage is counted between since and until as in
// Entitlements. Profiles whose rules the journal does not say at that time
// (changed before profile events carried them) are listed in Unknown.
// Users who never signed in by at, and group changes an identity provider
// pushed (SCIM) between sign-ins, are not in the journal and so not known.
func (r *Rollup) EntitlementsAt(ctx context.Context, at time.Time, entitle Entitlement, since, until time.Time, unused bool) (EntitlementsReport, error) {
	var users []authn.User
	var all []profiles.Profile
	var unknown []string
	err := r.db.View(func(tx *bolt.Tx) error {
		users, all, unknown = stateAt(tx, at)
		return nil
	})
	if err != nil {
		return EntitlementsReport{}, err
	}
	rep, err := r.Entitlements(ctx, users, all, entitle, since, until, unused)
	rep.At, rep.Unknown = at.UTC(), unknown
	if rep.Unknown == nil {
		rep.Unknown = []string{}
	}
	return rep, err
}
