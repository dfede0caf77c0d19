package profiles

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ferryvpn/ferry/authn"
)

// Errors callers compare with errors.Is.
var (
	// ErrInvalid is returned for a profile or request that fails
	// validation; the wrapped message names the field and the reason.
	ErrInvalid = errors.New("profiles: invalid")
	// ErrNotFound is returned when a profile or peer does not exist.
	ErrNotFound = errors.New("profiles: not found")
	// ErrNotAllowed is returned when a user asks for a profile not assigned
	// to them, or acts on a device that is not theirs.
	ErrNotAllowed = errors.New("profiles: not allowed")
	// ErrPoolExhausted is returned when no client address is free.
	ErrPoolExhausted = errors.New("profiles: address pool exhausted")
	// ErrTooManyDevices is returned when a user holds the profile's maximum
	// number of devices.
	ErrTooManyDevices = errors.New("profiles: device limit reached")
	// ErrRevokedByAdmin is returned when a user asks to reissue a device
	// an administrator revoked; an administrator must clear it first, or
	// the user picks another device name (counted against max_devices).
	ErrRevokedByAdmin = errors.New("profiles: device revoked by an administrator")
	// ErrDeviceInUse is returned when an issuance asked to keep an
	// existing device (IssueRequest.KeepExisting) names a device of the
	// user that is still valid.
	ErrDeviceInUse = errors.New("profiles: device name in use")
	// ErrConflict is returned when a concurrent change won a race; the
	// caller may retry.
	ErrConflict = errors.New("profiles: concurrent change")
)

// Defaults of a profile.
const (
	DefaultMaxSession = 12 * time.Hour
	DefaultMaxDevices = 5
	// MaxRulesPerProfile bounds the interval set the data plane builds for
	// one profile.
	MaxRulesPerProfile = 10000
)

// Protocols a rule can allow.
const (
	ProtoAny  = "any"
	ProtoTCP  = "tcp"
	ProtoUDP  = "udp"
	ProtoICMP = "icmp"
)

// PortRange is an inclusive range of ports; a single port has From == To.
type PortRange struct {
	From, To uint16
}

func (p PortRange) String() string {
	if p.From == p.To {
		return strconv.Itoa(int(p.From))
	}
	return fmt.Sprintf("%d-%d", p.From, p.To)
}

// ParsePortRange parses "443" or "8000-8080".
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	from, err := parsePort(lo)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{from, from}, nil
	}
	to, err := parsePort(hi)
	if err != nil {
		return PortRange{}, err
	}
	if to < from {
		return PortRange{}, fmt.Errorf("port range %q runs backwards", s)
	}
	return PortRange{from, to}, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q out of range 1-65535", s)
	}
	return uint16(n), nil
}

// MarshalText implements encoding.TextMarshaler.
func (p PortRange) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *PortRange) UnmarshalText(b []byte) error {
	r, err := ParsePortRange(string(b))
	if err != nil {
		return err
	}
	*p = r
	return nil
}

// UnmarshalYAML decodes "443" or "8000-8080" (as a string or a number),
// naming the line of a bad value.
func (p *PortRange) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: port: want a port or a range like 8000-8080", n.Line)
	}
	r, err := ParsePortRange(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*p = r
	return nil
}

// Rule allows new connections from a client to a destination named by
// address (CIDR, IPv4 or IPv6) or by DNS name (Host); exactly one is set.
type Rule struct {
	// CIDR is the destination network.
	CIDR netip.Prefix `json:"cidr,omitzero" yaml:"cidr,omitempty"`
	// Host names the destination: "db.prod.internal" or
	// "*.svc.example.com". The nodes' DNS forwarder (tunnel.DNSConfig)
	// grants a client the addresses it answers for a matching name, for
	// the record's TTL plus a grace, before the answer leaves. Without the
	// forwarder a host rule grants nothing (the data plane fails closed).
	Host string `json:"host,omitempty" yaml:"host,omitempty"`
	// Protocol is tcp, udp, icmp or any.
	Protocol string `json:"protocol" yaml:"protocol"`
	// Ports limit tcp and udp rules; empty means every port. They must be
	// empty for icmp and any.
	Ports []PortRange `json:"ports,omitempty" yaml:"ports,omitempty"`
}

// MarshalYAML writes the rule as UnmarshalYAML reads it, on one line:
// {cidr: 10.20.0.0/16, protocol: tcp, ports: [22, 8000-8080]}.
func (r Rule) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	add := func(k string, v *yaml.Node) {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, v)
	}
	scalar := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }
	if r.CIDR.IsValid() {
		add("cidr", scalar(r.CIDR.String()))
	}
	if r.Host != "" {
		add("host", scalar(r.Host))
	}
	add("protocol", scalar(r.Protocol))
	if len(r.Ports) > 0 {
		ports := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, p := range r.Ports {
			ports.Content = append(ports.Content, scalar(p.String()))
		}
		add("ports", ports)
	}
	return n, nil
}

