package tunnel

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/ferryvpn/ferry/profiles"
)

// IP protocol numbers the compiler knows by name.
const (
	protoICMP   = 1
	protoICMPv6 = 58
	protoTCP    = 6
	protoUDP    = 17
)

// box is one element of a profile's concatenated interval set: every
// (destination, protocol, port) with each field inside its inclusive
// range. Packets of protocols without ports are looked up with port 0. A
// box's addresses are of one family; IPv4 and IPv6 boxes go to separate
// sets.
type box struct {
	AddrFrom, AddrTo   netip.Addr
	ProtoFrom, ProtoTo uint8
	PortFrom, PortTo   uint16
}

// key returns the set element's start and end keys: each field in network
// byte order, padded to 4 bytes, as nftables lays out concatenations
// (4+4+4 bytes for IPv4, 16+4+4 for IPv6).
func (b box) key() (start, end []byte) {
	enc := func(addr netip.Addr, proto uint8, port uint16) []byte {
		a := addr.AsSlice()
		k := make([]byte, len(a)+8)
		copy(k, a)
		k[len(a)] = proto
		binary.BigEndian.PutUint16(k[len(a)+4:], port)
		return k
	}
	return enc(b.AddrFrom, b.ProtoFrom, b.PortFrom), enc(b.AddrTo, b.ProtoTo, b.PortTo)
}

// allows reports whether the box admits a packet.
func (b box) allows(addr netip.Addr, proto uint8, port uint16) bool {
	return b.AddrFrom.Compare(addr) <= 0 && addr.Compare(b.AddrTo) <= 0 && b.ProtoFrom <= proto && proto <= b.ProtoTo &&
		b.PortFrom <= port && port <= b.PortTo
}

// policy is a profile compiled for the data plane: disjoint boxes, sorted
// (IPv4 before IPv6).
type policy struct {
	Name    string
	Version uint64
	Boxes   []box
	// Rules are the profile's rules, to name the one that admitted a flow.
	Rules []profiles.Rule
	// Hosts4 and Hosts6 are the shapes of the elements a DNS answer
	// grants for the profile's host rules (hostpieces.go).
	Hosts4, Hosts6 []hostPiece
	// Domains are the profile's search domains and host rules' domains,
	// and DNS its own resolvers: the forwarder's split DNS.
	Domains []string
	DNS     []netip.Addr
}

// family returns the boxes of one family (4 or 6); Boxes is sorted, so
// they are contiguous.
func (p *policy) family(v int) []box {
	i := slices.IndexFunc(p.Boxes, func(b box) bool { return b.AddrFrom.Is6() })
	if i < 0 {
		i = len(p.Boxes)
	}
	if v == 4 {
		return p.Boxes[:i]
	}
	return p.Boxes[i:]
}

// allows reports whether the policy admits a new connection to dst with
// proto and (for tcp and udp) dport, the way the kernel rules decide.
func (p *policy) allows(dst netip.Addr, proto uint8, dport uint16) bool {
	if proto != protoTCP && proto != protoUDP {
		dport = 0
	}
	dst = dst.Unmap()
	for _, b := range p.Boxes {
		if b.allows(dst, proto, dport) {
			return true
		}
	}
	return false
}

// svc is what one rule allows at an address: a protocol range and a port
// range.
type svc struct {
	ProtoFrom, ProtoTo uint8
	PortFrom, PortTo   uint16
}

// ruleServices turns a rule into protocol and port ranges; "icmp" means
// ICMPv6 for IPv6 destinations.
func ruleServices(r profiles.Rule, v4 bool) []svc {
	switch r.Protocol {
	case profiles.ProtoAny, "":
		return []svc{{0, 255, 0, 65535}}
	case profiles.ProtoICMP:
		if !v4 {
			return []svc{{protoICMPv6, protoICMPv6, 0, 65535}}
		}
		return []svc{{protoICMP, protoICMP, 0, 65535}}
	}
	p := uint8(protoTCP)
	if r.Protocol == profiles.ProtoUDP {
		p = protoUDP
	}
	if len(r.Ports) == 0 {
		return []svc{{p, p, 0, 65535}}
	}
	out := make([]svc, 0, len(r.Ports))
	for _, pr := range r.Ports {
		out = append(out, svc{p, p, pr.From, pr.To})
	}
	return out
}

// compile turns a profile's rules into disjoint boxes: the address space
// of each family is cut at every rule boundary, each piece gets the union
// of the services of the rules covering it (merged), and neighbouring
// pieces with the same services are joined again. Interval sets refuse
// overlapping elements, and fewer elements make smaller sets. Host rules
// are not compiled: their addresses are granted per client at answer
// time by the DNS forwarder.
func compile(p profiles.Profile) policy {
	var out []box
	for _, v4 := range []bool{true, false} {
		out = append(out, compileFamily(p.Rules, v4)...)
	}
	slices.SortFunc(out, func(a, b box) int {
		return cmp.Or(a.AddrFrom.Compare(b.AddrFrom), cmp.Compare(a.ProtoFrom, b.ProtoFrom), cmp.Compare(a.PortFrom, b.PortFrom))
	})
	return policy{Name: p.Name, Version: p.Version, Boxes: out, Rules: p.Rules,
		Hosts4: compileHosts(p.Rules, true), Hosts6: compileHosts(p.Rules, false), Domains: hostDomains(p), DNS: p.DNS}
}

