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
		Name:  "engineering",
		Rules: []Rule{{CIDR: netip.MustParsePrefix("10.0.0.0/16"), Protocol: "tcp", Ports: []PortRange{{22, 22}, {8000, 8080}}}},
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
		{"ipv6 cidr", func(p *Profile) { p.Rules[0].CIDR = netip.MustParsePrefix("fd00::/8") }, "rules[0].cidr", "IPv4"},
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
			err := p.Validate(testPool)
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
	got := p.AllowedIPs()
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("10.1.0.0/16")}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("AllowedIPs = %v, want %v", got, want)
	}
	p.FullTunnel = true
	if got := p.AllowedIPs(); len(got) != 1 || got[0].String() != "0.0.0.0/0" {
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
