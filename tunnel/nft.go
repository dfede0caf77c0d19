package tunnel

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Drop reasons, the names of the table's named counters and of the
// drops metric's reason label.
const (
	dropPolicy   = "policy"           // a client's new connection its profile does not allow
	dropNoPolicy = "no_policy"        // a client without a profile on this node
	dropC2C      = "client_to_client" // one client toward another
	dropInbound  = "inbound"          // a new connection toward a client
	dropToNode   = "to_node"          // a client toward the node itself
	dropInvalid  = "invalid"          // conntrack state invalid
)

var dropReasons = []string{dropPolicy, dropNoPolicy, dropC2C, dropInbound, dropToNode, dropInvalid}

// Names in ferry's table.
const (
	setClients  = "clients"  // vmap: client IPv4 address -> jump to its profile's chain
	setClients6 = "clients6" // vmap: client IPv6 address -> jump to its profile's chain
	setDenied   = "denied"   // dynamic: (client . destination . protocol . port) -> counter, IPv4
	setDenied6  = "denied6"  // the same for IPv6
	chainDeny   = "deny"
)

// IP header layout: where the addresses sit and how long they are.
type ipLayout struct {
	nfproto  byte
	src, dst uint32 // offsets in the network header
	addrLen  uint32
	// mark is the offset of the source address's last four bytes: the
	// client's connection mark (clientMark).
	mark uint32
	// addr is the set type of an address.
	addr nftables.SetDatatype
}

var (
	ip4 = ipLayout{nfproto: unix.NFPROTO_IPV4, src: 12, dst: 16, addrLen: 4, mark: 12, addr: nftables.TypeIPAddr}
	ip6 = ipLayout{nfproto: unix.NFPROTO_IPV6, src: 8, dst: 24, addrLen: 16, mark: 20, addr: nftables.TypeIP6Addr}
)

// is matches packets of the family.
func (l ipLayout) is() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l.nfproto}},
	}
}

// reg32 is the 4-byte register after the address loaded at register 1
// (NFT_REG32_00 is 8; an IPv6 address fills four of them).
func (l ipLayout) reg32(after uint32) uint32 { return 8 + l.addrLen/4 + after }

// chunk is how many set elements go in one netlink message at most.
const chunk = 1000

// maxElemBytes bounds the encoded elements of one netlink message: their
// list attribute has a 16-bit length (65,535 bytes). A longer list wraps
// the length, and the kernel reads only the first elements of the message
// (and says nothing) or garbage (ENOENT): 1,000 IPv6 rule elements (~72
// bytes each) left ~90 in the set (TestFirewallManyIPv6Rules).
const maxElemBytes = 60000

// elemBytes is an upper bound of one element's encoded size: the list
// item, its key (and key end) attributes, and extra bytes of data.
func elemBytes(keyLen int, keyEnd bool, extra int) int {
	n := 4 + 8 + keyLen + extra
	if keyEnd {
		n += 8 + keyLen
	}
	return n
}

// verdictBytes is an upper bound of a verdict-map element's data: a jump
// to chain.
func verdictBytes(chain string) int { return 4 + 4 + 8 + 4 + (len(chain)+4)&^3 }

// deniedTimeout is how long a denied-attempt entry lives after its last
// packet; readers come by far more often.
const deniedTimeout = 2 * time.Minute

// fwChange is one atomic update of the ruleset.
type fwChange struct {
	// Reset rebuilds the table from nothing; AddClients and Policies are
	// then the whole state.
	Reset bool
	// Policies are profiles to program, new or at a new version.
	Policies []policy
	// RemovedPolicies are profile names whose chains and sets go.
	RemovedPolicies []string
	// AddClients maps client addresses to their profile name.
	AddClients map[netip.Addr]string
	// DelClients are client addresses to remove from the map.
	DelClients []netip.Addr
}

func (c *fwChange) empty() bool {
	return !c.Reset && len(c.Policies) == 0 && len(c.RemovedPolicies) == 0 && len(c.AddClients) == 0 && len(c.DelClients) == 0
}

// firewall programs enforcement. Apply is called from one goroutine.
type firewall interface {
	Apply(ch fwChange) error
}

