package wire

import "time"

// Paths of the user and administration API. Every one of them needs a
// session token (Authorization: Bearer) or the portal's session cookie;
// those marked admin need the admin role.
const (
	PathMe           = "/v1/me"              // GET: the caller's session; DELETE: sign out (end it)
	PathProfiles     = "/v1/profiles"        // GET: yours (admin: ?all=1 for every profile); POST: create (admin)
	PathProfile      = "/v1/profiles/{name}" // GET; PUT (admin, If-Match: version); DELETE (admin)
	PathProfileApply = "/v1/profiles:apply"  // POST (admin)
	PathPeers        = "/v1/peers"           // GET: yours (admin: every peer, filters); POST: issue
	PathPeer         = "/v1/peers/{id}"      // GET; DELETE: revoke (yours, or admin)
	PathUsers        = "/v1/users"           // GET (admin)
	PathUser         = "/v1/users/{id}"      // GET (admin)
	PathUserDisable  = "/v1/users/{id}/disable"
	PathUserEnable   = "/v1/users/{id}/enable"
	PathUserResetMFA = "/v1/users/{id}/reset-mfa"
	PathUserUnlock   = "/v1/users/{id}/unlock"           // POST (admin): end a lockout, keep MFA
	PathPeerClear    = "/v1/peers/{id}/clear-revocation" // POST (admin): let the owner reissue the device
	PathSessions     = "/v1/sessions"                    // GET (admin; ?user=)
	PathSession      = "/v1/sessions/{id}"               // DELETE (admin)
)

// Me describes the caller's session.
type Me struct {
	UserID    string    `json:"user_id"`
	Email     string    `json:"email,omitempty"`
	Name      string    `json:"name,omitempty"`
	Groups    []string  `json:"groups,omitempty"`
	Role      string    `json:"role"`
	SessionID string    `json:"session_id"`
	AuthTime  time.Time `json:"auth_time"`
	Expires   time.Time `json:"expires"`
	MFAMethod string    `json:"mfa_method"`
}

// Rule allows new connections to a destination.
type Rule struct {
	CIDR     string   `json:"cidr" yaml:"cidr"`
	Protocol string   `json:"protocol" yaml:"protocol"`
	Ports    []string `json:"ports,omitempty" yaml:"ports,omitempty"` // "443" or "8000-8080"
}

// Profile is an access profile.
type Profile struct {
	Name          string    `json:"name"`
	Description   string    `json:"description,omitempty"`
	Rules         []Rule    `json:"rules"`
	DNS           []string  `json:"dns,omitempty"`
	SearchDomains []string  `json:"search_domains,omitempty"`
	FullTunnel    bool      `json:"full_tunnel,omitempty"`
	MaxSession    string    `json:"max_session,omitempty"` // Go duration, e.g. "12h"
	MaxDevices    int       `json:"max_devices,omitempty"`
	Groups        []string  `json:"groups,omitempty"`
	Users         []string  `json:"users,omitempty"`
	Version       uint64    `json:"version,omitempty"`
	Updated       time.Time `json:"updated,omitempty"`
}

// ProfileList is a list of profiles.
type ProfileList struct {
	Profiles []Profile `json:"profiles"`
}

// ApplyRequest carries a declarative profile file (YAML text).
type ApplyRequest struct {
	File   string `json:"file"`
	DryRun bool   `json:"dry_run,omitempty"`
}

// Change is one profile an apply creates, updates or deletes.
type Change struct {
	Name   string   `json:"name"`
	Fields []string `json:"fields,omitempty"`
}

// ApplyResponse is the plan of an apply (what was, or with dry_run would
// be, done) and its rendering as a diff.
type ApplyResponse struct {
	Create []Change `json:"create"`
	Update []Change `json:"update"`
	Delete []Change `json:"delete"`
	Diff   string   `json:"diff"`
}

// IssueRequest asks for a device's peer. The device generates its key
// pair and sends the public key only.
type IssueRequest struct {
	PublicKey string `json:"public_key"`
	Device    string `json:"device"`
	Profile   string `json:"profile,omitempty"`
}

// Peer is one device's WireGuard identity.
type Peer struct {
	ID             string     `json:"id"`
	UserID         string     `json:"user_id"`
	Email          string     `json:"email,omitempty"`
	Device         string     `json:"device"`
	PublicKey      string     `json:"public_key"`
	Address        string     `json:"address"`
	Address6       string     `json:"address6,omitempty"` // dual-stack pools only
	Profile        string     `json:"profile"`
	ProfileVersion uint64     `json:"profile_version"`
	Issued         time.Time  `json:"issued"`
	Expires        time.Time  `json:"expires"`
	State          string     `json:"state"` // active, expired or revoked
	Revoked        *time.Time `json:"revoked,omitempty"`
	RevokedReason  string     `json:"revoked_reason,omitempty"`
	Node           string     `json:"node,omitempty"`
	// Counters are the peer's live WireGuard counters on every node whose
	// device holds it (GET /v1/peers?counters=1, administrators only).
	Counters []PeerCounters `json:"counters,omitempty"`
}

