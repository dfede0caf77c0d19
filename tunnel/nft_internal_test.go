package tunnel

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/profiles"
)

func nftList(t *testing.T, table string) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "inet", table).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table: %v\n%s", err, out)
	}
	return string(out)
}

// The firewall programs the table nft(8) expects: the vmap, one interval
// set per profile, counters, and replaces a profile's set on an edit in one
// batch.
func TestFirewallProgramsTable(t *testing.T) {
	if !inNetns(t) {
		return
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft(8) to inspect the table (apt nftables)")
	}
	fw, err := newNFTFirewall("ferrytest", "wgtest0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	eng := compile(profiles.Profile{Name: "eng", Version: 3, Rules: []profiles.Rule{
		{CIDR: netip.MustParsePrefix("10.1.0.0/16"), Protocol: "tcp", Ports: []profiles.PortRange{{From: 22, To: 22}, {From: 8000, To: 8080}}},
		{CIDR: netip.MustParsePrefix("10.2.0.5/32"), Protocol: "icmp"},
		{CIDR: netip.MustParsePrefix("fd10:1::/64"), Protocol: "tcp", Ports: []profiles.PortRange{{From: 443, To: 443}}},
		{CIDR: netip.MustParsePrefix("fd10:2::5/128"), Protocol: "icmp"},
	}})
	clients := map[netip.Addr]string{}
	for i := 0; i < 2500; i++ {
		a := u32Addr(addrU32(netip.MustParseAddr("100.64.1.0")) + uint32(i))
		clients[a] = "eng"
		clients[profiles.Address6(netip.MustParsePrefix("fd66::/96"), a)] = "eng"
	}
	start := time.Now()
	if err := fw.Apply(fwChange{Reset: true, Policies: []policy{eng}, AddClients: clients}); err != nil {
		t.Fatal(err)
	}
	t.Logf("reset with %d clients: %s", len(clients), time.Since(start))
	out := nftList(t, "ferrytest")
	for _, want := range []string{
		"set s.eng.3", "10.1.0.0/16 . tcp . 22", "10.1.0.0/16 . tcp . 8000-8080", "10.2.0.5 . icmp . 0-65535",
		"100.64.1.7 : jump p.eng", "counter policy", "masquerade",
		"set 6s.eng.3", "fd10:1::/64 . tcp . 443", "fd10:2::5 . ipv6-icmp . 0-65535", "fd66::6440:107 : jump p.eng",
		"ip6 daddr . meta l4proto . tcp dport @6s.eng.3 ct mark set @nh,160,32 accept", "update @denied6 { ip6 saddr . ip6 daddr . meta l4proto . tcp dport counter }",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	eng2 := compile(profiles.Profile{Name: "eng", Version: 4, Rules: []profiles.Rule{
		{CIDR: netip.MustParsePrefix("10.9.0.0/24"), Protocol: "udp", Ports: []profiles.PortRange{{From: 53, To: 53}}},
	}})
	if err := fw.Apply(fwChange{Policies: []policy{eng2}, DelClients: []netip.Addr{netip.MustParseAddr("100.64.1.7"), netip.MustParseAddr("fd66::6440:107")}}); err != nil {
		t.Fatal(err)
	}
	out = nftList(t, "ferrytest")
	if strings.Contains(out, "s.eng.3") || !strings.Contains(out, "10.9.0.0/24 . udp . 53") {
		t.Errorf("edit did not replace the set:\n%s", out)
	}
	if strings.Contains(out, "100.64.1.7 :") || !strings.Contains(out, "100.64.1.8 :") {
		t.Errorf("client removal wrong:\n%s", out)
	}
	if err := fw.Apply(fwChange{RemovedPolicies: []string{"eng"}, DelClients: mapKeys(clients, netip.MustParseAddr("100.64.1.7"), netip.MustParseAddr("fd66::6440:107"))}); err != nil {
		t.Fatal(err)
	}
	out = nftList(t, "ferrytest")
	if strings.Contains(out, "p.eng") || strings.Contains(out, "6s.eng") {
		t.Errorf("profile not removed:\n%s", out)
	}
	if _, err := fw.counters(); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.denied(); err != nil {
		t.Fatal(err)
	}
}

func mapKeys(m map[netip.Addr]string, except ...netip.Addr) []netip.Addr {
	var out []netip.Addr
	for k := range m {
		if !slices.Contains(except, k) {
			out = append(out, k)
		}
	}
	return out
}
