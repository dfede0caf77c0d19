package tunnel

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/profiles"
)

// maxOpenTracked bounds the connections remembered between interim
// reports. A long-lived connection beyond it is still reported in full when
// it ends; only its interim records are skipped.
const maxOpenTracked = 1 << 17

// ctCounters are a connection's counters at its last interim report.
type ctCounters struct {
	pktsOut, pktsIn, bytesOut, bytesIn uint64
	at                                 time.Time
}

// flowMonitor turns what the data plane sees into flow records in the
// NetFlow/IPFIX manner: accepted connections (conntrack DESTROY events, and
// interim reports of connections open longer than the active timeout) and
// denied attempts (the firewall's denied set) are aggregated per interval
// by flowKey and recorded as flow.accept and flow.deny events at the
// interval's end. Memory is bounded by flowAgg's caps; under overload keys
// fold to coarser ones, counted in ferry_tunnel_flow_folded_total.
//
// All fields but the injected functions belong to run's goroutine.
type flowMonitor struct {
	pool          netip.Prefix
	pool6         netip.Prefix // the IPv6 client pool; zero when IPv4 only
	index         *atomic.Pointer[peerIndex]
	emit          func(audit.Event)
	now           func() time.Time
	interval      time.Duration
	activeTimeout time.Duration
	denyInterval  time.Duration
	log           *slog.Logger
	metrics       *metrics
	// denied and counters read the firewall's denied set and drop
	// counters; dump lists conntrack's connections (nil: conntrack is off).
	denied   func() (map[denyKey]uint64, error)
	counters func() (map[string]uint64, error)
	dump     func() ([]conntrack.Flow, error)
	listen   bool // follow conntrack DESTROY events
	// hosts, when the DNS forwarder runs, names the host rule and name
	// whose answer admitted a connection (nil: none).
	hosts hostNamer

	agg      *flowAgg
	open     map[uint32]ctCounters // connections with an interim report, by conntrack ID
	lastDeny map[denyKey]uint64
	lastPoll time.Time
}

func newFlowMonitor(fm flowMonitor, maxRecords int) *flowMonitor {
	fm.agg = newFlowAgg(maxRecords, max(maxRecords/2, 1))
	fm.open = map[uint32]ctCounters{}
	return &fm
}

func (fm *flowMonitor) run(ctx context.Context) error {
	var evs chan conntrack.Event
	var errCh chan error
	if fm.listen {
		conn, err := conntrack.Dial(nil)
		if err != nil {
			return fmt.Errorf("opening conntrack netlink: %w", err)
		}
		if err := conn.SetReadBuffer(8 << 20); err != nil {
			fm.log.Warn("cannot raise conntrack socket buffer", "err", err)
		}
		evs = make(chan conntrack.Event, 1024)
		errCh, err = conn.Listen(evs, 1, []netfilter.NetlinkGroup{netfilter.GroupCTDestroy})
		if err != nil {
			conn.Close()
			return fmt.Errorf("listening to conntrack events: %w", err)
		}
		dc, err := conntrack.Dial(nil)
		if err != nil {
			conn.Close()
			return fmt.Errorf("opening conntrack netlink: %w", err)
		}
		defer dc.Close()
		if fm.dump == nil {
			fm.dump = func() ([]conntrack.Flow, error) { return dc.Dump(nil) }
		}
		defer func() {
			conn.Close()
			// The worker may be blocked sending to evs; drain until it stops.
			for {
				select {
				case <-evs:
				case <-errCh:
				default:
					return
				}
			}
		}()
	}
	flush := time.NewTicker(fm.interval)
	defer flush.Stop()
	deny := time.NewTicker(fm.denyInterval)
	defer deny.Stop()
	active := time.NewTicker(fm.activeTimeout)
	defer active.Stop()
	fm.lastPoll = fm.now()
	for {
		select {
		case <-ctx.Done():
			fm.pollDenied()
			fm.flush()
			return nil
		case err := <-errCh:
			fm.flush()
			if err != nil {
				fm.log.Warn("conntrack event stream failed", "err", err)
			}
			return err
		case <-flush.C:
			fm.pollDenied()
			fm.flush()
		case <-deny.C:
			fm.pollDenied()
		case <-active.C:
			if fm.dump != nil {
				flows, err := fm.dump()
				if err != nil {
					fm.log.Warn("listing connections for interim flow records failed", "err", err)
					continue
				}
				fm.interim(flows)
			}
		case ev := <-evs:
			if ev.Type == conntrack.EventDestroy && ev.Flow != nil {
				fm.destroyed(ev.Flow)
			}
		}
	}
}