// PeerCounters is a peer's live WireGuard counters on one node, as that
// node's device reported them at its last poll.
type PeerCounters struct {
	Node          string     `json:"node"`
	Endpoint      string     `json:"endpoint,omitempty"`
	LastHandshake *time.Time `json:"last_handshake,omitempty"`
	RxBytes       int64      `json:"rx_bytes"` // received from the peer
	TxBytes       int64      `json:"tx_bytes"` // sent to the peer
}

// NodeCounters says when a node last read its device, or why it did not
// answer.
type NodeCounters struct {
	Node  string     `json:"node"`
	At    *time.Time `json:"at,omitempty"`
	Error string     `json:"error,omitempty"`
}

// IssueResponse carries the issued peer and its wg-quick configuration
// without the [Interface] PrivateKey line, which the device adds.
type IssueResponse struct {
	Peer   Peer   `json:"peer"`
	Config string `json:"config"`
}

// PeerList is a list of peers.
type PeerList struct {
	Peers []Peer `json:"peers"`
	// Nodes lists the nodes asked for counters (with ?counters=1).
	Nodes []NodeCounters `json:"nodes,omitempty"`
}

// RevokeRequest optionally says why.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// RevokeResponse says how many peers were revoked.
type RevokeResponse struct {
	Revoked int `json:"revoked"`
}

