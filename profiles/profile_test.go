package profiles

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var testPool = netip.MustParsePrefix("100.64.0.0/16")

func validProfile() Profile {
	return Profile{
		Name:   "engineering",
		Rules:  []Rule{{CIDR: netip.MustParsePrefix("10.0.0.0/16"), Protocol: "tcp", Ports: []PortRange{{22, 22}, {8000, 8080}}}},
		Routes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	}
}

var testPool6 = netip.MustParsePrefix("fd66:6572:7279::/96")

func TestAddress6(t *testing.T) {
	got := Address6(testPool6, netip.MustParseAddr("100.64.3.7"))
	if want := netip.MustParseAddr("fd66:6572:7279::6440:307"); got != want {
		t.Fatalf("Address6 = %s, want %s", got, want)
	}
	if a := Address6(netip.Prefix{}, netip.MustParseAddr("100.64.3.7")); a.IsValid() {
		t.Fatalf("Address6 without a pool = %s", a)
	}
	for _, bad := range []string{"10.0.0.0/8", "fd00::/120", "fd00::/48", "::ffff:0:0/96"} {
		if ValidPool6(netip.MustParsePrefix(bad)) == nil {
			t.Errorf("ValidPool6(%s) accepted", bad)
		}
	}
}

func TestMatchHost(t *testing.T) {
	for _, tt := range []struct {
		pattern, name string
		want          bool
	}{
		{"db.prod.internal", "DB.Prod.Internal.", true},
		{"db.prod.internal", "x.db.prod.internal", false},
		{"*.svc.example.com", "a.svc.example.com.", true},
		{"*.svc.example.com", "a.b.svc.example.com", true},
		{"*.svc.example.com", "svc.example.com", false},
		{"*.svc.example.com", "evilsvc.example.com", false},
	} {
		if got := MatchHost(tt.pattern, tt.name); got != tt.want {
			t.Errorf("MatchHost(%q, %q) = %v", tt.pattern, tt.name, got)
		}
	}
}

