package profiles

import (
	"context"
	"errors"
	"strconv"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
)

// Entitle is the one entitlement decision: whether user u may hold
// profile p (nil: the profile does not exist). It combines authn's
// admission policy (disabled, required groups) with the profile's
// assignment (user ID, groups, verified email where opted in). via says
// how the profile is held; why says, when it is not, why not.
//
// Everything that gives or keeps access asks this: Issue before a peer is
// issued, and the entitlement watcher (RunEntitlements) for every live
// peer whenever a user record or a profile changes.
func (s *Store) Entitle(u authn.User, p *Profile) (ok bool, via, why string) {
	if ok, why := s.policy.Admit(u); !ok {
		return false, "", why
	}
	if p == nil {
		return false, "", "profile deleted"
	}
	via, ok = p.AssignedTo(u.Identity(), s.byEmail)
	if !ok {
		return false, "", "profile " + strconv.Quote(p.Name) + " no longer assigned to the user (by ID, group or verified email)"
	}
	return true, via, ""
}

// Grant is one line of why a user holds, or not, a profile and a role.
type Grant struct {
	// Profile is the profile's name; empty for the role line.
	Profile string
	// Role is the role on the role line.
	Role string
	// Held reports whether the user holds it.
	Held bool
	// Via says how it is held ("group eng", "user", "email").
	Via string
	// Why says why it is not held.
	Why string
}

// Explain returns, for each profile and for the admin role, whether u
// holds it and why: what ferryctl user show prints.
func (s *Store) Explain(u authn.User, all []Profile) []Grant {
	var out []Grant
	role := s.policy.Role(u.Groups)
	g := Grant{Role: authn.RoleAdmin, Held: role == authn.RoleAdmin}
	if ok, why := s.policy.Admit(u); !ok {
		g.Held, g.Why = false, why
	} else if g.Held {
		for _, gr := range u.Groups {
			if s.policy.Role([]string{gr}) == authn.RoleAdmin {
				g.Via = "group " + gr
				break
			}
		}
	} else {
		g.Why = "in no admin group"
	}
	out = append(out, g)
	for i := range all {
		ok, via, why := s.Entitle(u, &all[i])
		if !ok {
			if _, assigned := all[i].AssignedTo(u.Identity(), s.byEmail); !assigned {
				why = "not assigned"
			}
		}
		out = append(out, Grant{Profile: all[i].Name, Held: ok, Via: via, Why: why})
	}
	return out
}

// actorName names an actor for people: email, else user ID.
func actorName(a audit.Actor) string {
	switch {
	case a.Email != "":
		return a.Email
	case a.UserID != "":
		return a.UserID
	}
	return "system"
}

// SetUserDisabled disables (or enables) a user as actor from src, and on
// disable revokes every device of the user before it returns: one domain
// operation, whoever calls it (the API, SCIM provisioning, Shared Signals
// events). Sessions end in the same transaction as the disable (see
// authn.Users.SetDisabled). The entitlement watcher would revoke the
// devices too; doing it here means the caller's answer already holds. It
// returns how many devices were revoked. It needs Config.Users.
func (s *Store) SetUserDisabled(ctx context.Context, userID string, disabled bool, actor audit.Actor, src authn.Source) (int, error) {
	if s.users == nil {
		return 0, errors.New("profiles: config has no Users")
	}
	if err := s.users.SetDisabled(ctx, userID, disabled, actor, src); err != nil {
		return 0, err
	}
	if !disabled {
		return 0, nil
	}
	return s.revokeWhere(ctx, func(p *Peer) bool { return p.UserID == userID },
		"no longer entitled: user disabled by "+actorName(actor), actor, false)
}
