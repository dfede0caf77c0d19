package report

import (
	"cmp"
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// EntitlementRow is one rule of one profile a user holds (user → how →
// profile → rule), with how much the user used it in the window.
type EntitlementRow struct {
	User     string    `json:"user"`
	Email    string    `json:"email,omitempty"`
	Via      string    `json:"via"` // "group eng", "user", "email"
	Profile  string    `json:"profile"`
	Version  uint64    `json:"profile_version"`
	Rule     int       `json:"rule"` // index in the profile's rules
	RuleText string    `json:"rule_text"`
	Flows    uint64    `json:"flows"` // accepted flows the rule admitted in the window
	Last     time.Time `json:"last,omitzero"`
}

// EntitlementsReport is who can reach what now, and what of it was used
// between Since and Until.
type EntitlementsReport struct {
	Since time.Time        `json:"since,omitzero"`
	Until time.Time        `json:"until,omitzero"`
	Rows  []EntitlementRow `json:"rows"`
	// UnusedRules are rules no holder of their profile used in the window:
	// least-privilege suggestions per profile.
	UnusedRules []EntitlementRow `json:"unused_rules"`
	Source      Source           `json:"source"`
	// At, when set, is the past time the entitlements are as of
	// (EntitlementsAt); zero: now.
	At time.Time `json:"at,omitzero"`
	// Unknown names the profiles in force at At whose rules the journal
	// does not say (EntitlementsAt).
	Unknown []string `json:"unknown_profiles,omitempty"`
	// UnknownUsers names the users who existed at At (not disabled) whose
	// groups the journal does not say, so whose entitlements are not
	// listed (EntitlementsAt).
	UnknownUsers []string `json:"unknown_users,omitempty"`
}

// Entitlement decides whether a user holds a profile and how
// (profiles.Store.Entitle).
type Entitlement func(u authn.User, p *profiles.Profile) (ok bool, via, why string)

// Entitlements lists, for every user and every profile the user holds
// now (as entitle decides), each of the profile's rules with the accepted
// flows of that user it admitted between since and until (whole hours)
// from the rollup. With unused set, only rules the user did not use are
// listed. UnusedRules lists the rules no holder used.
func (r *Rollup) Entitlements(ctx context.Context, users []authn.User, all []profiles.Profile, entitle Entitlement, since, until time.Time, unused bool) (EntitlementsReport, error) {
	rep := EntitlementsReport{Since: since, Until: until, Rows: []EntitlementRow{}, UnusedRules: []EntitlementRow{}}
	byName := make(map[string]*profiles.Profile, len(all))
	for i := range all {
		byName[all[i].Name] = &all[i]
	}
	type use struct {
		flows uint64
		last  int64
	}
	type useKey struct {
		user, profile string
		rule          int
	}
	uses := map[useKey]*use{}
	var cur cursor
	err := r.db.View(func(tx *bolt.Tx) error {
		var err error
		if cur, err = readCursorTx(tx); err != nil {
			return err
		}
		// Keys are read in place; only a used rule's key makes strings.
		return scanRaw(ctx, tx, since, until, false, func(kb, vb []byte, _ time.Time) {
			k, ok := viewKey(kb)
			if !ok || string(k.verdict) == "d" {
				return
			}
			p := byName[string(k.profile)]
			if p == nil {
				return
			}
			c := decodeCounts(vb)
			if c.Flows == 0 {
				return
			}
			dst, err := netip.ParseAddr(string(k.dst))
			proto, ok := ipProto(string(k.proto))
			if err != nil || !ok {
				return
			}
			i, ok := p.RuleFor(dst, proto, k.portNum())
			if !ok {
				return
			}
			uk := useKey{string(k.user), string(k.profile), i}
			u := uses[uk]
			if u == nil {
				u = &use{}
				uses[uk] = u
			}
			u.flows += c.Flows
			u.last = max(u.last, c.Last)
		})
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return EntitlementsReport{}, ErrClosed
	}
	if err != nil {
		return EntitlementsReport{}, err
	}
	rep.Source = sourceOf(cur)
	usedRule := map[[2]string]map[int]bool{}
	for _, u := range users {
		for i := range all {
			p := &all[i]
			ok, via, _ := entitle(u, p)
			if !ok {
				continue
			}
			key := [2]string{p.Name, ""}
			if usedRule[key] == nil {
				usedRule[key] = map[int]bool{}
			}
			for ri, rule := range p.Rules {
				row := EntitlementRow{User: u.ID, Email: u.Email, Via: via, Profile: p.Name, Version: p.Version, Rule: ri, RuleText: rule.String()}
				if us := uses[useKey{u.ID, p.Name, ri}]; us != nil {
					row.Flows, row.Last = us.flows, time.Unix(0, us.last).UTC()
					usedRule[key][ri] = true
				}
				if unused && row.Flows > 0 {
					continue
				}
				rep.Rows = append(rep.Rows, row)
			}
		}
	}
	for i := range all {
		p := &all[i]
		held := usedRule[[2]string{p.Name, ""}]
		if held == nil {
			continue // no holder: nothing to suggest
		}
		for ri, rule := range p.Rules {
			if !held[ri] {
				rep.UnusedRules = append(rep.UnusedRules, EntitlementRow{Profile: p.Name, Version: p.Version, Rule: ri, RuleText: rule.String()})
			}
		}
	}
	slices.SortFunc(rep.Rows, func(a, b EntitlementRow) int {
		return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Profile, b.Profile), cmp.Compare(a.Rule, b.Rule))
	})
	slices.SortFunc(rep.UnusedRules, func(a, b EntitlementRow) int {
		return cmp.Or(cmp.Compare(a.Profile, b.Profile), cmp.Compare(a.Rule, b.Rule))
	})
	return rep, nil
}
