package wire

import "time"

// Report endpoints (administrators only).
const (
	// PathReportAccess answers the access report: who accessed what.
	// Query: user (ID or email), profile, dst (CIDR or address), port,
	// protocol, since and until (RFC 3339; whole hours), by (hour or day:
	// one row per period, for statistics over time).
	PathReportAccess = "/v1/reports/access"
)

// AccessRow is one line of the access report: a user's traffic through one
// profile to one destination service.
type AccessRow struct {
	// Period is the hour or day the row covers with by=hour|day.
	Period   time.Time `json:"period,omitzero"`
	User     string    `json:"user"`
	Email    string    `json:"email,omitempty"`
	Devices  []string  `json:"devices"`
	Profile  string    `json:"profile"`
	Versions []uint64  `json:"profile_versions"`
	Dst      string    `json:"dst"` // empty: folded under load
	Protocol string    `json:"protocol,omitempty"`
	Port     uint16    `json:"port,omitempty"`
	// Host is the name whose DNS answer granted the traffic (a host
	// rule); empty for traffic a CIDR rule admitted.
	Host       string    `json:"host,omitempty"`
	First      time.Time `json:"first"`
	Last       time.Time `json:"last"`
	Flows      uint64    `json:"flows"`
	PacketsOut uint64    `json:"packets_out"`
	PacketsIn  uint64    `json:"packets_in"`
	BytesOut   uint64    `json:"bytes_out"`
	BytesIn    uint64    `json:"bytes_in"`
	Denied     uint64    `json:"denied"`
}

// ReportSource names the journal range a report was computed from, on
// which node, and the last signed checkpoint in it: `ferryctl audit verify`
// over the same range checks it.
type ReportSource struct {
	Node       string            `json:"node"`
	FromSeq    uint64            `json:"from_seq"`
	ToSeq      uint64            `json:"to_seq"`
	Checkpoint *ReportCheckpoint `json:"checkpoint,omitempty"`
	// Unsigned counts the records after the checkpoint.
	Unsigned uint64 `json:"unsigned"`
}

// ReportCheckpoint names a signed audit checkpoint: the record it covers
// up to, the chain hash there, when it was signed and by which key.
type ReportCheckpoint struct {
	Seq   uint64    `json:"seq"`
	Hash  string    `json:"hash"`
	Time  time.Time `json:"time"`
	KeyID string    `json:"key_id"`
}

// AccessReport is the answer of PathReportAccess.
type AccessReport struct {
	Query  map[string]string `json:"query"`
	Source ReportSource      `json:"source"`
	Rows   []AccessRow       `json:"rows"`
}

// PathReportReplay replays a proposed profile file against recorded
// traffic (ReplayRequest) and changes nothing.
const PathReportReplay = "/v1/reports/replay"

// ReplayRequest carries a declarative profile file (YAML text, as for
// PathProfileApply) and the time range of recorded traffic to replay.
type ReplayRequest struct {
	File  string    `json:"file"`
	Since time.Time `json:"since"`
	Until time.Time `json:"until,omitzero"`
}

// ReplayRow is one user and destination service whose verdict the
// proposed profile changes: recorded accepted flows (would be denied) or
// recorded denied attempts (would be allowed).
type ReplayRow struct {
	User     string    `json:"user"`
	Email    string    `json:"email,omitempty"`
	Dst      string    `json:"dst"`
	Protocol string    `json:"protocol"`
	Port     uint16    `json:"port,omitempty"`
	Flows    uint64    `json:"flows"`
	Denied   uint64    `json:"denied"`
	Last     time.Time `json:"last"`
}

// ProfileReplay is one profile's replay.
type ProfileReplay struct {
	Profile    string      `json:"profile"`
	WouldDeny  []ReplayRow `json:"would_deny"`
	WouldAllow []ReplayRow `json:"would_allow"`
	// Folded counts recorded flows folded under load that could not be
	// replayed (their port or destination was not kept).
	Folded uint64 `json:"folded"`
}

// ReplayResponse answers PathReportReplay.
type ReplayResponse struct {
	Since    time.Time       `json:"since"`
	Until    time.Time       `json:"until,omitzero"`
	Profiles []ProfileReplay `json:"profiles"`
	Source   ReportSource    `json:"source"`
}

// PathReportEntitlements answers who can reach what now (user → how →
// profile → rule) with each rule's use in the window. Query: since, until
// (RFC 3339), unused=1 for only what went unused.
const PathReportEntitlements = "/v1/reports/entitlements"

// EntitlementRow is one rule of one profile a user holds, with its use.
type EntitlementRow struct {
	User     string    `json:"user"`
	Email    string    `json:"email,omitempty"`
	Via      string    `json:"via,omitempty"`
	Profile  string    `json:"profile"`
	Version  uint64    `json:"profile_version"`
	Rule     int       `json:"rule"`
	RuleText string    `json:"rule_text"`
	Flows    uint64    `json:"flows"`
	Last     time.Time `json:"last,omitzero"`
}

// EntitlementsReport answers PathReportEntitlements.
type EntitlementsReport struct {
	Since       time.Time        `json:"since,omitzero"`
	Until       time.Time        `json:"until,omitzero"`
	Rows        []EntitlementRow `json:"rows"`
	UnusedRules []EntitlementRow `json:"unused_rules"`
	Source      ReportSource     `json:"source"`
	// At is the past time asked for (?at=); zero: now.
	At time.Time `json:"at,omitzero"`
	// UnknownProfiles are profiles in force at At whose rules the journal
	// does not say (changed before profile events carried them).
	UnknownProfiles []string `json:"unknown_profiles,omitempty"`
	// UnknownUsers are users who existed at At (not disabled) whose groups
	// the journal does not say: their entitlements are not in Rows.
	UnknownUsers []string `json:"unknown_users,omitempty"`
}
