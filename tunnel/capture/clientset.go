package capture

import "net/netip"

// clientSet is the captured clients' addresses, for a check of a packet's
// source and destination that costs a few comparisons and no allocation.
type clientSet struct {
	v4 [][4]byte
	v6 [][16]byte
	// m4 and m6 replace the slices when there are many clients (a capture
	// of a whole profile).
	m4 map[[4]byte]struct{}
	m6 map[[16]byte]struct{}
}

// clientSetScan is the most addresses of a family the set compares one by
// one; more go into a map.
const clientSetScan = 8

func newClientSet(clients []netip.Addr) clientSet {
	var s clientSet
	for _, a := range clients {
		a = a.Unmap()
		if a.Is4() {
			s.v4 = append(s.v4, a.As4())
		} else if a.Is6() {
			s.v6 = append(s.v6, a.As16())
		}
	}
	if len(s.v4) > clientSetScan {
		s.m4 = make(map[[4]byte]struct{}, len(s.v4))
		for _, a := range s.v4 {
			s.m4[a] = struct{}{}
		}
		s.v4 = nil
	}
	if len(s.v6) > clientSetScan {
		s.m6 = make(map[[16]byte]struct{}, len(s.v6))
		for _, a := range s.v6 {
			s.m6[a] = struct{}{}
		}
		s.v6 = nil
	}
	return s
}

// either reports whether the IP packet pkt comes from or goes to one of
// the clients: whether the filter's program could accept it. Each address
// is read where the packet holds it, as the program reads it (a packet
// truncated after its source address can still match on the source);
// neither IPv4 nor IPv6 is no client's.
func (s *clientSet) either(pkt []byte) bool {
	if len(pkt) == 0 {
		return false
	}
	switch pkt[0] >> 4 {
	case 4:
		return len(pkt) >= 16 && s.has4([4]byte(pkt[12:16])) ||
			len(pkt) >= 20 && s.has4([4]byte(pkt[16:20]))
	case 6:
		return len(pkt) >= 24 && s.has6([16]byte(pkt[8:24])) ||
			len(pkt) >= 40 && s.has6([16]byte(pkt[24:40]))
	}
	return false
}

func (s *clientSet) has4(a [4]byte) bool {
	if s.m4 != nil {
		_, ok := s.m4[a]
		return ok
	}
	for _, c := range s.v4 {
		if c == a {
			return true
		}
	}
	return false
}

func (s *clientSet) has6(a [16]byte) bool {
	if s.m6 != nil {
		_, ok := s.m6[a]
		return ok
	}
	for _, c := range s.v6 {
		if c == a {
			return true
		}
	}
	return false
}