// User is a person known from sign-ins.
type User struct {
	ID     string   `json:"id"`
	Email  string   `json:"email,omitempty"`
	Name   string   `json:"name,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// GroupsClaimMissing reports that the last sign-in carried no groups
	// claim at all (ID token and userinfo): check the identity
	// provider's scopes and mappers.
	GroupsClaimMissing bool      `json:"groups_claim_missing,omitempty"`
	Disabled           bool      `json:"disabled"`
	MFAEnrolled        bool      `json:"mfa_enrolled"`
	Created            time.Time `json:"created"`
	LastLogin          time.Time `json:"last_login,omitempty"`
	// Issuer is the identity provider that vouches for the user.
	Issuer string `json:"iss,omitempty"`
	// Suspended says why the identity provider's word took the user's
	// access away (refused refresh token, unreachable past the grace).
	Suspended string `json:"suspended,omitempty"`
	// LastChange is the last change to what the user holds, and by whom.
	LastChange *UserChange `json:"last_change,omitempty"`
	// The following are filled in by GET /v1/users/{id} only.
	// Grants say, per profile and for the admin role, whether the user
	// holds it and why (or why not).
	Grants []Grant `json:"grants,omitempty"`
	// Revoked lists the user's revoked devices and why.
	Revoked []Revocation `json:"revoked,omitempty"`
	// Lockout is the second-factor lockout state.
	Lockout *Lockout `json:"lockout,omitempty"`
}

// UserChange is a change to what a user holds.
type UserChange struct {
	What string    `json:"what"`
	By   string    `json:"by"`
	At   time.Time `json:"at"`
}

// Grant says whether a user holds a profile (or, with Role set, a role)
// and how, or why not.
type Grant struct {
	Profile string `json:"profile,omitempty"`
	Role    string `json:"role,omitempty"`
	Held    bool   `json:"held"`
	Via     string `json:"via,omitempty"`
	Why     string `json:"why,omitempty"`
}

// Revocation is one revoked device of a user.
type Revocation struct {
	Peer    string    `json:"peer"`
	Device  string    `json:"device"`
	Profile string    `json:"profile"`
	Revoked time.Time `json:"revoked"`
	Reason  string    `json:"reason"`
	// ByAdmin: the owner cannot reissue the device until an administrator
	// clears it.
	ByAdmin bool `json:"by_admin,omitempty"`
}

// Lockout is a user's second-factor lockout state.
type Lockout struct {
	Failures    int       `json:"failures"`
	LockedUntil time.Time `json:"locked_until,omitempty"`
}

// UserList is a list of users.
type UserList struct {
	Users []User `json:"users"`
}

// Session is a signed-in session (never its token).
type Session struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Email     string    `json:"email,omitempty"`
	Role      string    `json:"role"`
	AuthTime  time.Time `json:"auth_time"`
	Expires   time.Time `json:"expires"`
	LastSeen  time.Time `json:"last_seen"`
	MFAMethod string    `json:"mfa_method"`
	SourceIP  string    `json:"source_ip,omitempty"`
}

// SessionList is a list of sessions.
type SessionList struct {
	Sessions []Session `json:"sessions"`
}

// Audit paths (admin).
const (
	// PathAuditRecords streams records as JSON lines (or ?format=cef|ocsf):
	// ?from_seq=&since=RFC3339&until=RFC3339&type=auth.*&user=ID, and
	// ?follow=1 to keep streaming new records (tail -f).
	PathAuditRecords = "/v1/audit/records"
	// PathAuditKey returns the audit public key record, for verifying
	// exports offline.
	PathAuditKey = "/v1/audit/key"
	// PathAuditVerify verifies the live journal of the node that answers.
	PathAuditVerify = "/v1/audit/verify"
	// PathAuditStatus returns the retention settings, the answering
	// node's journal range and the last prune of flow records.
	PathAuditStatus = "/v1/audit/status"
)

// AuditStatus is what retention keeps (GET PathAuditStatus).
type AuditStatus struct {
	Node string `json:"node"`
	// Retention and FlowRetention are Go durations ("9600h0m0s");
	// FlowRetention is "0s" when flow records follow Retention.
	Retention     string `json:"retention"`
	FlowRetention string `json:"flow_retention"`
	// First and Head are the first journal record kept and the last.
	First     uint64      `json:"first"`
	Head      uint64      `json:"head"`
	LastPrune *AuditPrune `json:"last_prune,omitempty"`
}

// AuditPrune is what the last prune of flow records did.
type AuditPrune struct {
	Time      time.Time `json:"time"`
	Through   uint64    `json:"through"`
	Removed   uint64    `json:"removed"`
	Runs      uint64    `json:"runs"`
	Summaries int       `json:"summaries"`
}

// AuditVerifyResponse is the outcome of a live verification.
type AuditVerifyResponse struct {
	Node     string `json:"node"`
	OK       bool   `json:"ok"`
	Problem  string `json:"problem,omitempty"` // what was found, naming the record
	Records  uint64 `json:"records"`
	First    uint64 `json:"first"`
	Last     uint64 `json:"last"`
	Signed   uint64 `json:"signed"` // highest sequence vouched for by a signature
	Anchored bool   `json:"anchored"`
}

// Cluster operation paths (admin).
const (
	PathClusterStatus  = "/v1/cluster/status"
	PathClusterMember  = "/v1/cluster/members/{id}" // DELETE: remove a member
	PathClusterBackup  = "/v1/cluster/backup"       // GET: a consistent snapshot file
	PathClusterRestore = "/v1/cluster/restore"      // POST: replace the whole state (any node; forwarded to the leader)
	// PathClusterJoinTokens mints a join token (POST, JoinTokenRequest).
	PathClusterJoinTokens = "/v1/cluster/join-tokens"
)

// Lifetimes of join tokens, the same for ferryd token, ferryctl cluster
// join and the API (cluster/admit holds the rule; a test keeps these equal).
const (
	DefaultJoinTokenTTL = time.Hour
	MaxJoinTokenTTL     = 24 * time.Hour
)

// JoinTokenRequest asks for a join token that admits one new node.
type JoinTokenRequest struct {
	// TTLSeconds is the token's lifetime; 0 takes the server's default
	// (an hour). At most one day.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
	// NodeID, when set, is the only node the token admits.
	NodeID string `json:"node_id,omitempty"`
}

// JoinTokenResponse carries a join token. The token is a secret: anyone
// holding it can add one node to the cluster until Expires.
type JoinTokenResponse struct {
	Token string `json:"token"`
	// ID names the token in the audit log; not secret.
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
	NodeID  string    `json:"node_id,omitempty"`
}

// ClusterMember is one server of the cluster.
type ClusterMember struct {
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
	Healthy *bool  `json:"healthy,omitempty"` // known on the leader only
	// CertNotAfter is when the member's node certificate expires, as
	// recorded when it was issued or last renewed.
	CertNotAfter *time.Time `json:"cert_not_after,omitempty"`
}

// ClusterStatus is the answering node's view of the cluster.
type ClusterStatus struct {
	Node         string          `json:"node"`
	State        string          `json:"state"`
	Ready        bool            `json:"ready"`
	NotReady     string          `json:"not_ready,omitempty"`
	LeaderID     string          `json:"leader_id"`
	Term         uint64          `json:"term"`
	CommitIndex  uint64          `json:"commit_index"`
	AppliedIndex uint64          `json:"applied_index"`
	JournalSeq   uint64          `json:"journal_seq"`
	Members      []ClusterMember `json:"members"`
	// AuditNetworkSinks counts the network audit sinks stored in the
	// cluster (nil when this node does not know); 0 means the audit
	// journal leaves the cluster nowhere.
	AuditNetworkSinks *int `json:"audit_network_sinks,omitempty"`
}
