package profiles

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Address6 returns the IPv6 address of the client (or server) whose IPv4
// address is v4 in the dual-stack pool pool6: the pool's prefix with v4 in
// its low 32 bits. The mapping is fixed, so every node derives the same
// address without a second allocator, and the data plane marks both
// families of one client with the same 32-bit connection mark. It returns
// the zero Addr when pool6 is not set or v4 is not IPv4.
func Address6(pool6 netip.Prefix, v4 netip.Addr) netip.Addr {
	if !pool6.IsValid() || !v4.Is4() {
		return netip.Addr{}
	}
	b := pool6.Masked().Addr().As16()
	a := v4.As4()
	copy(b[12:], a[:])
	return netip.AddrFrom16(b)
}

// ValidPool6 checks an IPv6 client pool: IPv6 (not IPv4-mapped), with
// room for the IPv4 address in its low 32 bits (/96 or shorter) and no
// shorter than /64.
func ValidPool6(p netip.Prefix) error {
	switch {
	case !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6():
		return errors.New("want an IPv6 prefix such as fd66:6572:7279::/96")
	case p.Bits() < 64 || p.Bits() > 96:
		return fmt.Errorf("%s: want a prefix length from /64 to /96 (the client's IPv4 address fills the low 32 bits)", p)
	}
	return nil
}

// Host rules name a destination by DNS name rather than by address: an
// exact name ("db.prod.internal") or a wildcard of one or more labels
// under a domain ("*.svc.example.com" matches "a.svc.example.com" and
// "a.b.svc.example.com", not "svc.example.com"). Names are compared in
// lowercase without the trailing dot.

// NormalizeHost returns a host rule's canonical form: lowercase, no
// trailing dot.
func NormalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// validHost checks a normalized host rule, saying what is wrong.
func validHost(h string) error {
	name, wild := strings.CutPrefix(h, "*.")
	switch {
	case h == "":
		return errors.New("empty")
	case len(h) > 253:
		return errors.New("longer than 253 characters")
	case strings.Contains(name, "*"):
		return fmt.Errorf("%q: a wildcard is allowed only as the whole first label, as in *.svc.example.com", h)
	case !domainPattern.MatchString(name):
		return fmt.Errorf("%q is not a DNS name (letters, digits and '-' in dot-separated labels)", h)
	case wild && !strings.Contains(name, "."):
		return fmt.Errorf("%q: a wildcard needs at least two labels under it, as in *.svc.example.com", h)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return fmt.Errorf("%q is an address: use cidr", h)
	}
	return nil
}

// MatchHost reports whether the host rule pattern (normalized) admits the
// name (any case, with or without the trailing dot).
func MatchHost(pattern, name string) bool {
	name = NormalizeHost(name)
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return len(name) > len(suffix) && strings.HasSuffix(name, suffix)
	}
	return name == pattern
}
