package tunnel

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ferryvpn/ferry/profiles"
)

// TestCompileHosts checks the host pieces against the rules themselves:
// pieces are disjoint, and a (protocol, port) lies in a piece naming rule
// i exactly when rule i admits it (the fast structure against a slow
// reference, as wireguard-go's allowedips_rand_test does).
func TestCompileHosts(t *testing.T) {
	pr := func(a, b uint16) profiles.PortRange { return profiles.PortRange{From: a, To: b} }
	cases := []struct {
		name  string
		rules []profiles.Rule
	}{
		{"one port", []profiles.Rule{{Host: "db.prod.internal", Protocol: "tcp", Ports: []profiles.PortRange{pr(5432, 5432)}}}},
		{"overlapping ports and protocols", []profiles.Rule{
			{Host: "db.prod.internal", Protocol: "tcp", Ports: []profiles.PortRange{pr(5000, 6000), pr(22, 22)}},
			{Host: "*.prod.internal", Protocol: "tcp", Ports: []profiles.PortRange{pr(5432, 8000)}},
			{Host: "*.prod.internal", Protocol: "icmp"},
			{CIDR: netip.MustParsePrefix("10.0.0.0/8"), Protocol: "tcp"},
		}},
		{"any over ports", []profiles.Rule{
			{Host: "a.example.com", Protocol: "udp", Ports: []profiles.PortRange{pr(53, 53)}},
			{Host: "b.example.com", Protocol: "any"},
			{Host: "c.example.com", Protocol: "tcp"},
		}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, v4 := range []bool{true, false} {
				pieces := compileHosts(tc.rules, v4)
				dst := netip.MustParseAddr("10.1.2.3")
				if !v4 {
					dst = netip.MustParseAddr("fd00::3")
				}
				points := [][2]int{{6, 5432}, {6, 22}, {6, 0}, {6, 65535}, {17, 53}, {1, 0}, {58, 0}, {0, 0}, {255, 65535}}
				for range 3000 {
					points = append(points, [2]int{rng.IntN(256), rng.IntN(65536)})
				}
				for _, pt := range points {
					proto, port := uint8(pt[0]), uint16(pt[1])
					var in []int
					for _, p := range pieces {
						s := p.svc
						if s.ProtoFrom <= proto && proto <= s.ProtoTo && s.PortFrom <= port && port <= s.PortTo {
							if in != nil {
								t.Fatalf("v4=%v: (%d, %d) in two pieces", v4, proto, port)
							}
							in = p.rules
						}
					}
					var want []int
					for i, r := range tc.rules {
						if r.Host == "" {
							continue
						}
						pol := policy{Rules: []profiles.Rule{r}}
						pol.Rules[0].Host = "x.example.com"
						if _, ok := pol.hostRuleAdmits("x.example.com", dst, proto, port); ok && (proto == protoTCP || proto == protoUDP || port == 0) {
							want = append(want, i)
						}
					}
					if proto != protoTCP && proto != protoUDP && port != 0 {
						continue // looked up with port 0
					}
					if !slices.Equal(in, want) {
						t.Fatalf("v4=%v: (%d, %d) covered by rules %v, want %v", v4, proto, port, in, want)
					}
				}
			}
		})
	}
}

// TestAnswersFor checks which records of an upstream answer grant: the
// queried name's A/AAAA and those down its CNAME chain, never records of
// other names; TTLs are capped in the answer too.
func TestAnswersFor(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("db.prod.internal.", dns.TypeA)
	hdr := func(name string, typ uint16, ttl uint32) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: ttl}
	}
	m.Answer = []dns.RR{
		&dns.CNAME{Hdr: hdr("DB.prod.internal.", dns.TypeCNAME, 30), Target: "rds-1.aws.example."},
		&dns.A{Hdr: hdr("rds-1.aws.example.", dns.TypeA, 5), A: net.ParseIP("10.0.5.7")},
		&dns.AAAA{Hdr: hdr("rds-1.aws.example.", dns.TypeAAAA, 9000), AAAA: net.ParseIP("fd00::57")},
		&dns.A{Hdr: hdr("evil.example.", dns.TypeA, 60), A: net.ParseIP("10.9.9.9")},
	}
	got := answersFor(m, "db.prod.internal.", time.Minute)
	want := []answer{{netip.MustParseAddr("10.0.5.7"), 5 * time.Second}, {netip.MustParseAddr("fd00::57"), time.Minute}}
	if !slices.Equal(got, want) {
		t.Fatalf("answersFor = %v, want %v", got, want)
	}
	if ttl := m.Answer[2].Header().Ttl; ttl != 60 {
		t.Errorf("AAAA TTL in the answer %d, want capped to 60", ttl)
	}
}

func TestLineBoxes(t *testing.T) {
	for _, tc := range []struct {
		lo, hi uint32
		want   []svc
	}{
		{6<<16 | 22, 6<<16 | 22, []svc{{6, 6, 22, 22}}},
		{0, 255<<16 | 65535, []svc{{0, 255, 0, 65535}}},
		{6<<16 | 100, 17<<16 | 52, []svc{{6, 6, 100, 65535}, {7, 16, 0, 65535}, {17, 17, 0, 52}}},
		{6<<16 | 100, 7<<16 | 65535, []svc{{6, 6, 100, 65535}, {7, 7, 0, 65535}}},
		{6 << 16, 7<<16 | 5, []svc{{6, 6, 0, 65535}, {7, 7, 0, 5}}},
	} {
		if got := lineBoxes(tc.lo, tc.hi); !slices.Equal(got, tc.want) {
			t.Errorf("lineBoxes(%x, %x) = %v, want %v", tc.lo, tc.hi, got, tc.want)
		}
	}
}
