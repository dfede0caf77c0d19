package audit

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"github.com/ferryvpn/ferry/audit/auditfile"
)

// Records are stored in RFC 8785 canonical form. Canonicalizing every
// event after encoding/json costs a second parse; instead events are
// encoded from mirror structs whose fields are in canonical (sorted) key
// order, without HTML escaping, which gives the canonical form directly
// unless a string needed a \u escape or a map key sorts differently in
// UTF-16 — then the slow path canonicalizes. A test checks both agree.

type canonActor struct {
	Email   string   `json:"email,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	Role    string   `json:"role,omitempty"`
	Session string   `json:"session,omitempty"`
	UserID  string   `json:"user_id,omitempty"`
}

type canonTarget struct {
	Device   string `json:"device,omitempty"`
	DstAddr  string `json:"dst_addr,omitempty"`
	DstPort  int    `json:"dst_port,omitempty"`
	Node     string `json:"node,omitempty"`
	Peer     string `json:"peer,omitempty"`
	Profile  string `json:"profile,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	User     string `json:"user,omitempty"`
}

type canonEvent struct {
	Action        string            `json:"action,omitempty"`
	Actor         canonActor        `json:"actor"`
	BytesIn       uint64            `json:"bytes_in,omitempty"`
	BytesOut      uint64            `json:"bytes_out,omitempty"`
	Details       map[string]string `json:"details,omitempty"`
	Duration      time.Duration     `json:"duration_ns,omitempty"`
	Flows         []Flow            `json:"flows,omitempty"` // fields in sorted key order
	ID            string            `json:"id"`
	Node          string            `json:"node,omitempty"`
	Outcome       Outcome           `json:"outcome"`
	PolicyVersion uint64            `json:"policy_version,omitempty"`
	Reason        string            `json:"reason,omitempty"`
	Source        Source            `json:"source"` // addr, port, user_agent: already sorted
	Target        canonTarget       `json:"target"`
	Time          time.Time         `json:"time"`
	Type          Type              `json:"type"`
}

var encBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// encodeCanonical returns e's journal record in canonical form.
func encodeCanonical(e *Event) ([]byte, error) {
	c := canonEvent{
		Action: e.Action, BytesIn: e.BytesIn, BytesOut: e.BytesOut, Details: e.Details, Duration: e.Duration, Flows: e.Flows, ID: e.ID, Node: e.Node,
		Outcome: e.Outcome, PolicyVersion: e.PolicyVersion, Reason: e.Reason, Source: e.Source, Time: e.Time, Type: e.Type,
		Actor: canonActor{Email: e.Actor.Email, Groups: e.Actor.Groups, Role: e.Actor.Role, Session: e.Actor.Session, UserID: e.Actor.UserID},
		Target: canonTarget{Device: e.Target.Device, DstAddr: e.Target.DstAddr, DstPort: e.Target.DstPort, Node: e.Target.Node,
			Peer: e.Target.Peer, Profile: e.Target.Profile, Protocol: e.Target.Protocol, User: e.Target.User},
	}
	buf := encBufs.Get().(*bytes.Buffer)
	defer encBufs.Put(buf)
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if bytes.Contains(b, []byte(`\u`)) || bytes.Contains(b, []byte(`\b`)) || bytes.Contains(b, []byte(`\f`)) || hasFourByteUTF8(b) {
		return auditfile.Canonical(b)
	}
	return bytes.Clone(b), nil
}

func hasFourByteUTF8(b []byte) bool {
	for _, c := range b {
		if c >= 0xf0 {
			return true
		}
	}
	return false
}