// UnmarshalYAML decodes a rule, naming the line of a bad field.
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: rule: want a mapping with cidr or host, protocol and ports", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "cidr":
			p, err := netip.ParsePrefix(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: rule: cidr %q is not a CIDR like 10.0.0.0/16", v.Line, v.Value)
			}
			r.CIDR = p
		case "host":
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: rule: host: want a name like db.prod.internal or *.svc.example.com", v.Line)
			}
			r.Host = v.Value
		case "protocol":
			r.Protocol = v.Value
		case "ports":
			if v.Kind != yaml.SequenceNode {
				return fmt.Errorf("line %d: rule: ports: want a list like [22, 8000-8080]", v.Line)
			}
			r.Ports = make([]PortRange, len(v.Content))
			for j, pn := range v.Content {
				if err := r.Ports[j].UnmarshalYAML(pn); err != nil {
					return fmt.Errorf("rules: ports: %w", err)
				}
			}
		default:
			return fmt.Errorf("line %d: rule: unknown field %q (want cidr or host, protocol, ports)", k.Line, k.Value)
		}
	}
	return nil
}

// Profile says what a group of people may reach and how their tunnel is set up.
type Profile struct {
	Name          string       `json:"name" yaml:"name"`
	Description   string       `json:"description,omitempty" yaml:"description,omitempty"`
	Rules         []Rule       `json:"rules" yaml:"rules"`
	DNS           []netip.Addr `json:"dns,omitempty" yaml:"dns,omitempty"`
	SearchDomains []string     `json:"search_domains,omitempty" yaml:"search_domains,omitempty"`
	FullTunnel    bool         `json:"full_tunnel,omitempty" yaml:"full_tunnel,omitempty"`
	// Routes are networks the client sends into the tunnel without being
	// allowed anything there by themselves: where the addresses of host
	// rules live (the VPC's ranges). A split-tunnel profile with host rules
	// needs them.
	Routes     []netip.Prefix `json:"routes,omitempty" yaml:"routes,omitempty"`
	MaxSession time.Duration  `json:"max_session,omitempty" yaml:"max_session,omitempty"`
	MaxDevices int            `json:"max_devices,omitempty" yaml:"max_devices,omitempty"`
	Groups     []string       `json:"groups,omitempty" yaml:"groups,omitempty"`
	Users      []string       `json:"users,omitempty" yaml:"users,omitempty"`

	// Version changes with every edit (it is the store revision that wrote
	// the profile); peers and audit events record it. Set by the store.
	Version uint64    `json:"version,omitempty" yaml:"-"`
	Updated time.Time `json:"updated,omitempty" yaml:"-"`
	// UpdatedBy names who made the last edit (set by the store), so that
	// a revocation the edit causes can say by whom.
	UpdatedBy string `json:"updated_by,omitempty" yaml:"-"`
}

var (
	namePattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	domainPattern = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
)

// FieldError names the field of a profile that failed validation. It
// wraps ErrInvalid.
type FieldError struct {
	Profile string
	Field   string // e.g. "rules[2].ports[0]"
	Reason  string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("profile %q: %s: %s", e.Profile, e.Field, e.Reason)
}

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// ValidName checks a profile name: lowercase letters, digits, '.', '_', '-'.
func ValidName(name string) error {
	if !namePattern.MatchString(name) {
		return &FieldError{Profile: name, Field: "name", Reason: "want 1-63 lowercase letters, digits, '.', '_' or '-'"}
	}
	return nil
}

// Normalize fills in defaults and canonical forms (masked CIDRs, lowercase
// protocols, sorted and de-duplicated lists), so that two profiles that
// mean the same compare equal.
func (p *Profile) Normalize() {
	if p.MaxSession == 0 {
		p.MaxSession = DefaultMaxSession
	}
	if p.MaxDevices == 0 {
		p.MaxDevices = DefaultMaxDevices
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		r.Protocol = strings.ToLower(strings.TrimSpace(r.Protocol))
		if r.Protocol == "" {
			r.Protocol = ProtoAny
		}
		if r.CIDR.IsValid() {
			r.CIDR = r.CIDR.Masked()
		}
		r.Host = NormalizeHost(r.Host)
	}
	for i, rt := range p.Routes {
		p.Routes[i] = rt.Masked()
	}
	p.Groups = sortedUnique(p.Groups)
	p.Users = sortedUnique(p.Users)
}

