package profiles

import (
	"fmt"
	"net/netip"
	"strings"
)

// IP protocol numbers of the protocols a rule can name.
const (
	ipProtoICMP = 1
	ipProtoTCP  = 6
	ipProtoUDP  = 17
)

// Admits reports whether the rule admits a new connection to dst with the
// IP protocol number proto and, for tcp and udp, the destination port.
func (r *Rule) Admits(dst netip.Addr, proto uint8, port uint16) bool {
	if !r.CIDR.Contains(dst.Unmap()) && !r.CIDR.Contains(dst) {
		return false
	}
	switch r.Protocol {
	case ProtoAny, "":
		return true
	case ProtoICMP:
		return proto == ipProtoICMP
	case ProtoTCP:
		if proto != ipProtoTCP {
			return false
		}
	case ProtoUDP:
		if proto != ipProtoUDP {
			return false
		}
	default:
		return false
	}
	if len(r.Ports) == 0 {
		return true
	}
	for _, pr := range r.Ports {
		if pr.From <= port && port <= pr.To {
			return true
		}
	}
	return false
}

// String renders the rule as "tcp 10.0.0.0/24 443,8000-8080" (or with
// the host rule's name in place of the CIDR).
func (r Rule) String() string {
	var b strings.Builder
	proto := r.Protocol
	if proto == "" {
		proto = ProtoAny
	}
	if r.Host != "" {
		fmt.Fprintf(&b, "%s %s", proto, r.Host)
	} else {
		fmt.Fprintf(&b, "%s %s", proto, r.CIDR)
	}
	for i, p := range r.Ports {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// RuleFor returns the index in p.Rules of the first rule that admits a new
// connection to dst with the IP protocol number proto and destination port
// (ignored for protocols without ports), and whether any does. The data
// plane decides the same way: a connection passes if some rule admits it.
func (p *Profile) RuleFor(dst netip.Addr, proto uint8, port uint16) (int, bool) {
	for i := range p.Rules {
		if p.Rules[i].Admits(dst, proto, port) {
			return i, true
		}
	}
	return -1, false
}
