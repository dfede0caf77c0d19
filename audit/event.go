package audit

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Type names what happened. The values are stable: SIEM rules match on them.
type Type string

// Event types. Admin actions use TypeAdmin plus Action (admin.<action>);
// cluster membership and operations use cluster.<action>.
const (
	TypeLogin        Type = "auth.login"
	TypeMFA          Type = "auth.mfa"
	TypeLockout      Type = "auth.lockout"
	TypeLogout       Type = "auth.logout"
	TypeSessionStart Type = "session.start"
	TypeSessionEnd   Type = "session.end"
	TypeFlowAccept   Type = "flow.accept"
	TypeFlowDeny     Type = "flow.deny"
	// TypeFlowSummary is a day's flow aggregates kept when the raw flow
	// records past the flow window are pruned (see PlanPrune and
	// FlowSummary details).
	TypeFlowSummary   Type = "flow.summary"
	TypePeerIssue     Type = "peer.issue"
	TypePeerRevoke    Type = "peer.revoke"
	TypeProfileChange Type = "profile.change"
	TypeUserDisable   Type = "user.disable"
	TypeUserEnable    Type = "user.enable"
	TypeMFAReset      Type = "user.mfa_reset"
	TypeAdmin         Type = "admin"
	TypeCluster       Type = "cluster"
	// TypeAccessDenied is a refused call (HTTP 401 or 403) that no other
	// event records; repeated refusals from one source are folded into
	// one record per interval with a count (Details["count"]).
	TypeAccessDenied Type = "access.denied"
)

// Outcome is success or failure.
type Outcome string

// Outcomes.
const (
	Success Outcome = "success"
	Failure Outcome = "failure"
)

// Actor is who acted.
type Actor struct {
	UserID  string   `json:"user_id,omitempty"`
	Email   string   `json:"email,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	Session string   `json:"session,omitempty"` // a session's public ID, never its token
	Role    string   `json:"role,omitempty"`
}

// Source is where the action came from.
type Source struct {
	Addr      string `json:"addr,omitempty"`
	Port      int    `json:"port,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// Target is what was acted on.
type Target struct {
	Peer     string `json:"peer,omitempty"`
	Device   string `json:"device,omitempty"`
	Profile  string `json:"profile,omitempty"`
	User     string `json:"user,omitempty"`
	Node     string `json:"node,omitempty"`
	DstAddr  string `json:"dst_addr,omitempty"`
	DstPort  int    `json:"dst_port,omitempty"`
	Protocol string `json:"protocol,omitempty"`
}

// Event is one audit record: who, what, when, where from, which resource,
// the outcome and the policy version that decided (PCI DSS 10.2.2).
//
// ID, Time and Node are filled in by the Recorder when empty. Events must
// never carry secrets: no tokens, codes, keys or passwords.
type Event struct {
	ID            string            `json:"id"`
	Time          time.Time         `json:"time"`
	Node          string            `json:"node,omitempty"`
	Type          Type              `json:"type"`
	Action        string            `json:"action,omitempty"` // e.g. "profile.create" under admin
	Actor         Actor             `json:"actor"`
	Source        Source            `json:"source"`
	Target        Target            `json:"target"`
	Outcome       Outcome           `json:"outcome"`
	Reason        string            `json:"reason,omitempty"` // why it failed, exactly
	PolicyVersion uint64            `json:"policy_version,omitempty"`
	BytesIn       uint64            `json:"bytes_in,omitempty"`
	BytesOut      uint64            `json:"bytes_out,omitempty"`
	Duration      time.Duration     `json:"duration_ns,omitempty"`
	Details       map[string]string `json:"details,omitempty"`
	// Flows holds a flow event's tuples (one client, verdict and
	// interval); see Flow and FlowRecords. Empty for other events.
	Flows []Flow `json:"flows,omitempty"`
}

// Recorder takes audit events. Implementations must be safe for concurrent
// use. Record returns once the event is durably stored (replicated), or an
// error; callers decide whether an action may proceed unrecorded (security
// decisions must not).
type Recorder interface {
	Record(ctx context.Context, e Event) error
}

// FullType returns the event's type as SIEM rules see it: Type, or
// Type.Action for admin and cluster events ("admin.profile.create").
func (e *Event) FullType() string {
	if (e.Type == TypeAdmin || e.Type == TypeCluster) && e.Action != "" {
		return string(e.Type) + "." + e.Action
	}
	return string(e.Type)
}

// bulk reports whether events of type t are high-volume data-plane events
// (flow.*) that travel in the bulk lane, behind security events.
func (t Type) bulk() bool { return strings.HasPrefix(string(t), "flow.") }

// validate checks what a Recorder needs before it stores e.
func (e *Event) validate() error {
	switch {
	case e.Type == "":
		return fmt.Errorf("%w: type: required", ErrInvalidEvent)
	case e.Outcome != Success && e.Outcome != Failure:
		return fmt.Errorf("%w: outcome %q: want %q or %q", ErrInvalidEvent, e.Outcome, Success, Failure)
	}
	return nil
}
