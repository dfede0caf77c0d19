package api

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/ferryvpn/ferry/profiles"
)

// profileFromWire parses a profile from the API, naming the bad field.
func profileFromWire(in wire.Profile) (profiles.Profile, error) {
	p := profiles.Profile{
		Name: in.Name, Description: in.Description, SearchDomains: in.SearchDomains,
		FullTunnel: in.FullTunnel, MaxDevices: in.MaxDevices, Groups: in.Groups, Users: in.Users,
	}
	bad := func(field, format string, args ...any) error {
		return &profiles.FieldError{Profile: in.Name, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	for i, r := range in.Rules {
		pr, err := netip.ParsePrefix(r.CIDR)
		if err != nil {
			return p, bad(fmt.Sprintf("rules[%d].cidr", i), "%q is not a CIDR like 10.0.0.0/16", r.CIDR)
		}
		rule := profiles.Rule{CIDR: pr, Protocol: r.Protocol}
		for j, ps := range r.Ports {
			pr, err := profiles.ParsePortRange(ps)
			if err != nil {
				return p, bad(fmt.Sprintf("rules[%d].ports[%d]", i, j), "%v", err)
			}
			rule.Ports = append(rule.Ports, pr)
		}
		p.Rules = append(p.Rules, rule)
	}
	for i, d := range in.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return p, bad(fmt.Sprintf("dns[%d]", i), "%q is not an IP address", d)
		}
		p.DNS = append(p.DNS, a)
	}
	if in.MaxSession != "" {
		d, err := time.ParseDuration(in.MaxSession)
		if err != nil {
			return p, bad("max_session", "%q is not a duration like 12h", in.MaxSession)
		}
		p.MaxSession = d
	}
	return p, nil
}

func profileToWire(p profiles.Profile) wire.Profile {
	out := wire.Profile{
		Name: p.Name, Description: p.Description, SearchDomains: p.SearchDomains, FullTunnel: p.FullTunnel,
		MaxSession: p.MaxSession.String(), MaxDevices: p.MaxDevices, Groups: p.Groups, Users: p.Users,
		Version: p.Version, Updated: p.Updated,
	}
	for _, r := range p.Rules {
		wr := wire.Rule{CIDR: r.CIDR.String(), Protocol: r.Protocol}
		for _, pr := range r.Ports {
			wr.Ports = append(wr.Ports, pr.String())
		}
		out.Rules = append(out.Rules, wr)
	}
	for _, a := range p.DNS {
		out.DNS = append(out.DNS, a.String())
	}
	return out
}

func peerToWire(p profiles.Peer, now time.Time) wire.Peer {
	var a6 string
	if p.Address6.IsValid() {
		a6 = p.Address6.String()
	}
	return wire.Peer{
		Address6: a6,
		ID:       p.ID, UserID: p.UserID, Email: p.Email, Device: p.Device, PublicKey: p.PublicKey,
		Address: p.Address.String(), Profile: p.Profile, ProfileVersion: p.ProfileVersion,
		Issued: p.Issued, Expires: p.Expires, State: p.State(now), Revoked: p.Revoked,
		RevokedReason: p.RevokedReason, Node: p.Node,
	}
}

func sessionToWire(s authn.Session) wire.Session {
	return wire.Session{
		ID: s.ID, UserID: s.Identity.UserID, Email: s.Identity.Email, Role: s.Role, AuthTime: s.AuthTime,
		Expires: s.Expires, LastSeen: s.LastSeen, MFAMethod: s.MFAMethod, SourceIP: s.SourceIP,
	}
}
