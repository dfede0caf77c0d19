package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"

	"github.com/ferryvpn/ferry/profiles"
)

// The conntrack mark of a connection the policy accepted is its client's
// address (set by the profile chains), so a client's connections can be
// found and cut in one kernel operation. A client's IPv6 address carries
// its IPv4 address in its low 32 bits (profiles.Address6), so both
// families of one client share one mark: the mark is the address's last
// four bytes.
func clientMark(a netip.Addr) uint32 {
	b := a.As16()
	return binary.NativeEndian.Uint32(b[12:16])
}

// ctFamilies are the address families whose connections are cut and
// reported.
var ctFamilies = []netfilter.ProtoFamily{netfilter.ProtoIPv4, netfilter.ProtoIPv6}

// ctFamily is the conntrack family of an address.
func ctFamily(a netip.Addr) netfilter.ProtoFamily {
	if a.Is4() {
		return netfilter.ProtoIPv4
	}
	return netfilter.ProtoIPv6
}

// peerIndex maps client addresses to the peers that hold (or held) them,
// with the enforced profile versions, for attributing flows. It is
// immutable once published.
type peerIndex struct {
	byAddr   map[netip.Addr]*profiles.Peer
	versions map[string]uint64
	rules    map[string][]profiles.Rule // by profile name, for naming the rule that decided
}

// cutter ends connections through conntrack.
type cutter interface {
	// cutClients deletes every connection of the clients.
	cutClients(addrs []netip.Addr) error
	// cutWhere deletes accepted connections of the given clients that
	// allowed no longer admits.
	cutWhere(clients map[netip.Addr]bool, allowed func(client, dst netip.Addr, proto uint8, dport uint16) bool) error
}

type ctCutter struct{ conn *conntrack.Conn }

var _ cutter = (*ctCutter)(nil)

func (c *ctCutter) cutClients(addrs []netip.Addr) error {
	var errs []error
	for _, a := range addrs {
		f := conntrack.NewFilter().Family(ctFamily(a)).Mark(clientMark(a))
		if err := c.conn.FlushFilter(f); err != nil {
			errs = append(errs, fmt.Errorf("cutting connections of %s: %w", a, err))
		}
	}
	return errors.Join(errs...)
}

func (c *ctCutter) cutWhere(clients map[netip.Addr]bool, allowed func(client, dst netip.Addr, proto uint8, dport uint16) bool) error {
	var flows []conntrack.Flow
	for _, fam := range ctFamilies {
		fs, err := c.conn.DumpFilter(conntrack.NewFilter().Family(fam), nil)
		if err != nil {
			return fmt.Errorf("listing connections: %w", err)
		}
		flows = append(flows, fs...)
	}
	var errs []error
	for _, f := range flows {
		t := f.TupleOrig
		src := t.IP.SourceAddress.Unmap()
		if !clients[src] || f.Mark != clientMark(src) {
			continue
		}
		if allowed(src, t.IP.DestinationAddress.Unmap(), t.Proto.Protocol, t.Proto.DestinationPort) {
			continue
		}
		if err := c.conn.Delete(f); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
