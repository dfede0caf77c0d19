package tunnel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"

	"github.com/ferryvpn/ferry/audit"
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

// flowMonitor turns conntrack DESTROY events of accepted connections into
// flow.accept events, rate limited per window.
type flowMonitor struct {
	pool    netip.Prefix
	pool6   netip.Prefix // the IPv6 client pool; zero when IPv4 only
	index   *atomic.Pointer[peerIndex]
	emit    func(audit.Event)
	now     func() time.Time
	window  time.Duration
	budget  int
	log     *slog.Logger
	metrics *metrics
}

// summary aggregates one client's flows over the budget in a window.
type summary struct {
	flows, denies uint64
	bytesIn       uint64
	bytesOut      uint64
	dests         map[netip.Addr]bool
}

func (fm *flowMonitor) run(ctx context.Context) error {
	conn, err := conntrack.Dial(nil)
	if err != nil {
		return fmt.Errorf("opening conntrack netlink: %w", err)
	}
	if err := conn.SetReadBuffer(8 << 20); err != nil {
		fm.log.Warn("cannot raise conntrack socket buffer", "err", err)
	}
	evs := make(chan conntrack.Event, 1024)
	errCh, err := conn.Listen(evs, 1, []netfilter.NetlinkGroup{netfilter.GroupCTDestroy})
	if err != nil {
		conn.Close()
		return fmt.Errorf("listening to conntrack events: %w", err)
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
	tick := time.NewTicker(fm.window)
	defer tick.Stop()
	sent := 0
	over := map[netip.Addr]*summary{}
	for {
		select {
		case <-ctx.Done():
			fm.flushSummaries(over)
			return nil
		case err := <-errCh:
			if err != nil {
				fm.log.Warn("conntrack event stream failed", "err", err)
			}
			return err
		case <-tick.C:
			fm.flushSummaries(over)
			over = map[netip.Addr]*summary{}
			sent = 0
		case ev := <-evs:
			f := ev.Flow
			if ev.Type != conntrack.EventDestroy || f == nil {
				continue
			}
			src := f.TupleOrig.IP.SourceAddress.Unmap()
			if !(fm.pool.Contains(src) || fm.pool6.Contains(src)) || f.Mark != clientMark(src) {
				continue
			}
			fm.metrics.flows.WithLabelValues("accept").Inc()
			if sent < fm.budget {
				sent++
				fm.emit(fm.flowEvent(f, src))
				continue
			}
			s := over[src]
			if s == nil {
				s = &summary{dests: map[netip.Addr]bool{}}
				over[src] = s
			}
			s.flows++
			s.bytesOut += f.CountersOrig.Bytes
			s.bytesIn += f.CountersReply.Bytes
			s.dests[f.TupleOrig.IP.DestinationAddress.Unmap()] = true
		}
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

func (fm *flowMonitor) flowEvent(f *conntrack.Flow, src netip.Addr) audit.Event {
	t := f.TupleOrig
	e := audit.Event{
		Type:     audit.TypeFlowAccept,
		Outcome:  audit.Success,
		Target:   audit.Target{DstAddr: t.IP.DestinationAddress.Unmap().String(), Protocol: protoName(t.Proto.Protocol)},
		BytesOut: f.CountersOrig.Bytes,
		BytesIn:  f.CountersReply.Bytes,
		Details: map[string]string{
			"packets_out": strconv.FormatUint(f.CountersOrig.Packets, 10),
			"packets_in":  strconv.FormatUint(f.CountersReply.Packets, 10),
		},
	}
	if t.Proto.Protocol == protoTCP || t.Proto.Protocol == protoUDP {
		e.Target.DstPort = int(t.Proto.DestinationPort)
		e.Details["src_port"] = strconv.Itoa(int(t.Proto.SourcePort))
	}
	if !f.Timestamp.Start.IsZero() {
		stop := f.Timestamp.Stop
		if stop.IsZero() {
			stop = fm.now()
		}
		e.Duration = stop.Sub(f.Timestamp.Start)
		e.Details["start"] = f.Timestamp.Start.UTC().Format(time.RFC3339Nano)
	}
	attribute(&e, fm.index.Load(), src)
	return e
}

func (fm *flowMonitor) flushSummaries(over map[netip.Addr]*summary) {
	idx := fm.index.Load()
	for client, s := range over {
		e := audit.Event{Type: audit.TypeFlowAccept, Outcome: audit.Success, BytesOut: s.bytesOut, BytesIn: s.bytesIn,
			Details: map[string]string{"summary": "true", "flows": strconv.FormatUint(s.flows, 10),
				"destinations": strconv.Itoa(len(s.dests)), "window": fm.window.String()}}
		attribute(&e, idx, client)
		fm.emit(e)
	}
}

// denyMonitor reads the denied-attempts set every interval and reports
// what grew as flow.deny events: one per (client, destination, protocol,
// port) with its count, at most budget per interval, the rest summarised
// per client. It also feeds the drop counters to the metrics.
type denyMonitor struct {
	read     func() (map[denyKey]uint64, error)
	counters func() (map[string]uint64, error)
	index    *atomic.Pointer[peerIndex]
	emit     func(audit.Event)
	interval time.Duration
	budget   int
	log      *slog.Logger
	metrics  *metrics
	last     map[denyKey]uint64
}

func (dm *denyMonitor) run(ctx context.Context) {
	t := time.NewTicker(dm.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dm.poll()
			return
		case <-t.C:
			dm.poll()
		}
	}
}

func (dm *denyMonitor) poll() {
	if c, err := dm.counters(); err != nil {
		dm.log.Warn("reading drop counters failed", "err", err)
	} else {
		dm.metrics.setDrops(c)
	}
	cur, err := dm.read()
	if err != nil {
		dm.log.Warn("reading denied attempts failed", "err", err)
		return
	}
	idx := dm.index.Load()
	sent := 0
	over := map[netip.Addr]*summary{}
	for k, n := range cur {
		prev := dm.last[k]
		if n <= prev {
			continue
		}
		delta := n - prev
		dm.metrics.flows.WithLabelValues("deny").Add(float64(delta))
		if sent < dm.budget {
			sent++
			e := audit.Event{Type: audit.TypeFlowDeny, Outcome: audit.Failure, Reason: "not allowed by profile",
				Target:  audit.Target{DstAddr: k.Dst.String(), Protocol: protoName(k.Proto)},
				Details: map[string]string{"attempts": strconv.FormatUint(delta, 10), "interval": dm.interval.String()}}
			if k.Proto == protoTCP || k.Proto == protoUDP {
				e.Target.DstPort = int(k.Port)
			}
			attribute(&e, idx, k.Client)
			dm.emit(e)
			continue
		}
		s := over[k.Client]
		if s == nil {
			s = &summary{dests: map[netip.Addr]bool{}}
			over[k.Client] = s
		}
		s.denies += delta
		s.dests[k.Dst] = true
	}
	for client, s := range over {
		e := audit.Event{Type: audit.TypeFlowDeny, Outcome: audit.Failure, Reason: "not allowed by profile",
			Details: map[string]string{"summary": "true", "attempts": strconv.FormatUint(s.denies, 10),
				"destinations": strconv.Itoa(len(s.dests)), "interval": dm.interval.String()}}
		attribute(&e, idx, client)
		dm.emit(e)
	}
	dm.last = cur
}
