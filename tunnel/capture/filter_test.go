package capture

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// pkt4 builds an IPv4 packet with a transport header carrying ports.
func pkt4(src, dst string, proto uint8, sport, dport uint16, frag uint16) []byte {
	b := make([]byte, 20+8)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = 64
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	return b
}

func pkt6(src, dst string, nh uint8, sport, dport uint16) []byte {
	b := make([]byte, 40+8)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], 8)
	b[6] = nh
	b[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	binary.BigEndian.PutUint16(b[40:], sport)
	binary.BigEndian.PutUint16(b[42:], dport)
	return b
}

func TestFilterMatches(t *testing.T) {
	client := netip.MustParseAddr("10.99.0.2")
	client6 := netip.MustParseAddr("fd00:99::2")
	clients := []netip.Addr{client, client6}
	web := pkt4("10.99.0.2", "10.1.0.5", 6, 40000, 443, 0)
	dns := pkt4("10.1.0.53", "10.99.0.2", 17, 53, 40001, 0)
	ping := pkt4("10.99.0.2", "10.1.0.5", 1, 0, 0, 0)
	frag := pkt4("10.99.0.2", "10.1.0.5", 6, 40000, 443, 5) // offset 5: no ports
	other := pkt4("10.99.0.3", "10.1.0.5", 6, 40000, 443, 0)
	web6 := pkt6("fd00:99::2", "fd00:1::5", 6, 40000, 443)
	other6 := pkt6("fd00:99::3", "fd00:1::5", 6, 40000, 443)
	all := map[string][]byte{"web": web, "dns": dns, "ping": ping, "frag": frag, "other": other, "web6": web6, "other6": other6}
	tests := []struct {
		name, expr string
		want       []string
	}{
		{"empty filter keeps only the clients", "", []string{"web", "dns", "ping", "frag", "web6"}},
		{"tcp", "tcp", []string{"web", "frag", "web6"}},
		{"port either side", "port 53", []string{"dns"}},
		{"dst port", "dst port 443", []string{"web", "web6"}},
		{"src port misses", "src port 443", nil},
		{"host", "host 10.1.0.5", []string{"web", "ping", "frag"}},
		{"src host", "src host 10.1.0.53", []string{"dns"}},
		{"net", "dst net 10.1.0.0/16", []string{"web", "ping", "frag"}},
		{"net6", "net fd00:1::/32", []string{"web6"}},
		{"host6", "dst host fd00:1::5", []string{"web6"}},
		{"not", "not tcp", []string{"dns", "ping"}},
		{"and or parens", "(udp or icmp) and host 10.1.0.5", []string{"ping"}},
		{"symbols", "!tcp && (port 53 || proto 1)", []string{"dns", "ping"}},
		{"proto number", "proto 17", []string{"dns"}},
		{"families", "ip6", []string{"web6"}},
		{"ip", "ip and not udp", []string{"web", "ping", "frag"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CompileFilter(tt.expr, clients)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for _, w := range tt.want {
				want[w] = true
			}
			for name, p := range all {
				if got := f.Match(p); got != want[name] {
					t.Errorf("%q on %s: match %v, want %v", tt.expr, name, got, want[name])
				}
			}
		})
	}
}

func TestFilterNoClientsMatchesNothing(t *testing.T) {
	f, err := CompileFilter("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Match(pkt4("10.99.0.2", "10.1.0.5", 6, 1, 2, 0)) {
		t.Fatal("a filter without clients matched")
	}
}

func TestFilterRefusals(t *testing.T) {
	for _, expr := range []string{
		"host example.com", "port http", "len > 100", "tcp[13] & 2 != 0", "(tcp", "tcp and", "vlan",
		"gateway 10.0.0.1", "proto 300", "src", "net 10.0.0.0/33", "ether host 00:11:22:33:44:55",
	} {
		if err := CheckFilter(expr); !errors.Is(err, ErrFilter) {
			t.Errorf("%q: err %v, want ErrFilter", expr, err)
		}
	}
	deep := ""
	for range 40 {
		deep += "("
	}
	if err := CheckFilter(deep + "tcp"); !errors.Is(err, ErrFilter) {
		t.Errorf("deep nesting: %v", err)
	}
}

func FuzzFilter(f *testing.F) {
	for _, s := range []string{"tcp and port 443", "not (host 10.0.0.1 or net fd00::/8)", "!udp||icmp"} {
		f.Add(s)
	}
	pkt := pkt4("10.99.0.2", "10.1.0.5", 6, 40000, 443, 0)
	f.Fuzz(func(t *testing.T, expr string) {
		flt, err := CompileFilter(expr, []netip.Addr{netip.MustParseAddr("10.99.0.2")})
		if err != nil {
			return
		}
		flt.Match(pkt)
		flt.Match(pkt[:3])
	})
}
