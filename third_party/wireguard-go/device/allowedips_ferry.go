/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

import (
	"errors"
	"net"
)

// lookupCache remembers one routine's last AllowedIPs lookup (ferry). The
// per-packet lookups (the TUN reader's destination, a peer's sequential
// receiver's source check) mostly repeat the previous packet's address;
// with many peers the trie walk for it is a string of dependent loads
// (BenchmarkIPv6CPU's 1,000-peer gateways spent 1.7 % of their CPU time in
// it, against 0.3 % with one peer). A cache is owned by one goroutine and
// is valid only while the table's generation is unchanged, so a lookup
// answers exactly what the trie would.
type lookupCache struct {
	valid bool
	n     uint8
	gen   uint64
	ip    [net.IPv6len]byte
	peer  *Peer
}

// lookupCached is Lookup answering from c when c holds the same address
// looked up since the table last changed, and filling c otherwise.
func (table *AllowedIPs) lookupCached(ip []byte, c *lookupCache) *Peer {
	table.mutex.RLock()
	defer table.mutex.RUnlock()
	if c.valid && c.gen == table.gen && int(c.n) == len(ip) && string(c.ip[:c.n]) == string(ip) {
		return c.peer
	}
	var peer *Peer
	switch len(ip) {
	case net.IPv6len:
		peer = table.IPv6.lookup(ip)
	case net.IPv4len:
		peer = table.IPv4.lookup(ip)
	default:
		panic(errors.New("looking up unknown address type"))
	}
	c.valid, c.gen, c.n, c.peer = true, table.gen, uint8(len(ip)), peer
	copy(c.ip[:], ip)
	return peer
}
