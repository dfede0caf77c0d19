/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

import (
	"math/rand"
	"net/netip"
	"testing"
)

// TestLookupCached checks that a cached lookup answers what Lookup
// answers after every kind of change to the table: an insert of a more
// specific prefix, a remove, a peer's removal, an insert moving a prefix
// to another peer; for both families, and for a cache shared by them.
func TestLookupCached(t *testing.T) {
	var table AllowedIPs
	peers := make([]*Peer, 8)
	for i := range peers {
		peers[i] = &Peer{}
	}
	addrs := []netip.Addr{
		netip.MustParseAddr("10.99.1.7"), netip.MustParseAddr("10.99.1.8"),
		netip.MustParseAddr("fd99:1::7"), netip.MustParseAddr("fd99:1::8"),
	}
	prefixes := []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.99.0.0/16"),
		netip.MustParsePrefix("10.99.1.0/24"), netip.MustParsePrefix("10.99.1.7/32"),
		netip.MustParsePrefix("::/0"), netip.MustParsePrefix("fd99::/16"),
		netip.MustParsePrefix("fd99:1::/64"), netip.MustParsePrefix("fd99:1::7/128"),
	}
	r := rand.New(rand.NewSource(1))
	var c lookupCache
	check := func(step string) {
		t.Helper()
		for range 3 { // the first lookup fills the cache, the next ones use it
			a := addrs[r.Intn(len(addrs))]
			got, want := table.lookupCached(a.AsSlice(), &c), table.Lookup(a.AsSlice())
			if got != want {
				t.Fatalf("%s: lookupCached(%v) = %p, Lookup = %p", step, a, got, want)
			}
			if got2 := table.lookupCached(a.AsSlice(), &c); got2 != want {
				t.Fatalf("%s: cached lookupCached(%v) = %p, Lookup = %p", step, a, got2, want)
			}
		}
	}
	check("empty table")
	for i := range 2000 {
		p := prefixes[r.Intn(len(prefixes))]
		peer := peers[r.Intn(len(peers))]
		switch r.Intn(4) {
		case 0, 1:
			table.Insert(p, peer)
		case 2:
			table.Remove(p, peer)
		case 3:
			table.RemoveByPeer(peer)
		}
		check("step " + string(rune('0'+i%10)))
	}
}

// TestLookupCachedSees checks the cases one by one: an address cached as
// one peer's answers the new owner once the table changes.
func TestLookupCachedSees(t *testing.T) {
	var table AllowedIPs
	a, b := &Peer{}, &Peer{}
	ip := netip.MustParseAddr("fd99:1::7").AsSlice()
	var c lookupCache
	table.Insert(netip.MustParsePrefix("fd99::/16"), a)
	if got := table.lookupCached(ip, &c); got != a {
		t.Fatalf("first lookup = %p, want a %p", got, a)
	}
	table.Insert(netip.MustParsePrefix("fd99:1::7/128"), b)
	if got := table.lookupCached(ip, &c); got != b {
		t.Fatalf("after a more specific insert = %p, want b %p", got, b)
	}
	table.Remove(netip.MustParsePrefix("fd99:1::7/128"), b)
	if got := table.lookupCached(ip, &c); got != a {
		t.Fatalf("after its removal = %p, want a %p", got, a)
	}
	table.RemoveByPeer(a)
	if got := table.lookupCached(ip, &c); got != nil {
		t.Fatalf("after the peer's removal = %p, want nil", got)
	}
}

// BenchmarkLookupThousandPeers looks up one peer's addresses in a table of
// 1,000 peers with an IPv4 /32 and an IPv6 /128 each (a ferry gateway's
// table), as the TUN reader and a sequential receiver do for every packet
// of a flow: through the trie (Lookup) and through a routine's cache.
func BenchmarkLookupThousandPeers(b *testing.B) {
	var table AllowedIPs
	for i := range 1000 {
		p := &Peer{}
		table.Insert(netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}), 32), p)
		table.Insert(netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x64, 14: byte(i >> 8), 15: byte(i)}), 128), p)
	}
	ip4 := []byte{100, 64, 2, 77}
	ip6 := netip.AddrFrom16([16]byte{0xfd, 0x64, 14: 2, 15: 77}).AsSlice()
	for _, ip := range [][]byte{ip4, ip6} {
		name := map[int]string{4: "IPv4", 16: "IPv6"}[len(ip)]
		b.Run(name+"/trie", func(b *testing.B) {
			for range b.N {
				table.Lookup(ip)
			}
		})
		b.Run(name+"/cached", func(b *testing.B) {
			var c lookupCache
			for range b.N {
				table.lookupCached(ip, &c)
			}
		})
	}
}