func TestRenderDualStack(t *testing.T) {
	p := Peer{Address: netip.MustParseAddr("100.64.3.7"), Address6: Address6(testPool6, netip.MustParseAddr("100.64.3.7")), Device: "laptop"}
	prof := Profile{Name: "eng", SearchDomains: []string{"prod.internal"}, Rules: []Rule{
		{CIDR: netip.MustParsePrefix("10.0.0.0/16")}, {CIDR: netip.MustParsePrefix("fd10::/64")}, {Host: "db.prod.internal"}},
		Routes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}
	srv := Server{PublicKey: "k", Endpoint: "vpn.example.com:51820",
		Addresses: []netip.Addr{netip.MustParseAddr("100.64.0.1"), Address6(testPool6, netip.MustParseAddr("100.64.0.1"))}, DNS: true}
	conf := RenderConfig(p, prof, srv, "")
	for _, want := range []string{
		"Address = 100.64.3.7/32, fd66:6572:7279::6440:307/128\n",
		"DNS = 100.64.0.1, fd66:6572:7279::6440:1, prod.internal\n",
		"AllowedIPs = 10.0.0.0/16, 10.1.0.0/16, 100.64.0.1/32, fd10::/64, fd66:6572:7279::6440:1/128\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	prof.FullTunnel = true
	if conf := RenderConfig(p, prof, srv, ""); !strings.Contains(conf, "AllowedIPs = 0.0.0.0/0, ::/0\n") {
		t.Errorf("dual-stack full tunnel:\n%s", conf)
	}
	p.Address6 = netip.Addr{}
	if conf := RenderConfig(p, prof, srv, ""); !strings.Contains(conf, "DNS = 100.64.0.1, prod.internal\n") || !strings.Contains(conf, "AllowedIPs = 0.0.0.0/0\n") {
		t.Errorf("IPv4-only peer:\n%s", conf)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*Profile)
		field  string // "" means valid
		reason string
	}{
		{"valid", func(p *Profile) {}, "", ""},
		{"bad name", func(p *Profile) { p.Name = "Bad Name" }, "name", "lowercase"},
		{"empty rules", func(p *Profile) { p.Rules = nil }, "rules", "at least one rule"},
		{"missing cidr", func(p *Profile) { p.Rules[0].CIDR = netip.Prefix{} }, "rules[0].cidr", "not a CIDR"},
		{"ipv6 cidr", func(p *Profile) { p.Rules[0].CIDR = netip.MustParsePrefix("fd00:10::/32") }, "", ""},
		{"mixed families", func(p *Profile) { p.Rules[0].CIDR = netip.MustParsePrefix("::ffff:10.0.0.0/104") }, "rules[0].cidr", "mixes families"},
		{"ipv6 pool overlap", func(p *Profile) { p.Rules[0].CIDR = netip.MustParsePrefix("fd66:6572:7279::/48") }, "rules[0].cidr", "overlaps the client address pool fd66"},
		{"host rule", func(p *Profile) { p.Rules[0].CIDR, p.Rules[0].Host = netip.Prefix{}, "DB.prod.internal." }, "", ""},
		{"wildcard rule", func(p *Profile) { p.Rules[0].CIDR, p.Rules[0].Host = netip.Prefix{}, "*.svc.example.com" }, "", ""},
		{"host and cidr", func(p *Profile) { p.Rules[0].Host = "db.prod.internal" }, "rules[0]", "not both"},
		{"wildcard inside", func(p *Profile) { p.Rules[0].CIDR, p.Rules[0].Host = netip.Prefix{}, "db.*.internal" }, "rules[0].host", "only as the whole first label"},
		{"partial wildcard", func(p *Profile) { p.Rules[0].CIDR, p.Rules[0].Host = netip.Prefix{}, "db*.internal" }, "rules[0].host", "only as the whole first label"},
		{"wildcard too broad", func(p *Profile) { p.Rules[0].CIDR, p.Rules[0].Host = netip.Prefix{}, "*.internal" }, "rules[0].host", "two labels"},
		{"bad host", func(p *Profile) { p.Rules[0].CIDR, p.Rules[0].Host = netip.Prefix{}, "db_prod..internal" }, "rules[0].host", "not a DNS name"},
		{"host is an address", func(p *Profile) { p.Rules[0].CIDR, p.Rules[0].Host = netip.Prefix{}, "10.1.2.3" }, "rules[0].host", "use cidr"},
		{"host rules need routes", func(p *Profile) {
			p.Routes = nil
			p.Rules[0].CIDR, p.Rules[0].Host = netip.Prefix{}, "db.prod.internal"
		}, "routes", "host rules need routes"},
		{"route overlaps pool", func(p *Profile) { p.Routes = []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")} }, "routes[0]", "overlaps"},
		{"pool overlap", func(p *Profile) { p.Rules[0].CIDR = netip.MustParsePrefix("100.64.5.0/24") }, "rules[0].cidr", "overlaps the client address pool"},
		{"unknown protocol", func(p *Profile) { p.Rules[0].Protocol = "sctp" }, "rules[0].protocol", "unknown protocol"},
		{"port zero", func(p *Profile) { p.Rules[0].Ports = []PortRange{{0, 0}} }, "rules[0].ports[0]", "out of range"},
		{"backwards range", func(p *Profile) { p.Rules[0].Ports = []PortRange{{90, 80}} }, "rules[0].ports[0]", "out of range"},
		{"ports on icmp", func(p *Profile) { p.Rules[0].Protocol = "icmp" }, "rules[0].ports", "only apply to tcp and udp"},
		{"bad dns", func(p *Profile) { p.DNS = []netip.Addr{{}} }, "dns[0]", "not an IP"},
		{"bad search domain", func(p *Profile) { p.SearchDomains = []string{"-bad-.example"} }, "search_domains[0]", "not a domain"},
		{"session too long", func(p *Profile) { p.MaxSession = 1000 * time.Hour }, "max_session", "out of range"},
		{"too many devices", func(p *Profile) { p.MaxDevices = 1000 }, "max_devices", "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validProfile()
			tt.edit(&p)
			p.Normalize()
			err := p.Validate(testPool, testPool6)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want a FieldError wrapping ErrInvalid", err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Reason, tt.reason) {
				t.Fatalf("got field %q reason %q, want %q containing %q", fe.Field, fe.Reason, tt.field, tt.reason)
			}
		})
	}
}

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in      string
		want    PortRange
		wantErr bool
	}{
		{"443", PortRange{443, 443}, false},
		{"8000-8080", PortRange{8000, 8080}, false},
		{" 1 - 65535 ", PortRange{1, 65535}, false},
		{"0", PortRange{}, true},
		{"65536", PortRange{}, true},
		{"80-70", PortRange{}, true},
		{"http", PortRange{}, true},
		{"1-2-3", PortRange{}, true},
		{"", PortRange{}, true},
	}
	for _, tt := range tests {
		got, err := ParsePortRange(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestAllowedIPs(t *testing.T) {
	p := Profile{Rules: []Rule{
		{CIDR: netip.MustParsePrefix("10.1.0.0/16")},
		{CIDR: netip.MustParsePrefix("10.1.2.0/24")},
		{CIDR: netip.MustParsePrefix("10.0.0.0/24")},
		{CIDR: netip.MustParsePrefix("10.0.0.0/24")},
	}}
	got := p.AllowedIPs(false)
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("10.1.0.0/16")}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("AllowedIPs = %v, want %v", got, want)
	}
	p.FullTunnel = true
	if got := p.AllowedIPs(false); len(got) != 1 || got[0].String() != "0.0.0.0/0" {
		t.Fatalf("full tunnel AllowedIPs = %v", got)
	}
}

func FuzzParsePortRange(f *testing.F) {
	for _, s := range []string{"443", "1-65535", "0", "-", "99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParsePortRange(s)
		if err == nil && (r.From == 0 || r.To < r.From) {
			t.Fatalf("accepted %q as %v", s, r)
		}
	})
}
