package tunnel

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"

	"github.com/ferryvpn/ferry/profiles"
)

// hostPiece is one shape of a host grant's set elements: a (protocol,
// port) box and the profile's host rules that cover it. A profile's pieces
// are disjoint and fixed for its version, so the elements granted to one
// (client, destination) never overlap (interval sets refuse overlaps) and
// a new answer only refreshes their timeouts.
type hostPiece struct {
	svc   svc
	rules []int // indexes into the profile's Rules
}

// compileHosts cuts the (protocol, port) space of the profile's host rules
// of one family into disjoint pieces. The space is a line of
// protocol<<16|port; each piece between two cuts is covered by a fixed set
// of rules, and becomes at most three boxes (a piece spanning protocols
// only arises from "any").
func compileHosts(rules []profiles.Rule, v4 bool) []hostPiece {
	type span struct {
		from, to uint32
		rule     int
	}
	var spans []span
	var cuts []uint32
	for i, r := range rules {
		if r.Host == "" {
			continue
		}
		for _, s := range ruleServices(r, v4) {
			sp := span{uint32(s.ProtoFrom)<<16 | uint32(s.PortFrom), uint32(s.ProtoTo)<<16 | uint32(s.PortTo), i}
			spans = append(spans, sp)
			cuts = append(cuts, sp.from, sp.to+1)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	var out []hostPiece
	for k := 0; k+1 < len(cuts); k++ {
		lo, hi := cuts[k], cuts[k+1]-1
		var covered []int
		for _, sp := range spans {
			if sp.from <= lo && hi <= sp.to {
				covered = append(covered, sp.rule)
			}
		}
		if len(covered) == 0 {
			continue
		}
		slices.Sort(covered)
		covered = slices.Compact(covered)
		for _, s := range lineBoxes(lo, hi) {
			out = append(out, hostPiece{svc: s, rules: covered})
		}
	}
	return out
}

// lineBoxes turns the piece [lo, hi] of the protocol<<16|port line into
// (protocol range, port range) boxes.
func lineBoxes(lo, hi uint32) []svc {
	pl, ph := uint8(lo>>16), uint8(hi>>16)
	a, b := uint16(lo), uint16(hi)
	if pl == ph {
		return []svc{{pl, pl, a, b}}
	}
	var out []svc
	if a != 0 {
		out = append(out, svc{pl, pl, a, 65535})
		pl++
	}
	last := ph
	if b != 65535 {
		last = ph - 1
	}
	if pl <= last {
		out = append(out, svc{pl, last, 0, 65535})
	}
	if b != 65535 {
		out = append(out, svc{ph, ph, 0, b})
	}
	return out
}

// hostRules returns the indexes of the policy's host rules that admit the
// name (any case, with or without the trailing dot).
func (p *policy) hostRules(name string) []int {
	var out []int
	for i, r := range p.Rules {
		if r.Host != "" && profiles.MatchHost(r.Host, name) {
			out = append(out, i)
		}
	}
	return out
}

// inDomains reports whether the name belongs to the profile: a host rule
// admits it, or it lies under one of the profile's search domains or host
// rules' domains. Such names go to the profile's own DNS servers, when it
// has some.
func (p *policy) inDomains(name string) bool {
	name = profiles.NormalizeHost(name)
	if len(p.hostRules(name)) > 0 {
		return true
	}
	for _, d := range p.Domains {
		if name == d || strings.HasSuffix(name, "."+d) {
			return true
		}
	}
	return false
}

// hostDomains returns the profile's search domains and the domains of its
// host rules, lowercase, sorted and unique.
func hostDomains(p profiles.Profile) []string {
	var out []string
	for _, d := range p.SearchDomains {
		out = append(out, profiles.NormalizeHost(d))
	}
	for _, r := range p.Rules {
		if r.Host != "" {
			out = append(out, strings.TrimPrefix(r.Host, "*."))
		}
	}
	slices.SortFunc(out, cmp.Compare)
	return slices.Compact(out)
}

// grantElem returns a host grant's set element keys: client . destination
// . protocol . port, each field padded to 4 bytes.
func grantElem(client, dst netip.Addr, s svc) (start, end []byte) {
	enc := func(proto uint8, port uint16) []byte {
		c, d := client.AsSlice(), dst.AsSlice()
		k := make([]byte, 0, len(c)+len(d)+8)
		k = append(k, c...)
		k = append(k, d...)
		k = append(k, proto, 0, 0, 0)
		k = binary.BigEndian.AppendUint16(k, port)
		return append(k, 0, 0)
	}
	return enc(s.ProtoFrom, s.PortFrom), enc(s.ProtoTo, s.PortTo)
}
