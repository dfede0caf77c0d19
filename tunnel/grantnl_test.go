package tunnel

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ferryvpn/ferry/profiles"
)

// TestElemBatch checks the grant writer's own netlink encoding against
// the kernel, in a network namespace of its own: elements arrive with
// their ranges and timeouts, deletions remove them, a transaction larger
// than one message's element list (2,000 IPv6 elements) is split and
// applies whole, and a transaction with a bad message fails whole (with
// the kernel's error) instead of applying its good part.
func TestElemBatch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace and nftables")
	}
	nsf := anonNetns(t)
	defer nsf.Close()
	c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(int(nsf.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	table := c.AddTable(&nftables.Table{Name: "fgnltest", Family: nftables.TableFamilyINet})
	fw := &nftFirewall{conn: c, table: table}
	set4, set6 := fw.hostsSet(ip4, 0), fw.hostsSet(ip6, 0)
	for _, s := range []*nftables.Set{set4, set6} {
		if err := c.AddSet(s, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	b, err := newElemBatch(table.Name, int(nsf.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	elements := func(s *nftables.Set) []nftables.SetElement {
		t.Helper()
		els, err := c.GetSetElements(s)
		if err != nil {
			t.Fatal(err)
		}
		return els
	}
	client := netip.MustParseAddr("100.64.0.7")
	web, db := svc{protoTCP, protoTCP, 443, 443}, svc{protoTCP, protoTCP, 5000, 5999}
	k1, e1 := grantElem(client, netip.MustParseAddr("10.0.0.1"), web)
	k2, e2 := grantElem(client, netip.MustParseAddr("10.0.0.2"), db)

	b.begin()
	b.add(set4.Name, false, k1, e1, 90*time.Second)
	b.add(set4.Name, false, k2, e2, 30*time.Second)
	if err := b.commit(); err != nil {
		t.Fatalf("adding two elements: %v", err)
	}
	els := elements(set4)
	if len(els) != 2 {
		t.Fatalf("%d elements, want 2: %+v", len(els), els)
	}
	for _, want := range []struct {
		key, end []byte
		timeout  time.Duration
	}{{k1, e1, 90 * time.Second}, {k2, e2, 30 * time.Second}} {
		found := false
		for _, el := range els {
			if bytes.Equal(el.Key, want.key) && bytes.Equal(el.KeyEnd, want.end) {
				found = true
				if el.Timeout != want.timeout {
					t.Errorf("element %x: timeout %v, want %v", want.key, el.Timeout, want.timeout)
				}
			}
		}
		if !found {
			t.Errorf("element %x-%x missing from %+v", want.key, want.end, els)
		}
	}

	// A transaction with one good and one bad message applies nothing.
	b.begin()
	k3, e3 := grantElem(client, netip.MustParseAddr("10.0.0.3"), web)
	b.add(set4.Name, false, k3, e3, time.Minute)
	b.add("no-such-set", false, k3, e3, time.Minute)
	if err := b.commit(); !errors.Is(err, unix.ENOENT) {
		t.Errorf("a transaction naming a missing set: %v, want ENOENT", err)
	}
	if n := len(elements(set4)); n != 2 {
		t.Errorf("after a failed transaction %d elements, want 2 (nothing of it applied)", n)
	}
	// The socket is still usable after the error, and deletions work
	// (the add before the delete, as the writer does).
	b.begin()
	b.add(set4.Name, false, k1, e1, time.Second)
	b.add(set4.Name, true, k1, e1, 0)
	if err := b.commit(); err != nil {
		t.Fatalf("deleting: %v", err)
	}
	if els := elements(set4); len(els) != 1 || !bytes.Equal(els[0].Key, k2) {
		t.Errorf("after deleting one: %+v", els)
	}

	// 2,000 IPv6 elements in one transaction: more than one message.
	client6 := netip.MustParseAddr("fd00::100:64:0:7")
	b.begin()
	for i := range 2000 {
		k, e := grantElem(client6, netip.MustParseAddr(fmt.Sprintf("fd10::%x", i+1)), web)
		b.add(set6.Name, false, k, e, time.Minute)
	}
	msgs := b.msgs
	if err := b.commit(); err != nil {
		t.Fatalf("2,000 IPv6 elements: %v", err)
	}
	if msgs < 2 {
		t.Errorf("2,000 IPv6 elements in %d message(s), want them split", msgs)
	}
	if n := len(elements(set6)); n != 2000 {
		t.Errorf("%d IPv6 elements, want 2000", n)
	}
}

// TestFirewallManyIPv6Rules programs a profile of 3,000 IPv6 rules (each
// its own interval element). An IPv6 element is ~72 bytes in its netlink
// message, so 1,000 of them (the chunk that suits IPv4) overflow the
// 16-bit length of the message's element list and the kernel refuses the
// table (ENOENT): BenchmarkDataPlaneIPv6's 100,000-rule gateway never came
// up.
func TestFirewallManyIPv6Rules(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace and nftables")
	}
	nsf := anonNetns(t)
	defer nsf.Close()
	// The socket buffers of newNFTFirewall.
	c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(int(nsf.Fd())), nftables.WithSockOptions(func(c *netlink.Conn) error {
		if err := c.SetWriteBuffer(64 << 20); err != nil {
			return err
		}
		return c.SetReadBuffer(16 << 20)
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	fw := &nftFirewall{conn: c, table: &nftables.Table{Name: "fmany6", Family: nftables.TableFamilyINet}, iface: "fmany0", sets: map[string]string{}}
	var rules []profiles.Rule
	for i := range 3000 {
		a := netip.AddrFrom16([16]byte{0xfd, 0x72, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)})
		rules = append(rules, profiles.Rule{CIDR: netip.PrefixFrom(a, 128), Protocol: "tcp",
			Ports: []profiles.PortRange{{From: uint16(1000 + i), To: uint16(1000 + i)}}})
	}
	pol := compile(profiles.Profile{Name: "many6", Version: 1, Rules: rules})
	if n := len(pol.family(6)); n < 3000 {
		t.Fatalf("the profile compiled to %d IPv6 elements, want 3,000 or more", n)
	}
	client := netip.MustParseAddr("100.64.0.9")
	if err := fw.Apply(fwChange{Reset: true, Policies: []policy{pol}, AddClients: map[netip.Addr]string{client: "many6"}}); err != nil {
		t.Fatalf("programming 3,000 IPv6 rules: %v", err)
	}
	set := &nftables.Set{Table: fw.table, Name: set6Name(fw.sets["many6"])}
	els, err := c.GetSetElements(set)
	if err != nil {
		t.Fatal(err)
	}
	if len(els) < 3000 {
		t.Errorf("%d IPv6 elements in the kernel, want 3,000 or more", len(els))
	}
}