// nftFirewall is ferry's own nftables table, programmed over netlink.
type nftFirewall struct {
	conn   *nftables.Conn
	table  *nftables.Table
	iface  string
	egress string
	// dnsPort, when set, lets clients reach the node's DNS forwarder on
	// udp and tcp port 53 of its tunnel addresses.
	dnsPort bool
	// relay4 and relay6 are the node's tunnel addresses. Packet Too Big
	// (and IPv4's fragmentation needed) from routers in the VPC are
	// forwarded to clients with one of them as source: a client's
	// WireGuard accepts only sources its AllowedIPs route to the node, and
	// rendered profiles route the node's tunnel addresses, so path MTU
	// discovery works across the tunnel. Zero: not rewritten.
	relay4, relay6 netip.Addr
	// hostMaps are the verdict maps to the host grant shards as last
	// added (base), by family (nfthosts.go).
	hostMaps map[ipLayout]*nftables.Set
	// sets maps a programmed profile to the name of its current interval
	// set. Only the reconciler's goroutine touches it.
	sets map[string]string
}

var _ firewall = (*nftFirewall)(nil)

func newNFTFirewall(table, iface, egress string) (*nftFirewall, error) {
	bufs := func(c *netlink.Conn) error {
		if err := c.SetWriteBuffer(64 << 20); err != nil {
			return err
		}
		return c.SetReadBuffer(16 << 20)
	}
	conn, err := nftables.New(nftables.AsLasting(), nftables.WithSockOptions(bufs))
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink socket: %w", err)
	}
	return &nftFirewall{
		conn:  conn,
		table: &nftables.Table{Name: table, Family: nftables.TableFamilyINet},
		iface: iface, egress: egress, sets: map[string]string{},
	}, nil
}

func (f *nftFirewall) Close() error {
	f.conn.DelTable(f.table)
	err := f.conn.Flush()
	if cerr := f.conn.CloseLasting(); err == nil {
		err = cerr
	}
	return err
}

func chainName(profile string) string { return "p." + profile }

// set6Name names the IPv6 interval set that goes with an IPv4 one.
func set6Name(set string) string { return "6" + set }

func (f *nftFirewall) clientsSet(l ipLayout) *nftables.Set {
	name := setClients
	if l == ip6 {
		name = setClients6
	}
	return &nftables.Set{Table: f.table, Name: name, IsMap: true, KeyType: l.addr, DataType: nftables.TypeVerdict}
}

func (f *nftFirewall) deniedSet(l ipLayout) *nftables.Set {
	name := setDenied
	if l == ip6 {
		name = setDenied6
	}
	return &nftables.Set{Table: f.table, Name: name, Dynamic: true, HasTimeout: true, Timeout: deniedTimeout, Size: 65536,
		KeyType: nftables.MustConcatSetType(l.addr, l.addr, nftables.TypeInetProto, nftables.TypeInetService)}
}

// layout returns the header layout of an address's family.
func layout(a netip.Addr) ipLayout {
	if a.Is4() {
		return ip4
	}
	return ip6
}

// Apply programs ch in one netlink batch, so no packet sees half of it.
func (f *nftFirewall) Apply(ch fwChange) error {
	if ch.empty() {
		return nil
	}
	c := f.conn
	sets := f.sets
	if ch.Reset {
		sets = map[string]string{}
		// add-delete-add replaces the table whether or not it existed.
		c.AddTable(f.table)
		c.DelTable(f.table)
		if err := f.base(); err != nil {
			return err
		}
	} else {
		sets = cloneMap(sets)
	}
	for _, p := range ch.Policies {
		old, had := sets[p.Name]
		name, err := f.program(p, had)
		if err != nil {
			return err
		}
		if had && old != name {
			c.DelSet(&nftables.Set{Table: f.table, Name: old})
			c.DelSet(&nftables.Set{Table: f.table, Name: set6Name(old)})
		}
		sets[p.Name] = name
	}
	for _, l := range []ipLayout{ip4, ip6} {
		vm := f.clientsSet(l)
		var del []netip.Addr
		for _, a := range ch.DelClients {
			if layout(a) == l {
				del = append(del, a)
			}
		}
		for part := range chunks(del, func(a netip.Addr) int { return elemBytes(a.BitLen()/8, false, 0) }) {
			els := make([]nftables.SetElement, len(part))
			for i, a := range part {
				els[i] = nftables.SetElement{Key: a.AsSlice()}
			}
			if err := c.SetDeleteElements(vm, els); err != nil {
				return err
			}
		}
		var addrs []netip.Addr
		for a := range ch.AddClients {
			if layout(a) == l {
				addrs = append(addrs, a)
			}
		}
		sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
		for part := range chunks(addrs, func(a netip.Addr) int {
			return elemBytes(a.BitLen()/8, false, verdictBytes(chainName(ch.AddClients[a])))
		}) {
			els := make([]nftables.SetElement, len(part))
			for i, a := range part {
				els[i] = nftables.SetElement{Key: a.AsSlice(),
					VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: chainName(ch.AddClients[a])}}
			}
			if err := c.SetAddElements(vm, els); err != nil {
				return err
			}
		}
	}
	for _, name := range ch.RemovedPolicies {
		set, ok := sets[name]
		if !ok {
			continue
		}
		c.FlushChain(&nftables.Chain{Table: f.table, Name: chainName(name)})
		c.DelChain(&nftables.Chain{Table: f.table, Name: chainName(name)})
		c.DelSet(&nftables.Set{Table: f.table, Name: set})
		c.DelSet(&nftables.Set{Table: f.table, Name: set6Name(set)})
		delete(sets, name)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("programming nftables table %s: %w", f.table.Name, err)
	}
	f.sets = sets
	return nil
}

