package authn

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferryvpn/ferry/audit"
)

// A user record changed without a sign-in — created or regrouped by an
// identity provider's push (SCIM), by revalidation, or by a sign-in the
// policy refused — is recorded as an admin user.provision event carrying
// the record's resulting email and groups, so that who could reach what
// at a past time can be answered from the journal alone (report's
// entitlements --at). A sign-in needs no such event: its auth.login event
// carries the groups in its actor.
//
// Details values are capped (audit.MaxFieldLen), so the groups, as a JSON
// array, are split over details groups.00, groups.01, ...; groups too many
// for the event's details (audit.MaxDetails) are left out and the detail
// groups_omitted says how many there were.

// DetailEmailVerified is the detail ("true" or "false") in which a
// sign-in's login.oidc and login.session events and a user.provision
// event say whether the identity provider verified the user's email
// (profiles assign by email only then).
const DetailEmailVerified = "email_verified"

// ActionProvision marks a user record created or changed without a
// sign-in (admin.user.provision).
const ActionProvision = "user.provision"

// groupsChunk is the size of one groups detail.
const groupsChunk = audit.MaxFieldLen - 16

// maxGroupsChunks leaves room for the other details.
const maxGroupsChunks = audit.MaxDetails - 6

// provisionEvent returns the user.provision event for a record now
// holding u, changed by how (e.g. "SCIM"); change describes a change of
// groups, if any.
func provisionEvent(u *userRecord, how, change string) audit.Event {
	by := "identity provider"
	if u.Issuer != "" {
		by += " " + u.Issuer
	}
	d := map[string]string{"via": how, DetailEmailVerified: strconv.FormatBool(u.EmailVerified)}
	if u.Email != "" {
		d["email"] = u.Email
	}
	if change != "" {
		d["change"] = change
	}
	putGroups(d, u.Groups)
	return audit.Event{
		Type: audit.TypeAdmin, Action: ActionProvision, Outcome: audit.Success,
		Actor:   audit.Actor{UserID: by, Role: "idp"},
		Target:  audit.Target{User: u.ID},
		Details: d,
	}
}

// ProvisionedFrom returns what a user.provision event recorded of the
// user: their ID, email and groups after the change. ok is false when e
// is no such event; groupsKnown is false when the event does not carry
// the groups (too many to record).
func ProvisionedFrom(e *audit.Event) (userID, email string, groups []string, groupsKnown, ok bool) {
	if e.Type != audit.TypeAdmin || e.Action != ActionProvision || e.Outcome != audit.Success || e.Target.User == "" {
		return "", "", nil, false, false
	}
	userID, email = e.Target.User, e.Details["email"]
	groups, groupsKnown = groupsFrom(e.Details)
	return userID, email, groups, groupsKnown, true
}

// RevalidatedGroups returns the groups a successful revalidation event
// recorded, as the identity provider gave them; known is false when the
// event does not carry them (too many to record). Journals written before
// the groups were JSON hold them comma-joined in the detail "groups",
// which is read as such (a group name with a comma was split there).
func RevalidatedGroups(e *audit.Event) (groups []string, known bool) {
	if e.Action != ActionRevalidate || e.Outcome != audit.Success {
		return nil, false
	}
	if groups, known = groupsFrom(e.Details); known {
		return groups, true
	}
	legacy, ok := e.Details["groups"]
	if !ok {
		return nil, false
	}
	if legacy == "" {
		return []string{}, true
	}
	return strings.Split(legacy, ","), true
}

// putGroups records groups in d as a JSON array split over the details
// groups.00, groups.01, ... (see above), or, when they are too many,
// their number in groups_omitted.
func putGroups(d map[string]string, groups []string) {
	if groups == nil {
		groups = []string{}
	}
	b, err := json.Marshal(groups)
	if err != nil || (len(b)+groupsChunk-1)/groupsChunk > maxGroupsChunks {
		d["groups_omitted"] = strconv.Itoa(len(groups))
		return
	}
	s := string(b)
	for i := 0; len(s) > 0; i++ {
		n := min(len(s), groupsChunk)
		d[fmt.Sprintf("groups.%02d", i)] = s[:n]
		s = s[n:]
	}
}

// groupsFrom returns the groups putGroups recorded in d; known is false
// when d holds none or they do not decode.
func groupsFrom(d map[string]string) (groups []string, known bool) {
	var b strings.Builder
	for i := 0; ; i++ {
		part, ok := d[fmt.Sprintf("groups.%02d", i)]
		if !ok {
			break
		}
		b.WriteString(part)
	}
	if b.Len() == 0 || json.Unmarshal([]byte(b.String()), &groups) != nil {
		return nil, false
	}
	return groups, true
}
