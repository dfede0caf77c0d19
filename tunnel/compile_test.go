package tunnel

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/ferryvpn/ferry/profiles"
)

func pr(from, to uint16) profiles.PortRange { return profiles.PortRange{From: from, To: to} }

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestCompile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []profiles.Rule
		want  []box
	}{
		{
			name:  "single port",
			rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.0.0.5/32"), Protocol: "tcp", Ports: []profiles.PortRange{pr(443, 443)}}},
			want:  []box{{ip("10.0.0.5"), ip("10.0.0.5"), protoTCP, protoTCP, 443, 443}},
		},
		{
			name:  "port ranges merged when they overlap or touch",
			rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.0.0.0/24"), Protocol: "udp", Ports: []profiles.PortRange{pr(1000, 2000), pr(2001, 2100), pr(1500, 1600), pr(53, 53)}}},
			want: []box{
				{ip("10.0.0.0"), ip("10.0.0.255"), protoUDP, protoUDP, 53, 53},
				{ip("10.0.0.0"), ip("10.0.0.255"), protoUDP, protoUDP, 1000, 2100},
			},
		},
		{
			name:  "no ports means every port",
			rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.0.0.0/8"), Protocol: "tcp"}},
			want:  []box{{ip("10.0.0.0"), ip("10.255.255.255"), protoTCP, protoTCP, 0, 65535}},
		},
		{
			name:  "icmp is protocol 1 at port 0",
			rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("192.168.1.0/24"), Protocol: "icmp"}},
			want:  []box{{ip("192.168.1.0"), ip("192.168.1.255"), protoICMP, protoICMP, 0, 65535}},
		},
		{
			name: "any absorbs narrower rules at the same addresses",
			rules: []profiles.Rule{
				{CIDR: netip.MustParsePrefix("10.1.0.0/16"), Protocol: "any"},
				{CIDR: netip.MustParsePrefix("10.1.2.0/24"), Protocol: "tcp", Ports: []profiles.PortRange{pr(22, 22)}},
			},
			want: []box{{ip("10.1.0.0"), ip("10.1.255.255"), 0, 255, 0, 65535}},
		},
		{
			name: "nested CIDRs split into disjoint pieces",
			rules: []profiles.Rule{
				{CIDR: netip.MustParsePrefix("10.0.0.0/30"), Protocol: "tcp", Ports: []profiles.PortRange{pr(80, 80)}},
				{CIDR: netip.MustParsePrefix("10.0.0.1/32"), Protocol: "tcp", Ports: []profiles.PortRange{pr(22, 22)}},
			},
			want: []box{
				{ip("10.0.0.0"), ip("10.0.0.0"), protoTCP, protoTCP, 80, 80},
				{ip("10.0.0.1"), ip("10.0.0.1"), protoTCP, protoTCP, 22, 22},
				{ip("10.0.0.1"), ip("10.0.0.1"), protoTCP, protoTCP, 80, 80},
				{ip("10.0.0.2"), ip("10.0.0.3"), protoTCP, protoTCP, 80, 80},
			},
		},
		{
			name: "adjacent CIDRs with the same services joined",
			rules: []profiles.Rule{
				{CIDR: netip.MustParsePrefix("10.0.0.0/25"), Protocol: "udp", Ports: []profiles.PortRange{pr(53, 53)}},
				{CIDR: netip.MustParsePrefix("10.0.0.128/25"), Protocol: "udp", Ports: []profiles.PortRange{pr(53, 53)}},
			},
			want: []box{{ip("10.0.0.0"), ip("10.0.0.255"), protoUDP, protoUDP, 53, 53}},
		},
		{
			name:  "everything",
			rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("0.0.0.0/0"), Protocol: "any"}},
			want:  []box{{ip("0.0.0.0"), ip("255.255.255.255"), 0, 255, 0, 65535}},
		},
		{
			name: "both families, each in its own boxes",
			rules: []profiles.Rule{
				{CIDR: netip.MustParsePrefix("fd10::/64"), Protocol: "tcp", Ports: []profiles.PortRange{pr(443, 443)}},
				{CIDR: netip.MustParsePrefix("10.0.0.0/24"), Protocol: "tcp", Ports: []profiles.PortRange{pr(443, 443)}},
				{CIDR: netip.MustParsePrefix("::/0"), Protocol: "icmp"},
				{Host: "db.prod.internal", Protocol: "tcp"},
			},
			want: []box{
				{ip("10.0.0.0"), ip("10.0.0.255"), protoTCP, protoTCP, 443, 443},
				{ip("::"), ip("fd0f:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), protoICMPv6, protoICMPv6, 0, 65535},
				{ip("fd10::"), ip("fd10::ffff:ffff:ffff:ffff"), protoTCP, protoTCP, 443, 443},
				{ip("fd10::"), ip("fd10::ffff:ffff:ffff:ffff"), protoICMPv6, protoICMPv6, 0, 65535},
				{ip("fd10:0:0:1::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), protoICMPv6, protoICMPv6, 0, 65535},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := compile(profiles.Profile{Name: "p", Version: 7, Rules: tc.rules})
			if !slices.Equal(got.Boxes, tc.want) {
				t.Errorf("boxes:\n got %v\nwant %v", got.Boxes, tc.want)
			}
			if got.Version != 7 || got.Name != "p" {
				t.Errorf("name/version %s/%d", got.Name, got.Version)
			}
		})
	}
}

// The compiled boxes are disjoint and decide exactly as the rules do,
// checked against a slow reference on random profiles and packets.
func TestCompileMatchesRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	protos := []string{"tcp", "udp", "icmp", "any"}
	ref := func(rules []profiles.Rule, dst netip.Addr, proto uint8, port uint16) bool {
		for _, r := range rules {
			if !r.CIDR.Contains(dst) {
				continue
			}
			switch r.Protocol {
			case "any":
				return true
			case "icmp":
				if (dst.Is4() && proto == protoICMP) || (dst.Is6() && proto == protoICMPv6) {
					return true
				}
			case "tcp", "udp":
				want := uint8(protoTCP)
				if r.Protocol == "udp" {
					want = protoUDP
				}
				if proto != want {
					continue
				}
				if len(r.Ports) == 0 {
					return true
				}
				for _, p := range r.Ports {
					if p.From <= port && port <= p.To {
						return true
					}
				}
			}
		}
		return false
	}
	for iter := 0; iter < 200; iter++ {
		var rules []profiles.Rule
		for i := 0; i < 1+rng.IntN(8); i++ {
			a := netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(4)), byte(rng.IntN(256))})
			bits := 22 + rng.IntN(11)
			if rng.IntN(2) == 0 {
				a = netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x10, 14: byte(rng.IntN(4)), 15: byte(rng.IntN(256))})
				bits += 96
			}
			r := profiles.Rule{CIDR: netip.PrefixFrom(a, bits).Masked(), Protocol: protos[rng.IntN(len(protos))]}
			if (r.Protocol == "tcp" || r.Protocol == "udp") && rng.IntN(3) > 0 {
				for j := 0; j < 1+rng.IntN(3); j++ {
					from := uint16(1 + rng.IntN(100))
					r.Ports = append(r.Ports, pr(from, from+uint16(rng.IntN(20))))
				}
			}
			rules = append(rules, r)
		}
		pol := compile(profiles.Profile{Name: "r", Rules: rules})
		for i := 1; i < len(pol.Boxes); i++ {
			for j := 0; j < i; j++ {
				a, b := pol.Boxes[i], pol.Boxes[j]
				if a.AddrFrom.Compare(b.AddrTo) <= 0 && b.AddrFrom.Compare(a.AddrTo) <= 0 && a.ProtoFrom <= b.ProtoTo && b.ProtoFrom <= a.ProtoTo &&
					a.PortFrom <= b.PortTo && b.PortFrom <= a.PortTo {
					t.Fatalf("boxes overlap: %v and %v (rules %v)", a, b, rules)
				}
			}
		}
		for k := 0; k < 300; k++ {
			dst := netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(5)), byte(rng.IntN(256))})
			if rng.IntN(2) == 0 {
				dst = netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x10, 14: byte(rng.IntN(5)), 15: byte(rng.IntN(256))})
			}
			proto := []uint8{protoTCP, protoUDP, protoICMP, protoICMPv6, 47}[rng.IntN(5)]
			port := uint16(rng.IntN(130))
			if got, want := pol.allows(dst, proto, port), ref(rules, dst, proto, port); got != want {
				t.Fatalf("%s proto %d port %d: compiled %v, rules %v (%v)", dst, proto, port, got, want, rules)
			}
		}
	}
}

func TestBoxKeyLayout(t *testing.T) {
	start, end := box{ip("10.1.2.3"), ip("10.1.2.9"), protoTCP, protoTCP, 443, 8443}.key()
	wantStart := []byte{10, 1, 2, 3, protoTCP, 0, 0, 0, 0x01, 0xbb, 0, 0}
	wantEnd := []byte{10, 1, 2, 9, protoTCP, 0, 0, 0, 0x20, 0xfb, 0, 0}
	if !slices.Equal(start, wantStart) || !slices.Equal(end, wantEnd) {
		t.Fatalf("keys %v %v, want %v %v", start, end, wantStart, wantEnd)
	}
	start, _ = box{ip("fd10::1"), ip("fd10::9"), protoUDP, protoUDP, 53, 53}.key()
	want6 := []byte{0xfd, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, protoUDP, 0, 0, 0, 0, 53, 0, 0}
	if !slices.Equal(start, want6) {
		t.Fatalf("IPv6 key %v, want %v", start, want6)
	}
}
