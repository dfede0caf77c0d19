package tunnel

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// flowKey identifies one flow record of an interval, in the manner of a
// NetFlow/IPFIX flow key: (client, destination, protocol, destination port,
// verdict). Addresses are netip.Addr, so IPv4 and IPv6 keys share the type.
//
// Under overload a key is folded to a coarser one: Coarse set and Proto and
// Port zero (client, destination); past that Dst is invalid as well (client
// only). Folding keeps every count; only the detail is lost.
type flowKey struct {
	Client netip.Addr
	Dst    netip.Addr
	Proto  uint8
	Port   uint16
	Deny   bool
	Coarse bool
}

// flowCounts are what one or more connections (or denied attempts) add to
// a record.
type flowCounts struct {
	// Flows counts connections (each once, at its first report) or, for
	// denied keys, attempts.
	Flows             uint64
	PktsOut, PktsIn   uint64 // from the client's side: out is what it sent
	BytesOut, BytesIn uint64
	First, Last       time.Time
	Interim           uint64 // interim reports of open connections included
	Folded            uint64 // contributions folded here from finer keys
}

func (c *flowCounts) add(d flowCounts) {
	c.Flows += d.Flows
	c.PktsOut += d.PktsOut
	c.PktsIn += d.PktsIn
	c.BytesOut += d.BytesOut
	c.BytesIn += d.BytesIn
	c.Interim += d.Interim
	c.Folded += d.Folded
	if !d.First.IsZero() && (c.First.IsZero() || d.First.Before(c.First)) {
		c.First = d.First
	}
	if d.Last.After(c.Last) {
		c.Last = d.Last
	}
}

// flowRecord is one finished record of an interval.
type flowRecord struct {
	Key flowKey
	flowCounts
}

// flowAgg aggregates one interval's flows by key with bounded memory: at
// most maxFine fine keys and maxCoarse (client, destination) keys; beyond
// that contributions fold to one key per client and verdict, whose number
// the client pool bounds. Nothing is dropped. It is owned by one goroutine.
type flowAgg struct {
	maxFine, maxCoarse int
	recs               map[flowKey]*flowCounts
	fine, coarse       int
	folded             uint64 // contributions folded this interval
}

func newFlowAgg(maxFine, maxCoarse int) *flowAgg {
	return &flowAgg{maxFine: maxFine, maxCoarse: maxCoarse, recs: map[flowKey]*flowCounts{}}
}

// add folds one contribution into the interval.
func (a *flowAgg) add(k flowKey, d flowCounts) {
	if c := a.recs[k]; c != nil {
		c.add(d)
		return
	}
	if a.fine < a.maxFine {
		a.fine++
		a.put(k, d)
		return
	}
	// Overload: fold to (client, destination), then to (client).
	a.folded++
	d.Folded++
	k.Proto, k.Port, k.Coarse = 0, 0, true
	if c := a.recs[k]; c != nil {
		c.add(d)
		return
	}
	if a.coarse < a.maxCoarse {
		a.coarse++
		a.put(k, d)
		return
	}
	k.Dst = netip.Addr{}
	if c := a.recs[k]; c != nil {
		c.add(d)
		return
	}
	a.put(k, d)
}

func (a *flowAgg) put(k flowKey, d flowCounts) {
	c := d
	a.recs[k] = &c
}

// flush returns the interval's records in a stable order and starts the
// next interval; folded is how many contributions were folded.
func (a *flowAgg) flush() (recs []flowRecord, folded uint64) {
	recs = make([]flowRecord, 0, len(a.recs))
	for k, c := range a.recs {
		recs = append(recs, flowRecord{Key: k, flowCounts: *c})
	}
	slices.SortFunc(recs, func(x, y flowRecord) int {
		return cmp.Or(x.Key.Client.Compare(y.Key.Client), x.Key.Dst.Compare(y.Key.Dst), cmp.Compare(x.Key.Proto, y.Key.Proto),
			cmp.Compare(x.Key.Port, y.Key.Port), boolCmp(x.Key.Deny, y.Key.Deny), boolCmp(x.Key.Coarse, y.Key.Coarse))
	})
	folded = a.folded
	clear(a.recs)
	a.fine, a.coarse, a.folded = 0, 0, 0
	return recs, folded
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