// program adds a profile's new interval set and points its chain at it:
// the chain is created or flushed and refilled in the same batch.
func (f *nftFirewall) program(p policy, exists bool) (string, error) {
	c := f.conn
	name := fmt.Sprintf("s.%s.%d", p.Name, p.Version)
	if exists && f.sets[p.Name] == name {
		// Same version programmed again (a resync): use a fresh name so the
		// old set can be dropped in the same batch.
		name = fmt.Sprintf("s.%s.%d.%d", p.Name, p.Version, time.Now().UnixNano())
	}
	sets := map[ipLayout]*nftables.Set{}
	for _, l := range []ipLayout{ip4, ip6} {
		n := name
		boxes := p.family(4)
		if l == ip6 {
			n, boxes = set6Name(name), p.family(6)
		}
		set := &nftables.Set{Table: f.table, Name: n, Interval: true, Concatenation: true,
			KeyType: nftables.MustConcatSetType(l.addr, nftables.TypeInetProto, nftables.TypeInetService)}
		if err := addSet(c, set); err != nil {
			return "", fmt.Errorf("adding set %s: %w", n, err)
		}
		for part := range chunks(boxes, func(b box) int { k, _ := b.key(); return elemBytes(len(k), true, 0) }) {
			els := make([]nftables.SetElement, len(part))
			for i, b := range part {
				k, e := b.key()
				els[i] = nftables.SetElement{Key: k, KeyEnd: e}
			}
			if err := c.SetAddElements(set, els); err != nil {
				return "", err
			}
		}
		sets[l] = set
	}
	ch := &nftables.Chain{Table: f.table, Name: chainName(p.Name)}
	if exists {
		c.FlushChain(ch)
	} else {
		c.AddChain(ch)
	}
	// tcp and udp are looked up with their destination port, every other
	// protocol with port 0. An accepted connection's conntrack mark is the
	// client's address (its last four bytes for IPv6), so its flows can be
	// found and cut later.
	for _, l := range []ipLayout{ip4, ip6} {
		set := sets[l]
		accept := func(protoMatch []expr.Any, port func(reg uint32) expr.Any) {
			e := append(l.is(), protoMatch...)
			e = append(e,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: l.dst, Len: l.addrLen},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: l.reg32(0)},
				port(l.reg32(1)),
				&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: l.mark, Len: 4},
				&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
				&expr.Verdict{Kind: expr.VerdictAccept})
			c.AddRule(&nftables.Rule{Table: f.table, Chain: ch, Exprs: e})
		}
		dport := func(reg uint32) expr.Any {
			return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
		}
		zero := func(reg uint32) expr.Any { return &expr.Immediate{Register: reg, Data: []byte{0, 0, 0, 0}} }
		accept(l4is(protoTCP), dport)
		accept(l4is(protoUDP), dport)
		accept(l4notPorted(), zero)
		if f.dnsPort {
			// Host grants: the client's own elements, added by the DNS
			// forwarder, in its shard.
			f.hostsRule(ch, l)
		}
	}
	c.AddRule(&nftables.Rule{Table: f.table, Chain: ch, Exprs: []expr.Any{
		counterRef(dropPolicy), &expr.Verdict{Kind: expr.VerdictGoto, Chain: chainDeny}}})
	return name, nil
}