// cut is the start of a piece of address space; end marks the point past
// the family's last address.
type cut struct {
	a   netip.Addr
	end bool
}

func (c cut) compare(d cut) int {
	if c.end || d.end {
		switch {
		case c.end && d.end:
			return 0
		case c.end:
			return 1
		}
		return -1
	}
	return c.a.Compare(d.a)
}

// after returns the cut just past a.
func after(a netip.Addr) cut {
	n := a.Next()
	if !n.IsValid() || n.Is4() != a.Is4() {
		return cut{end: true}
	}
	return cut{a: n}
}

func compileFamily(rules []profiles.Rule, v4 bool) []box {
	type rng struct {
		from, to netip.Addr
		svcs     []svc
	}
	var rs []rng
	var cuts []cut
	for _, r := range rules {
		if !r.CIDR.IsValid() || r.CIDR.Addr().Is4() != v4 || r.CIDR.Addr().Is4In6() {
			continue
		}
		from, to := prefixRange(r.CIDR.Masked())
		rs = append(rs, rng{from, to, ruleServices(r, v4)})
		cuts = append(cuts, cut{a: from}, after(to))
	}
	slices.SortFunc(cuts, cut.compare)
	cuts = slices.CompactFunc(cuts, func(a, b cut) bool { return a.compare(b) == 0 })
	slices.SortFunc(rs, func(a, b rng) int { return a.from.Compare(b.from) })

	var out []box
	var prev []svc
	var prevFrom, prevTo netip.Addr
	havePrev := false
	flush := func() {
		if !havePrev {
			return
		}
		for _, s := range prev {
			out = append(out, box{prevFrom, prevTo, s.ProtoFrom, s.ProtoTo, s.PortFrom, s.PortTo})
		}
		havePrev = false
	}
	// active holds the rules covering the current piece; rules are sorted by
	// start, so a cursor adds them and a filter drops the finished ones.
	var active []rng
	next := 0
	for i := 0; i+1 < len(cuts); i++ {
		lo, hi := cuts[i].a, lastBefore(cuts[i+1], v4)
		for next < len(rs) && rs[next].from.Compare(lo) <= 0 {
			active = append(active, rs[next])
			next++
		}
		active = slices.DeleteFunc(active, func(r rng) bool { return r.to.Less(lo) })
		var svcs []svc
		for _, r := range active {
			svcs = append(svcs, r.svcs...)
		}
		svcs = mergeServices(svcs)
		if len(svcs) == 0 {
			flush()
			continue
		}
		if havePrev && prevTo.Next() == lo && slices.Equal(prev, svcs) {
			prevTo = hi
			continue
		}
		flush()
		prev, prevFrom, prevTo, havePrev = svcs, lo, hi, true
	}
	flush()
	return out
}

// lastBefore returns the address just before c.
func lastBefore(c cut, v4 bool) netip.Addr {
	if !c.end {
		return c.a.Prev()
	}
	if v4 {
		return netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	return netip.AddrFrom16([16]byte{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff,
		8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff})
}

// mergeServices returns disjoint services covering the same
// (protocol, port) pairs: "any" absorbs everything, then port ranges of the
// same protocol are merged where they overlap or touch.
func mergeServices(in []svc) []svc {
	if len(in) == 0 {
		return nil
	}
	// Expand protocol ranges other than "all" into single protocols; only
	// "any" produces a range, and it covers everything.
	for _, s := range in {
		if s.ProtoFrom == 0 && s.ProtoTo == 255 {
			return []svc{{0, 255, 0, 65535}}
		}
	}
	s := slices.Clone(in)
	slices.SortFunc(s, func(a, b svc) int {
		return cmp.Or(cmp.Compare(a.ProtoFrom, b.ProtoFrom), cmp.Compare(a.PortFrom, b.PortFrom))
	})
	out := []svc{s[0]}
	for _, x := range s[1:] {
		last := &out[len(out)-1]
		if x.ProtoFrom == last.ProtoFrom && uint32(x.PortFrom) <= uint32(last.PortTo)+1 {
			last.PortTo = max(last.PortTo, x.PortTo)
			continue
		}
		out = append(out, x)
	}
	return out
}

// prefixRange returns the first and last address of p.
func prefixRange(p netip.Prefix) (netip.Addr, netip.Addr) {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	to, _ := netip.AddrFromSlice(b)
	return p.Addr(), to
}

func addrU32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func u32Addr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