func sortedUnique(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// Validate checks a normalized profile against the client address pools
// (IPv4 and, when dual-stack, IPv6; zero prefixes are skipped), naming
// the first bad field.
func (p *Profile) Validate(pools ...netip.Prefix) error {
	if err := ValidName(p.Name); err != nil {
		return err
	}
	bad := func(field, format string, args ...any) error {
		return &FieldError{Profile: p.Name, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if len(p.Description) > 1024 {
		return bad("description", "longer than 1024 characters")
	}
	if len(p.Rules) == 0 {
		return bad("rules", "at least one rule is required")
	}
	if len(p.Rules) > MaxRulesPerProfile {
		return bad("rules", "more than %d rules", MaxRulesPerProfile)
	}
	checkNet := func(field string, n netip.Prefix) error {
		if n.Addr().Is4In6() {
			return bad(field, "%s mixes families (an IPv4-mapped IPv6 prefix): write the IPv4 or the IPv6 network", n)
		}
		for _, pool := range pools {
			if pool.IsValid() && n.Overlaps(pool) {
				return bad(field, "%s overlaps the client address pool %s", n, pool)
			}
		}
		return nil
	}
	hosts := false
	for i, r := range p.Rules {
		field := fmt.Sprintf("rules[%d]", i)
		switch {
		case r.CIDR.IsValid() && r.Host != "":
			return bad(field, "set cidr or host, not both")
		case r.Host != "":
			if err := validHost(r.Host); err != nil {
				return bad(field+".host", "%v", err)
			}
			hosts = true
		case !r.CIDR.IsValid():
			return bad(field+".cidr", "missing or not a CIDR (or give host)")
		}
		if r.CIDR.IsValid() {
			if err := checkNet(field+".cidr", r.CIDR); err != nil {
				return err
			}
		}
		switch r.Protocol {
		case ProtoTCP, ProtoUDP:
		case ProtoICMP, ProtoAny:
			if len(r.Ports) > 0 {
				return bad(field+".ports", "ports only apply to tcp and udp, not %s", r.Protocol)
			}
		default:
			return bad(field+".protocol", "unknown protocol %q (want tcp, udp, icmp or any)", r.Protocol)
		}
		for j, pr := range r.Ports {
			if pr.From == 0 || pr.To < pr.From {
				return bad(fmt.Sprintf("%s.ports[%d]", field, j), "port range %s out of range 1-65535", pr)
			}
		}
	}
	for i, rt := range p.Routes {
		if !rt.IsValid() {
			return bad(fmt.Sprintf("routes[%d]", i), "not a CIDR")
		}
		if err := checkNet(fmt.Sprintf("routes[%d]", i), rt); err != nil {
			return err
		}
	}
	if hosts && !p.FullTunnel && len(p.Routes) == 0 {
		return bad("routes", "host rules need routes (the networks their addresses live in) or full_tunnel")
	}
	for i, a := range p.DNS {
		if !a.IsValid() {
			return bad(fmt.Sprintf("dns[%d]", i), "not an IP address")
		}
	}
	for i, d := range p.SearchDomains {
		if !domainPattern.MatchString(d) || len(d) > 253 {
			return bad(fmt.Sprintf("search_domains[%d]", i), "%q is not a domain name", d)
		}
	}
	if p.MaxSession < 5*time.Minute || p.MaxSession > 30*24*time.Hour {
		return bad("max_session", "%s out of range 5m to 720h", p.MaxSession)
	}
	if p.MaxDevices < 1 || p.MaxDevices > 100 {
		return bad("max_devices", "%d out of range 1-100", p.MaxDevices)
	}
	for i, g := range p.Groups {
		if g == "" || len(g) > 256 {
			return bad(fmt.Sprintf("groups[%d]", i), "empty or longer than 256 characters")
		}
	}
	for i, u := range p.Users {
		if u == "" || len(u) > 512 {
			return bad(fmt.Sprintf("users[%d]", i), "empty or longer than 512 characters")
		}
	}
	return nil
}

// AssignedTo reports whether the profile is assigned to id, and how:
// "user" (users names the user ID), "group <g>", or "email" (users names
// the email address, which counts only when byEmail is set, the operator's
// opt-in, and the identity provider said the email is verified). An email
// is a claim any account can make; only a verified one identifies.
func (p *Profile) AssignedTo(id authn.Identity, byEmail bool) (via string, ok bool) {
	for _, u := range p.Users {
		if u == id.UserID {
			return "user", true
		}
	}
	for _, g := range id.Groups {
		if slices.Contains(p.Groups, g) {
			return "group " + g, true
		}
	}
	if byEmail && id.EmailVerified && id.Email != "" {
		for _, u := range p.Users {
			if strings.Contains(u, "@") && strings.EqualFold(u, id.Email) {
				return "email", true
			}
		}
	}
	return "", false
}

// AllowedIPs returns what the client routes into the tunnel: the union of
// the rule CIDRs and routes (split tunnel, merged and sorted) or
// everything (full: IPv4, and IPv6 too when dual stack).
func (p *Profile) AllowedIPs(dualStack bool) []netip.Prefix {
	if p.FullTunnel {
		out := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
		if dualStack {
			out = append(out, netip.MustParsePrefix("::/0"))
		}
		return out
	}
	var out []netip.Prefix
	for _, r := range p.Rules {
		if r.CIDR.IsValid() {
			out = append(out, r.CIDR)
		}
	}
	out = append(out, p.Routes...)
	return mergePrefixes(out)
}

// mergePrefixes removes prefixes covered by others and sorts the rest.
func mergePrefixes(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var out []netip.Prefix
	for _, p := range ps {
		if len(out) > 0 {
			last := out[len(out)-1]
			if last.Bits() <= p.Bits() && last.Contains(p.Addr()) {
				continue
			}
		}
		out = append(out, p)
	}
	return out
}