// setIDMu serialises AddSet across every connection of the process:
// google/nftables (v0.3.0) numbers sets from a package-level counter that
// it increments without a lock, so two gateways in one process (tests run
// three nodes in one) raced on it.
var setIDMu sync.Mutex

func addSet(c *nftables.Conn, s *nftables.Set) error {
	setIDMu.Lock()
	defer setIDMu.Unlock()
	return c.AddSet(s, nil)
}

// base adds the table with its counters, sets and fixed chains.
func (f *nftFirewall) base() error {
	c := f.conn
	t := c.AddTable(f.table)
	for _, r := range dropReasons {
		c.AddObj(&nftables.NamedObj{Table: t, Name: r, Type: nftables.ObjTypeCounter, Obj: &expr.Counter{}})
	}
	clients, denied := map[ipLayout]*nftables.Set{}, map[ipLayout]*nftables.Set{}
	for _, l := range []ipLayout{ip4, ip6} {
		clients[l], denied[l] = f.clientsSet(l), f.deniedSet(l)
		if err := addSet(c, clients[l]); err != nil {
			return fmt.Errorf("adding client map: %w", err)
		}
		if err := addSet(c, denied[l]); err != nil {
			return fmt.Errorf("adding denied set: %w", err)
		}
		if f.dnsPort {
			if err := f.hostsBase(l); err != nil {
				return err
			}
		}
	}

	// deny records (client, destination, protocol, port) with a counter,
	// then drops. The update is its own rule: a full set makes it fail, and
	// the drop must still happen.
	deny := c.AddChain(&nftables.Chain{Table: t, Name: chainDeny})
	for _, l := range []ipLayout{ip4, ip6} {
		set := denied[l]
		record := func(protoMatch []expr.Any, port func(reg uint32) expr.Any) {
			e := append(l.is(), protoMatch...)
			e = append(e,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: l.src, Len: l.addrLen},
				&expr.Payload{DestRegister: l.reg32(0), Base: expr.PayloadBaseNetworkHeader, Offset: l.dst, Len: l.addrLen},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: l.reg32(l.addrLen / 4)},
				port(l.reg32(l.addrLen/4+1)),
				&expr.Dynset{SrcRegKey: 1, SetName: set.Name, SetID: set.ID, Operation: unix.NFT_DYNSET_OP_UPDATE,
					Exprs: []expr.Any{&expr.Counter{}}})
			c.AddRule(&nftables.Rule{Table: t, Chain: deny, Exprs: e})
		}
		dport := func(reg uint32) expr.Any {
			return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
		}
		zero := func(reg uint32) expr.Any { return &expr.Immediate{Register: reg, Data: []byte{0, 0, 0, 0}} }
		record(l4is(protoTCP), dport)
		record(l4is(protoUDP), dport)
		record(l4notPorted(), zero)
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: deny, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})

	accept := nftables.ChainPolicyAccept
	fw := c.AddChain(&nftables.Chain{Table: t, Name: "forward", Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	rule := func(ch *nftables.Chain, e ...[]expr.Any) {
		var all []expr.Any
		for _, x := range e {
			all = append(all, x...)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: all})
	}
	in, out := ifname(expr.MetaKeyIIFNAME, f.iface, expr.CmpOpEq), ifname(expr.MetaKeyOIFNAME, f.iface, expr.CmpOpEq)
	verdict := func(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }
	drop := func(reason string) []expr.Any {
		return []expr.Any{counterRef(reason), &expr.Verdict{Kind: expr.VerdictDrop}}
	}
	rule(fw, in, out, drop(dropC2C))
	rule(fw, in, ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))
	if f.relay4.IsValid() {
		// icmp type destination-unreachable code frag-needed
		rule(fw, out, ip4.is(), l4is(protoICMP), []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{3, 4}},
			&expr.Immediate{Register: 1, Data: f.relay4.AsSlice()},
			&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: ip4.src, Len: 4,
				CsumType: expr.CsumTypeInet, CsumOffset: 10},
		})
	}
	if f.relay6.IsValid() {
		// icmpv6 type packet-too-big directly after the IPv6 header (as
		// routers send it). Its checksum covers the source address through
		// the pseudo-header; the kernel's pseudo-header update does not
		// know ICMPv6, so the checksum at header+42 is updated as an inet
		// checksum of the written bytes.
		rule(fw, out, ip6.is(), []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoICMPv6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 40, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{2}},
			&expr.Immediate{Register: 1, Data: f.relay6.AsSlice()},
			&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: ip6.src, Len: 16,
				CsumType: expr.CsumTypeInet, CsumOffset: 42},
		})
	}
	rule(fw, out, ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))
	rule(fw, out, drop(dropInbound))
	rule(fw, in, ctState(expr.CtStateBitINVALID), drop(dropInvalid))
	for _, l := range []ipLayout{ip4, ip6} {
		rule(fw, in, l.is(), []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: l.src, Len: l.addrLen},
			&expr.Lookup{SourceRegister: 1, SetName: clients[l].Name, SetID: clients[l].ID, DestRegister: 0, IsDestRegSet: true},
		})
	}
	rule(fw, in, drop(dropNoPolicy))

	ic := c.AddChain(&nftables.Chain{Table: t, Name: "input", Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	rule(ic, in, ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))
	rule(ic, in, l4is(protoICMP), verdict(expr.VerdictAccept))
	rule(ic, in, l4is(protoICMPv6), verdict(expr.VerdictAccept))
	if f.dnsPort {
		port53 := []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 53}},
		}
		rule(ic, in, l4is(protoUDP), port53, verdict(expr.VerdictAccept))
		rule(ic, in, l4is(protoTCP), port53, verdict(expr.VerdictAccept))
	}
	rule(ic, in, drop(dropToNode))

	nat := c.AddChain(&nftables.Chain{Table: t, Name: "postrouting", Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	egress := ifname(expr.MetaKeyOIFNAME, f.iface, expr.CmpOpNeq)
	if f.egress != "" {
		egress = ifname(expr.MetaKeyOIFNAME, f.egress, expr.CmpOpEq)
	}
	rule(nat, in, egress, []expr.Any{&expr.Masq{}})
	return nil
}

func ifname(key expr.MetaKey, name string, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: append([]byte(name), 0)},
	}
}

