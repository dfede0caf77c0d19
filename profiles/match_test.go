package profiles

import (
	"net/netip"
	"testing"
)

func TestRuleFor(t *testing.T) {
	p := Profile{Rules: []Rule{
		{CIDR: netip.MustParsePrefix("10.0.4.0/24"), Protocol: ProtoTCP, Ports: []PortRange{{From: 5432, To: 5432}, {From: 8000, To: 8080}}},
		{CIDR: netip.MustParsePrefix("10.0.0.0/16"), Protocol: ProtoUDP},
		{CIDR: netip.MustParsePrefix("10.9.0.1/32"), Protocol: ProtoAny},
		{CIDR: netip.MustParsePrefix("10.8.0.0/16"), Protocol: ProtoICMP},
	}}
	for _, tc := range []struct {
		name  string
		dst   string
		proto uint8
		port  uint16
		want  int
	}{
		{"tcp port in list", "10.0.4.17", 6, 5432, 0},
		{"tcp port in range", "10.0.4.17", 6, 8080, 0},
		{"tcp port outside", "10.0.4.17", 6, 22, -1},
		{"udp any port", "10.0.4.17", 17, 53, 1},
		{"any protocol", "10.9.0.1", 47, 0, 2},
		{"icmp", "10.8.1.1", 1, 0, 3},
		{"icmp not tcp", "10.8.1.1", 6, 80, -1},
		{"outside every cidr", "192.168.0.1", 6, 5432, -1},
		{"v4-mapped v6", "::ffff:10.0.4.17", 6, 5432, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := p.RuleFor(netip.MustParseAddr(tc.dst), tc.proto, tc.port)
			if got != tc.want || ok != (tc.want >= 0) {
				t.Errorf("RuleFor = %d, %v; want %d", got, ok, tc.want)
			}
		})
	}
	if s := p.Rules[0].String(); s != "tcp 10.0.4.0/24 5432,8000-8080" {
		t.Errorf("String = %q", s)
	}
}
