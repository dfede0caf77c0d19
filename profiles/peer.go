package profiles

import (
	"net/netip"
	"time"
)

// Peer is one device's WireGuard identity, issued after sign-in.
type Peer struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	Email     string     `json:"email,omitempty"`
	Name      string     `json:"name,omitempty"`
	Device    string     `json:"device"`
	PublicKey string     `json:"public_key"` // base64; the private key never leaves the device
	Address   netip.Addr `json:"address"`
	// Address6 is the client's IPv6 address in a dual-stack pool
	// (Address6 of the pool and Address); zero when IPv4 only.
	Address6       netip.Addr `json:"address6,omitzero"`
	Profile        string     `json:"profile"`
	ProfileVersion uint64     `json:"profile_version"`
	Issued         time.Time  `json:"issued"`
	Expires        time.Time  `json:"expires"`
	SessionID      string     `json:"session_id"`
	Node           string     `json:"node,omitempty"` // the node that issued it
	ServerKey      bool       `json:"server_key,omitempty"`
	// Revoked is set when the peer was revoked; the record stays until the
	// janitor removes it so that listings can show why.
	Revoked       *time.Time `json:"revoked,omitempty"`
	RevokedReason string     `json:"revoked_reason,omitempty"`
	// RevokedByAdmin is set when an administrator revoked the device: its
	// owner cannot reissue it under the same name until an administrator
	// clears it (Store.ClearRevocation). RevokedBy names who revoked it.
	RevokedByAdmin bool   `json:"revoked_by_admin,omitempty"`
	RevokedBy      string `json:"revoked_by,omitempty"`
}

// Valid reports whether the peer may use the tunnel at now. Expiry needs no
// cleanup to take effect: every reader applies it with its own clock.
func (p *Peer) Valid(now time.Time) bool {
	return p.Revoked == nil && now.Before(p.Expires)
}

// State describes the peer at now: "active", "expired" or "revoked".
func (p *Peer) State(now time.Time) string {
	switch {
	case p.Revoked != nil:
		return "revoked"
	case !now.Before(p.Expires):
		return "expired"
	}
	return "active"
}

// owner names the peer's owner for people: email or name, never the
// opaque user key.
func (p *Peer) owner() string {
	switch {
	case p.Email != "":
		return p.Email
	case p.Name != "":
		return p.Name
	}
	return "its owner"
}