func ctState(bits uint32) []expr.Any {
	mask := binary.NativeEndian.AppendUint32(nil, bits)
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}

func l4is(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// l4notPorted matches protocols other than tcp and udp.
func l4notPorted() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{protoTCP}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{protoUDP}},
	}
}

func counterRef(name string) expr.Any {
	return &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: name}
}

// counters reads the drop counters by reason (packets).
func (f *nftFirewall) counters() (map[string]uint64, error) {
	objs, err := f.conn.GetNamedObjects(f.table)
	if err != nil {
		return nil, fmt.Errorf("reading nftables counters: %w", err)
	}
	out := make(map[string]uint64, len(objs))
	for _, o := range objs {
		if no, ok := o.(*nftables.NamedObj); ok {
			if ctr, ok := no.Obj.(*expr.Counter); ok {
				out[no.Name] = ctr.Packets
			}
		}
	}
	return out, nil
}

// denyKey is one entry of the denied set.
type denyKey struct {
	Client, Dst netip.Addr
	Proto       uint8
	Port        uint16
}

// denied reads the denied-attempts sets with each entry's packet count.
func (f *nftFirewall) denied() (map[denyKey]uint64, error) {
	out := map[denyKey]uint64{}
	for _, l := range []ipLayout{ip4, ip6} {
		els, err := f.conn.GetSetElements(f.deniedSet(l))
		if err != nil {
			return nil, fmt.Errorf("reading denied set: %w", err)
		}
		n := int(l.addrLen)
		for _, e := range els {
			if len(e.Key) < 2*n+8 {
				continue
			}
			client, _ := netip.AddrFromSlice(e.Key[0:n])
			dst, _ := netip.AddrFromSlice(e.Key[n : 2*n])
			k := denyKey{Client: client, Dst: dst, Proto: e.Key[2*n], Port: binary.BigEndian.Uint16(e.Key[2*n+4 : 2*n+6])}
			var cnt uint64
			if e.Counter != nil {
				cnt = e.Counter.Packets
			}
			out[k] = cnt
		}
	}
	return out, nil
}

// chunks yields s in slices of at most chunk elements whose sizes (an
// upper bound of each element's encoding) add up to at most maxElemBytes.
func chunks[T any](s []T, size func(T) int) func(yield func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			n, bytes := 0, 0
			for n < len(s) && n < chunk {
				b := size(s[n])
				if n > 0 && bytes+b > maxElemBytes {
					break
				}
				n, bytes = n+1, bytes+b
			}
			if !yield(s[:n]) {
				return
			}
			s = s[n:]
		}
	}
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
