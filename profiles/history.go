package profiles

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ferryvpn/ferry/audit"
)

// A profile.change (profile.put) event carries what decides entitlements —
// the rules, groups and users — so that who could reach what at a past
// time can be answered from the journal alone (report's entitlements
// --at). Details values are capped (audit.MaxFieldLen), so the JSON is
// split over details spec.00, spec.01, ...; a profile too large for the
// event's details (audit.MaxDetails) is recorded without it.

// specChunk is the size of one spec detail.
const specChunk = audit.MaxFieldLen - 16

// maxSpecChunks leaves room for other details.
const maxSpecChunks = audit.MaxDetails - 4

// historySpec is what a profile.change event records of the profile.
type historySpec struct {
	Rules  []Rule   `json:"rules"`
	Groups []string `json:"groups,omitempty"`
	Users  []string `json:"users,omitempty"`
}

// addSpecDetails adds p's entitlement-deciding parts to d.
func addSpecDetails(d map[string]string, p *Profile) {
	b, err := json.Marshal(historySpec{Rules: p.Rules, Groups: p.Groups, Users: p.Users})
	if err != nil || (len(b)+specChunk-1)/specChunk > maxSpecChunks {
		return
	}
	s := string(b)
	for i := 0; len(s) > 0; i++ {
		n := min(len(s), specChunk)
		d[fmt.Sprintf("spec.%02d", i)] = s[:n]
		s = s[n:]
	}
}

// ProfileFromChange returns the profile a profile.put event recorded:
// its name, version, rules, groups and users. ok is false when the event
// carries none (recorded before profiles carried them, or too large).
func ProfileFromChange(e *audit.Event) (p Profile, ok bool) {
	if e.Type != audit.TypeProfileChange || e.Action != "profile.put" || e.Details["spec.00"] == "" {
		return Profile{}, false
	}
	var b strings.Builder
	for i := 0; ; i++ {
		part, ok := e.Details[fmt.Sprintf("spec.%02d", i)]
		if !ok {
			break
		}
		b.WriteString(part)
	}
	var s historySpec
	if err := json.Unmarshal([]byte(b.String()), &s); err != nil {
		return Profile{}, false
	}
	return Profile{Name: e.Target.Profile, Version: e.PolicyVersion, Rules: s.Rules, Groups: s.Groups, Users: s.Users, Updated: e.Time}, true
}
