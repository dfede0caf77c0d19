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
	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17
)

// box is one element of a profile's concatenated interval set: every
// (destination, protocol, port) with each field inside its inclusive
// range. Packets of protocols without ports are looked up with port 0.
type box struct {
	AddrFrom, AddrTo   uint32
	ProtoFrom, ProtoTo uint8
	PortFrom, PortTo   uint16
}

// key returns the set element's start and end keys: each field in network
// byte order, padded to 4 bytes, as nftables lays out concatenations.
func (b box) key() (start, end []byte) {
	enc := func(addr uint32, proto uint8, port uint16) []byte {
		k := make([]byte, 12)
		binary.BigEndian.PutUint32(k[0:4], addr)
		k[4] = proto
		binary.BigEndian.PutUint16(k[8:10], port)
		return k
	}
	return enc(b.AddrFrom, b.ProtoFrom, b.PortFrom), enc(b.AddrTo, b.ProtoTo, b.PortTo)
}

// allows reports whether the box admits a packet.
func (b box) allows(addr uint32, proto uint8, port uint16) bool {
	return b.AddrFrom <= addr && addr <= b.AddrTo && b.ProtoFrom <= proto && proto <= b.ProtoTo &&
		b.PortFrom <= port && port <= b.PortTo
}

// policy is a profile compiled for the data plane: disjoint boxes, sorted.
type policy struct {
	Name    string
	Version uint64
	Boxes   []box
	// Rules are the profile's rules, to name the one that admitted a flow.
	Rules []profiles.Rule
}

// allows reports whether the policy admits a new connection to dst with
// proto and (for tcp and udp) dport, the way the kernel rules decide.
func (p *policy) allows(dst netip.Addr, proto uint8, dport uint16) bool {
	if proto != protoTCP && proto != protoUDP {
		dport = 0
	}
	a := addrU32(dst)
	for _, b := range p.Boxes {
		if b.allows(a, proto, dport) {
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

// ruleServices turns a rule into protocol and port ranges.
func ruleServices(r profiles.Rule) []svc {
	switch r.Protocol {
	case profiles.ProtoAny, "":
		return []svc{{0, 255, 0, 65535}}
	case profiles.ProtoICMP:
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

// compile turns a profile's rules into disjoint boxes: the address space is
// cut at every rule boundary, each piece gets the union of the services of
// the rules covering it (merged), and neighbouring pieces with the same
// services are joined again. Interval sets refuse overlapping elements, and
// fewer elements make smaller sets.
func compile(p profiles.Profile) policy {
	type rng struct {
		from, to uint32
		svcs     []svc
	}
	var rules []rng
	var cuts []uint64 // starts of pieces; uint64 so that to+1 cannot wrap
	for _, r := range p.Rules {
		if !r.CIDR.IsValid() || !r.CIDR.Addr().Is4() {
			continue
		}
		from, to := prefixRange(r.CIDR.Masked())
		rules = append(rules, rng{from, to, ruleServices(r)})
		cuts = append(cuts, uint64(from), uint64(to)+1)
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	slices.SortFunc(rules, func(a, b rng) int { return cmp.Compare(a.from, b.from) })

	var out []box
	var prev []svc
	var prevFrom, prevTo uint64
	havePrev := false
	flush := func() {
		if !havePrev {
			return
		}
		for _, s := range prev {
			out = append(out, box{uint32(prevFrom), uint32(prevTo), s.ProtoFrom, s.ProtoTo, s.PortFrom, s.PortTo})
		}
		havePrev = false
	}
	// active holds the rules covering the current piece; rules are sorted by
	// start, so a cursor adds them and a filter drops the finished ones.
	var active []rng
	next := 0
	for i := 0; i+1 < len(cuts); i++ {
		lo, hi := cuts[i], cuts[i+1]-1
		for next < len(rules) && uint64(rules[next].from) <= lo {
			active = append(active, rules[next])
			next++
		}
		active = slices.DeleteFunc(active, func(r rng) bool { return uint64(r.to) < lo })
		var svcs []svc
		for _, r := range active {
			svcs = append(svcs, r.svcs...)
		}
		svcs = mergeServices(svcs)
		if len(svcs) == 0 {
			flush()
			continue
		}
		if havePrev && prevTo+1 == lo && slices.Equal(prev, svcs) {
			prevTo = hi
			continue
		}
		flush()
		prev, prevFrom, prevTo, havePrev = svcs, lo, hi, true
	}
	flush()
	slices.SortFunc(out, func(a, b box) int {
		return cmp.Or(cmp.Compare(a.AddrFrom, b.AddrFrom), cmp.Compare(a.ProtoFrom, b.ProtoFrom), cmp.Compare(a.PortFrom, b.PortFrom))
	})
	return policy{Name: p.Name, Version: p.Version, Boxes: out, Rules: p.Rules}
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

func prefixRange(p netip.Prefix) (uint32, uint32) {
	from := addrU32(p.Addr())
	if p.Bits() == 0 {
		return 0, ^uint32(0)
	}
	return from, from | (^uint32(0) >> p.Bits())
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
