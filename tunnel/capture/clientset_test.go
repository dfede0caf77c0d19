package capture

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestMatchAgainstVM checks the fast Match (the clients' addresses first,
// then the program) against the program alone, on random packets: IPv4
// and IPv6, clients on either side or neither, truncated and garbage
// packets, few clients (compared one by one) and many (a map).
func TestMatchAgainstVM(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 42))
	v4 := func(i int) string { return fmt.Sprintf("10.99.%d.%d", i/250, i%250+1) }
	v6 := func(i int) string { return fmt.Sprintf("fd00:99::%x", i+1) }
	for _, tc := range []struct {
		nclients int
		v4, v6   bool
	}{{0, true, true}, {1, true, true}, {3, true, true}, {clientSetScan + 4, true, false}, {clientSetScan + 1, false, true}, {40, true, true}} {
		nclients := tc.nclients
		var clients []netip.Addr
		for i := range nclients {
			if tc.v4 {
				clients = append(clients, netip.MustParseAddr(v4(i)))
			}
			if tc.v6 {
				clients = append(clients, netip.MustParseAddr(v6(i)))
			}
		}
		if nclients == 1 {
			clients = append(clients, netip.MustParseAddr("::ffff:10.99.7.7")) // mapped: captured as IPv4
		}
		for _, expr := range []string{"", "tcp", "udp and port 53", "not host 10.1.0.5", "icmp or icmp6", "dst net 10.1.0.0/16 and tcp"} {
			f, err := CompileFilter(expr, clients)
			if err != nil {
				t.Fatal(err)
			}
			pool := nclients + 5 // addresses beyond the clients too
			for range 3000 {
				var pkt []byte
				proto := []uint8{1, 6, 17, 58}[rng.IntN(4)]
				sport, dport := uint16(rng.IntN(100)), uint16(rng.IntN(100))
				switch rng.IntN(10) {
				case 0:
					pkt = make([]byte, rng.IntN(48))
					for i := range pkt {
						pkt[i] = byte(rng.Uint32())
					}
				case 1, 2, 3, 4:
					src, dst := v4(rng.IntN(pool)), v4(rng.IntN(pool))
					if rng.IntN(3) == 0 {
						dst = "10.1.0.5"
					}
					if nclients == 1 && rng.IntN(5) == 0 {
						src = "10.99.7.7"
					}
					pkt = pkt4(src, dst, proto, sport, dport, 0)
				default:
					pkt = pkt6(v6(rng.IntN(pool)), v6(rng.IntN(pool)), proto, sport, dport)
				}
				if rng.IntN(8) == 0 {
					pkt = pkt[:rng.IntN(len(pkt)+1)]
				}
				if got, want := f.Match(pkt), f.matchVM(pkt); got != want {
					t.Fatalf("%d clients, filter %q, packet % x: Match %v, the program alone %v", nclients, expr, pkt, got, want)
				}
			}
		}
	}
}

// TestMatchAllocatesNothing: the filter allocates nothing per packet,
// whether the packet is another client's or a captured one.
func TestMatchAllocatesNothing(t *testing.T) {
	f, err := CompileFilter("tcp", []netip.Addr{netip.MustParseAddr("10.99.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	mine, other := pkt4("10.99.0.2", "10.1.0.5", 6, 1, 2, 0), pkt4("10.99.0.3", "10.1.0.5", 6, 1, 2, 0)
	if n := testing.AllocsPerRun(100, func() { f.Match(mine); f.Match(other) }); n != 0 {
		t.Fatalf("%v allocations per packet", n)
	}
}

// TestManyClients: a capture of a whole profile restricts the program to
// hundreds of clients' addresses, beyond classic BPF's 8-bit conditional
// jumps from the first address test to the operator's filter; the
// program still compiles (each client's test jumps on with an
// unconditional jump) and matches exactly its clients' packets.
func TestManyClients(t *testing.T) {
	for _, tc := range []struct {
		n  int
		v6 bool
	}{{300, false}, {100, true}} {
		var clients []netip.Addr
		addr := func(i int) string {
			if tc.v6 {
				return fmt.Sprintf("fd00:99::%x", i+1)
			}
			return fmt.Sprintf("10.99.%d.%d", i/250, i%250+1)
		}
		for i := range tc.n {
			clients = append(clients, netip.MustParseAddr(addr(i)))
		}
		f, err := CompileFilter("tcp and port 443", clients)
		if err != nil {
			t.Fatalf("%d clients (v6 %v): %v", tc.n, tc.v6, err)
		}
		mk := func(src, dst string, dport uint16) []byte {
			if tc.v6 {
				return pkt6(src, dst, 6, 40000, dport)
			}
			return pkt4(src, dst, 6, 40000, dport, 0)
		}
		other := "10.1.0.5"
		if tc.v6 {
			other = "fd00:1::5"
		}
		for _, i := range []int{0, 1, tc.n / 2, tc.n - 1} {
			if !f.Match(mk(addr(i), other, 443)) || !f.matchVM(mk(other, addr(i), 443)) {
				t.Errorf("client %d (%s) not matched", i, addr(i))
			}
			if f.matchVM(mk(addr(i), other, 80)) {
				t.Errorf("client %d: port 80 matched 'port 443'", i)
			}
		}
		if f.matchVM(mk(addr(tc.n), other, 443)) {
			t.Errorf("%s, not a client, matched", addr(tc.n))
		}
	}
}