// client returns the flow's client if it is an accepted connection of a
// tunnel client (marked with its address by the profile chains).
func (fm *flowMonitor) client(f *conntrack.Flow) (netip.Addr, bool) {
	src := f.TupleOrig.IP.SourceAddress.Unmap()
	return src, (fm.pool.Contains(src) || fm.pool6.Contains(src)) && f.Mark == clientMark(src)
}

func acceptKey(f *conntrack.Flow, src netip.Addr) flowKey {
	t := f.TupleOrig
	k := flowKey{Client: src, Dst: t.IP.DestinationAddress.Unmap(), Proto: t.Proto.Protocol}
	if k.Proto == protoTCP || k.Proto == protoUDP {
		k.Port = t.Proto.DestinationPort
	}
	return k
}

// destroyed adds an ended connection: in full, or what grew since its last
// interim report.
func (fm *flowMonitor) destroyed(f *conntrack.Flow) {
	src, ok := fm.client(f)
	if !ok {
		return
	}
	now := fm.now()
	d := flowCounts{Flows: 1, PktsOut: f.CountersOrig.Packets, PktsIn: f.CountersReply.Packets,
		BytesOut: f.CountersOrig.Bytes, BytesIn: f.CountersReply.Bytes, First: f.Timestamp.Start, Last: f.Timestamp.Stop}
	if d.Last.IsZero() {
		d.Last = now
	}
	if d.First.IsZero() {
		d.First = d.Last
	}
	if prev, ok := fm.open[f.ID]; ok {
		delete(fm.open, f.ID)
		d.Flows = 0
		d.PktsOut, d.PktsIn = sub(d.PktsOut, prev.pktsOut), sub(d.PktsIn, prev.pktsIn)
		d.BytesOut, d.BytesIn = sub(d.BytesOut, prev.bytesOut), sub(d.BytesIn, prev.bytesIn)
		d.First = prev.at
	}
	fm.metrics.flows.WithLabelValues("accept").Add(float64(d.Flows))
	fm.agg.add(acceptKey(f, src), d)
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// interim reports the growth of connections open longer than the active
// timeout, and forgets remembered connections conntrack no longer has.
func (fm *flowMonitor) interim(flows []conntrack.Flow) {
	now := fm.now()
	seen := make(map[uint32]bool, len(fm.open))
	for i := range flows {
		f := &flows[i]
		src, ok := fm.client(f)
		if !ok {
			continue
		}
		prev, known := fm.open[f.ID]
		if !known && (f.Timestamp.Start.IsZero() || now.Sub(f.Timestamp.Start) < fm.activeTimeout || len(fm.open) >= maxOpenTracked) {
			continue
		}
		seen[f.ID] = true
		cur := ctCounters{pktsOut: f.CountersOrig.Packets, pktsIn: f.CountersReply.Packets,
			bytesOut: f.CountersOrig.Bytes, bytesIn: f.CountersReply.Bytes, at: now}
		d := flowCounts{PktsOut: sub(cur.pktsOut, prev.pktsOut), PktsIn: sub(cur.pktsIn, prev.pktsIn),
			BytesOut: sub(cur.bytesOut, prev.bytesOut), BytesIn: sub(cur.bytesIn, prev.bytesIn),
			First: prev.at, Last: now, Interim: 1}
		if !known {
			d.Flows, d.First = 1, f.Timestamp.Start
			fm.metrics.flows.WithLabelValues("accept").Inc()
		}
		fm.open[f.ID] = cur
		fm.agg.add(acceptKey(f, src), d)
	}
	for id := range fm.open {
		if !seen[id] {
			delete(fm.open, id)
		}
	}
}

// pollDenied adds what the denied-attempts set counted since the last poll
// and feeds the drop counters to the metrics.
func (fm *flowMonitor) pollDenied() {
	if c, err := fm.counters(); err != nil {
		fm.log.Warn("reading drop counters failed", "err", err)
	} else {
		fm.metrics.setDrops(c)
	}
	cur, err := fm.denied()
	if err != nil {
		fm.log.Warn("reading denied attempts failed", "err", err)
		return
	}
	now := fm.now()
	for k, n := range cur {
		prev := fm.lastDeny[k]
		if n <= prev {
			continue
		}
		delta := n - prev
		fm.metrics.flows.WithLabelValues("deny").Add(float64(delta))
		fm.agg.add(flowKey{Client: k.Client, Dst: k.Dst, Proto: k.Proto, Port: k.Port, Deny: true},
			flowCounts{Flows: delta, PktsOut: delta, First: fm.lastPoll, Last: now})
	}
	fm.lastDeny = cur
	fm.lastPoll = now
}

// flush records the interval's flow records.
func (fm *flowMonitor) flush() {
	recs, folded := fm.agg.flush()
	if folded > 0 {
		fm.metrics.folded.Add(float64(folded))
		fm.log.Warn("flow records folded to coarser keys under load", "folded", folded, "interval", fm.interval)
	}
	for _, e := range flowEvents(recs, fm.index.Load(), fm.interval, fm.hosts) {
		fm.emit(e)
	}
}

func protoName(p uint8) string {
	switch p {
	case protoTCP:
		return profiles.ProtoTCP
	case protoUDP:
		return profiles.ProtoUDP
	case protoICMP:
		return profiles.ProtoICMP
	}
	return strconv.Itoa(int(p))
}

// attribute fills who and which policy from the peer index.
func attribute(e *audit.Event, idx *peerIndex, client netip.Addr) {
	e.Source = audit.Source{Addr: client.String()}
	if idx == nil {
		return
	}
	if p := idx.byAddr[client]; p != nil {
		e.Actor = audit.Actor{UserID: p.UserID, Email: p.Email, Session: p.SessionID}
		e.Target.Peer, e.Target.Device, e.Target.Profile, e.Target.User = p.ID, p.Device, p.Profile, p.UserID
		e.PolicyVersion = idx.versions[p.Profile]
	}
}

// Details keys of flow records (audit's, named here too for the tunnel's
// readers).
const (
	FlowDetailFlows      = audit.FlowDetailFlows
	FlowDetailPacketsOut = audit.FlowDetailPacketsOut
	FlowDetailPacketsIn  = audit.FlowDetailPacketsIn
	FlowDetailFirst      = audit.FlowDetailFirst
	FlowDetailLast       = audit.FlowDetailLast
	FlowDetailInterval   = audit.FlowDetailInterval
	FlowDetailRule       = audit.FlowDetailRule
	FlowDetailHost       = audit.FlowDetailHost
	FlowDetailInterim    = audit.FlowDetailInterim
	FlowDetailFolded     = audit.FlowDetailFolded
	FlowDetailKey        = audit.FlowDetailKey
	FlowDetailAttempts   = audit.FlowDetailAttempts
)

// hostNamer names the host rule and the name whose DNS answer admitted a
// connection (grants.host); it is safe for concurrent use.
type hostNamer func(client, dst netip.Addr, proto uint8, port uint16) (name string, rule int, ok bool)

// maxFlowsPerEvent and maxFlowBytesPerEvent bound the tuples one flow
// event carries (about 170 bytes each, more with IPv6 addresses or host
// names), so that a record of a client with many destinations stays under
// 8 KiB, the message size syslog receivers take by default (rsyslog's
// maxMessageSize), in every export format.
const (
	maxFlowsPerEvent     = 32
	maxFlowBytesPerEvent = 5000
)

// flowTupleBytes estimates a tuple's encoded size.
func flowTupleBytes(f *audit.Flow) int { return 170 + len(f.Dst) + len(f.Host) }

// flowEvents renders an interval's records (sorted by client, as flush
// returns them) as audit events: one per client and verdict, holding its
// tuples (audit.Flow), split past maxFlowsPerEvent or
// maxFlowBytesPerEvent.
func flowEvents(recs []flowRecord, idx *peerIndex, interval time.Duration, hosts hostNamer) []audit.Event {
	var evs []audit.Event
	var sizes []int        // estimated tuple bytes of each event
	open := map[bool]int{} // verdict -> index in evs of the current client's event
	var client netip.Addr
	for i := range recs {
		r := &recs[i]
		if r.Key.Client != client {
			client = r.Key.Client
			clear(open)
		}
		j, ok := open[r.Key.Deny]
		if !ok || len(evs[j].Flows) >= maxFlowsPerEvent || sizes[j] >= maxFlowBytesPerEvent {
			evs = append(evs, newFlowEvent(r.Key, idx, interval))
			sizes = append(sizes, 0)
			j = len(evs) - 1
			open[r.Key.Deny] = j
		}
		addFlow(&evs[j], r, idx, hosts)
		sizes[j] += flowTupleBytes(&evs[j].Flows[len(evs[j].Flows)-1])
	}
	return evs
}

// newFlowEvent starts the flow event of k's client and verdict.
func newFlowEvent(k flowKey, idx *peerIndex, interval time.Duration) audit.Event {
	e := audit.Event{Type: audit.TypeFlowAccept, Outcome: audit.Success,
		Details: map[string]string{FlowDetailInterval: interval.String()}}
	if k.Deny {
		e.Type, e.Outcome, e.Reason = audit.TypeFlowDeny, audit.Failure, "not allowed by profile"
	}
	attribute(&e, idx, k.Client)
	// The user is the actor's; flow events do not repeat it as target.
	e.Target.User = ""
	return e
}

// addFlow adds r's tuple to e, naming the rule that admitted it and, for a
// host rule, the name whose DNS answer did.
func addFlow(e *audit.Event, r *flowRecord, idx *peerIndex, hosts hostNamer) {
	k := r.Key
	first := r.First
	if first.IsZero() { // a denial counted before the first poll's time was known
		first = r.Last
	}
	f := audit.Flow{Flows: r.Flows, PktsOut: r.PktsOut, PktsIn: r.PktsIn, BytesOut: r.BytesOut, BytesIn: r.BytesIn,
		First: first.UnixMilli(), Last: r.Last.UnixMilli(), Interim: r.Interim, Folded: r.Folded, Coarse: k.Coarse}
	if k.Dst.IsValid() {
		f.Dst = k.Dst.String()
	}
	if !k.Coarse {
		f.Proto = protoName(k.Proto)
		f.Port = int(k.Port)
	}
	if !k.Deny && !k.Coarse && idx != nil && e.Target.Profile != "" {
		p := profiles.Profile{Rules: idx.rules[e.Target.Profile]}
		if i, ok := p.RuleFor(k.Dst, k.Proto, k.Port); ok {
			f.Rule = strconv.Itoa(i)
			e.Details[FlowDetailRule+"."+f.Rule] = p.Rules[i].String()
		} else if hosts != nil {
			if name, i, ok := hosts(k.Client, k.Dst, k.Proto, k.Port); ok && i < len(p.Rules) {
				f.Rule, f.Host = strconv.Itoa(i), name
				e.Details[FlowDetailRule+"."+f.Rule] = p.Rules[i].String()
			}
		}
	}
	e.Flows = append(e.Flows, f)
}
