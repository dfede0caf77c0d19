package authn

import (
	"slices"
	"strings"
)

// Policy is the part of the entitlement decision that authn owns: who is
// admitted at all and who is an administrator. It is re-applied on every
// request (Sessions.Validate) and by the entitlement watcher in profiles
// whenever a user record changes, so a change at the identity provider or
// by an administrator takes effect on live sessions and peers, not only at
// the next sign-in.
type Policy struct {
	// AdminGroups: a user in any of these groups has RoleAdmin.
	AdminGroups []string
	// RequiredGroups, when set, admits only users in at least one of
	// these groups (the sign-in policy, oidc.required_groups).
	RequiredGroups []string
}

// Role returns RoleAdmin for a member of an admin group, else RoleUser.
func (p Policy) Role(groups []string) string {
	for _, g := range groups {
		if slices.Contains(p.AdminGroups, g) {
			return RoleAdmin
		}
	}
	return RoleUser
}

// Admit reports whether u may hold anything at all; if not, why says why
// in words for an audit record ("disabled by admin@example.com").
func (p Policy) Admit(u User) (ok bool, why string) {
	if u.Disabled {
		why = "user disabled"
		if u.Change != nil && u.Change.What == "disabled" {
			why += " by " + u.Change.By
		}
		return false, why
	}
	if u.Suspended != "" {
		return false, "suspended: " + u.Suspended
	}
	if len(p.RequiredGroups) > 0 && !slices.ContainsFunc(u.Groups, func(g string) bool {
		return slices.Contains(p.RequiredGroups, g)
	}) {
		return false, "in none of the required groups (" + strings.Join(p.RequiredGroups, ", ") + ")"
	}
	return true, ""
}

// lowerRole returns the lesser of two roles.
func lowerRole(a, b string) string {
	if a == RoleAdmin && b == RoleAdmin {
		return RoleAdmin
	}
	return RoleUser
}
