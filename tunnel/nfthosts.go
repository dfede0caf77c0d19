package tunnel

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// hostShards is how many sets the host grants of a family are spread over,
// by the client address's last byte. Concatenated interval sets (the
// kernel's pipapo) copy their lookup tables in every transaction that
// changes them, so one set of every client's grants would make each
// answer's transaction cost grow with the number of clients; 64 shards
// keep a transaction's cost to a 64th. A packet costs the same: one
// verdict-map lookup to the shard, one set lookup there.
const hostShards = 64

// hostsSet is one shard of the host grants of a family: the DNS forwarder
// adds (client . destination . protocol range . port range) elements with
// the answer's TTL plus a grace as timeout; the kernel ages them out.
func (f *nftFirewall) hostsSet(l ipLayout, shard int) *nftables.Set {
	return &nftables.Set{Table: f.table, Name: hostsSetName(l, shard), Interval: true, Concatenation: true, HasTimeout: true,
		KeyType: nftables.MustConcatSetType(l.addr, l.addr, nftables.TypeInetProto, nftables.TypeInetService)}
}

// hostsSetName names a family's grant shard.
func hostsSetName(l ipLayout, shard int) string {
	if l == ip6 {
		return fmt.Sprintf("hosts6.%d", shard)
	}
	return fmt.Sprintf("hosts.%d", shard)
}

// hostShard returns the shard of a client address (IPv6 addresses carry
// the IPv4 address in their low bytes, so both families agree).
func hostShard(client []byte) int { return int(client[len(client)-1]) % hostShards }

func hostShardChain(l ipLayout, shard int) string {
	if l == ip6 {
		return fmt.Sprintf("hg6.%d", shard)
	}
	return fmt.Sprintf("hg4.%d", shard)
}

func (f *nftFirewall) hostShardMap(l ipLayout) *nftables.Set {
	name := "hostshard"
	if l == ip6 {
		name = "hostshard6"
	}
	return &nftables.Set{Table: f.table, Name: name, IsMap: true, KeyType: nftables.TypeInetProto, DataType: nftables.TypeVerdict}
}

// hostsBase adds a family's grant shards, their chains and the verdict map
// that picks the shard (in base's batch).
func (f *nftFirewall) hostsBase(l ipLayout) error {
	c := f.conn
	for k := range hostShards {
		set := f.hostsSet(l, k)
		if err := addSet(c, set); err != nil {
			return fmt.Errorf("adding host grants set: %w", err)
		}
		ch := c.AddChain(&nftables.Chain{Table: f.table, Name: hostShardChain(l, k)})
		granted := func(protoMatch []expr.Any, port func(reg uint32) expr.Any) {
			e := append(l.is(), protoMatch...)
			e = append(e,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: l.src, Len: l.addrLen},
				&expr.Payload{DestRegister: l.reg32(0), Base: expr.PayloadBaseNetworkHeader, Offset: l.dst, Len: l.addrLen},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: l.reg32(l.addrLen / 4)},
				port(l.reg32(l.addrLen/4+1)),
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
		granted(l4is(protoTCP), dport)
		granted(l4is(protoUDP), dport)
		granted(l4notPorted(), zero)
	}
	vm := f.hostShardMap(l)
	if err := addSet(c, vm); err != nil {
		return fmt.Errorf("adding host shard map: %w", err)
	}
	els := make([]nftables.SetElement, hostShards)
	for k := range hostShards {
		els[k] = nftables.SetElement{Key: []byte{byte(k)}, VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: hostShardChain(l, k)}}
	}
	if err := c.SetAddElements(vm, els); err != nil {
		return err
	}
	if f.hostMaps == nil {
		f.hostMaps = map[ipLayout]*nftables.Set{}
	}
	f.hostMaps[l] = vm
	return nil
}

// hostsRule adds to a profile chain the jump to the client's grant shard
// (which returns when nothing matches, and the chain goes on to deny).
func (f *nftFirewall) hostsRule(ch *nftables.Chain, l ipLayout) {
	vm := f.hostMaps[l]
	e := append(l.is(),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: l.src + l.addrLen - 1, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{hostShards - 1}, Xor: []byte{0}},
		&expr.Lookup{SourceRegister: 1, SetName: vm.Name, SetID: vm.ID, DestRegister: 0, IsDestRegSet: true})
	f.conn.AddRule(&nftables.Rule{Table: f.table, Chain: ch, Exprs: e})
}
