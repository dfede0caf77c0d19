package tunnel

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ti-mo/conntrack"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/audit/auditfile"
	"github.com/ferryvpn/ferry/profiles"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

type flowHarness struct {
	fm     *flowMonitor
	clock  *fakeClock
	events []audit.Event // flow records, one per tuple (FlowRecords)
	raw    []audit.Event // the events as emitted
	denied map[denyKey]uint64
}

func newFlowHarness(t testing.TB, maxRecords int) *flowHarness {
	t.Helper()
	h := &flowHarness{clock: &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, denied: map[denyKey]uint64{}}
	var idx atomic.Pointer[peerIndex]
	eng := []profiles.Rule{
		{CIDR: netip.MustParsePrefix("10.99.0.1/32"), Protocol: profiles.ProtoTCP, Ports: []profiles.PortRange{{From: 7001, To: 7001}}},
		{CIDR: netip.MustParsePrefix("10.99.0.0/24"), Protocol: profiles.ProtoTCP},
	}
	idx.Store(&peerIndex{byAddr: map[netip.Addr]*profiles.Peer{
		netip.MustParseAddr("100.64.0.11"): {ID: "pa", UserID: "alice", Email: "alice@example.com", Device: "laptop", Profile: "eng"},
		netip.MustParseAddr("100.64.0.12"): {ID: "pb", UserID: "bob", Device: "phone", Profile: "eng"},
	}, versions: map[string]uint64{"eng": 42}, rules: map[string][]profiles.Rule{"eng": eng}})
	h.fm = newFlowMonitor(flowMonitor{pool: netip.MustParsePrefix("100.64.0.0/16"), index: &idx,
		emit: func(e audit.Event) { h.raw = append(h.raw, e); h.events = append(h.events, e.FlowRecords()...) }, now: h.clock.now,
		interval: time.Minute, activeTimeout: 5 * time.Minute, denyInterval: 10 * time.Second,
		log: slog.New(slog.DiscardHandler), metrics: newMetrics(),
		denied:   func() (map[denyKey]uint64, error) { return clone(h.denied), nil },
		counters: func() (map[string]uint64, error) { return map[string]uint64{}, nil }}, maxRecords)
	return h
}

func clone(m map[denyKey]uint64) map[denyKey]uint64 {
	out := make(map[denyKey]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

var ctID atomic.Uint32

func ctFlow(client, dst string, proto uint8, dport uint16, out, in uint64, start, stop time.Time) conntrack.Flow {
	src := netip.MustParseAddr(client)
	f := conntrack.Flow{ID: ctID.Add(1), Mark: clientMark(src)}
	f.TupleOrig.IP.SourceAddress, f.TupleOrig.IP.DestinationAddress = src, netip.MustParseAddr(dst)
	f.TupleOrig.Proto.Protocol, f.TupleOrig.Proto.DestinationPort, f.TupleOrig.Proto.SourcePort = proto, dport, 40000
	f.CountersOrig.Bytes, f.CountersOrig.Packets = out, out/100+1
	f.CountersReply.Bytes, f.CountersReply.Packets = in, in/100+1
	f.Timestamp.Start, f.Timestamp.Stop = start, stop
	return f
}

func detailU(t *testing.T, e audit.Event, k string) uint64 {
	t.Helper()
	if e.Details[k] == "" {
		return 0
	}
	v, err := strconv.ParseUint(e.Details[k], 10, 64)
	if err != nil {
		t.Fatalf("detail %s=%q: %v", k, e.Details[k], err)
	}
	return v
}

// TestFlowRecordsAggregate: connections and denied attempts of one interval
// become one record per (client, destination, protocol, port, verdict),
// with counts, the rule that decided and the policy version.
func TestFlowRecordsAggregate(t *testing.T) {
	h := newFlowHarness(t, 100)
	t0 := h.clock.t
	for i := range 3 {
		f := ctFlow("100.64.0.11", "10.99.0.1", protoTCP, 7001, 1000, 2000, t0.Add(time.Duration(i)*time.Second), t0.Add(time.Duration(i+1)*time.Second))
		h.fm.destroyed(&f)
	}
	f := ctFlow("100.64.0.12", "10.99.0.5", protoTCP, 22, 10, 20, t0, t0.Add(time.Second))
	h.fm.destroyed(&f)
	// Not a tunnel client's accepted connection: no mark.
	other := ctFlow("100.64.0.12", "10.99.0.5", protoTCP, 22, 10, 20, t0, t0)
	other.Mark = 0
	h.fm.destroyed(&other)
	h.denied[denyKey{Client: netip.MustParseAddr("100.64.0.11"), Dst: netip.MustParseAddr("10.98.0.1"), Proto: protoTCP, Port: 5432}] = 4
	h.fm.pollDenied()
	h.denied[denyKey{Client: netip.MustParseAddr("100.64.0.11"), Dst: netip.MustParseAddr("10.98.0.1"), Proto: protoTCP, Port: 5432}] = 7
	h.clock.t = t0.Add(time.Minute)
	h.fm.pollDenied()
	h.fm.flush()
	if len(h.events) != 3 {
		t.Fatalf("got %d records, want 3: %+v", len(h.events), h.events)
	}
	byKey := map[string]audit.Event{}
	for _, e := range h.events {
		byKey[fmt.Sprintf("%s %s %s:%d", e.Type, e.Actor.UserID, e.Target.DstAddr, e.Target.DstPort)] = e
	}
	a := byKey["flow.accept alice 10.99.0.1:7001"]
	if detailU(t, a, FlowDetailFlows) != 3 || a.BytesOut != 3000 || a.BytesIn != 6000 || a.PolicyVersion != 42 ||
		a.Details[FlowDetailRule] != "0: tcp 10.99.0.1/32 7001" || a.Target.Profile != "eng" || a.Target.Device != "laptop" ||
		a.Details[FlowDetailFirst] != t0.Format(time.RFC3339Nano) || a.Duration != 3*time.Second {
		t.Errorf("alice's accepted record: %+v", a)
	}
	b := byKey["flow.accept bob 10.99.0.5:22"]
	if detailU(t, b, FlowDetailFlows) != 1 || b.Details[FlowDetailRule] != "1: tcp 10.99.0.0/24" {
		t.Errorf("bob's accepted record: %+v", b)
	}
	d := byKey["flow.deny alice 10.98.0.1:5432"]
	if detailU(t, d, FlowDetailFlows) != 7 || detailU(t, d, FlowDetailAttempts) != 7 || d.Outcome != audit.Failure || d.Details[FlowDetailRule] != "" {
		t.Errorf("alice's denied record: %+v", d)
	}
	h.events = nil
	h.fm.flush()
	if len(h.events) != 0 {
		t.Errorf("an empty interval recorded %d records", len(h.events))
	}
}

// TestFlowRecordsInterim: a connection open past the active timeout is
// reported while open; flows count it once, and the bytes of its interim
// and final reports add up to its total.
func TestFlowRecordsInterim(t *testing.T) {
	h := newFlowHarness(t, 100)
	t0 := h.clock.t
	long := ctFlow("100.64.0.11", "10.99.0.1", protoTCP, 7001, 5000, 9000, t0, time.Time{})
	short := ctFlow("100.64.0.12", "10.99.0.1", protoTCP, 7001, 5, 9, t0.Add(4*time.Minute), time.Time{})
	h.clock.t = t0.Add(5 * time.Minute)
	h.fm.interim([]conntrack.Flow{long, short})
	h.fm.flush()
	if len(h.events) != 1 {
		t.Fatalf("interim: got %d records, want 1 (only the connection open past the timeout): %+v", len(h.events), h.events)
	}
	e := h.events[0]
	if detailU(t, e, FlowDetailFlows) != 1 || detailU(t, e, FlowDetailInterim) != 1 || e.BytesOut != 5000 || e.BytesIn != 9000 {
		t.Errorf("interim record: %+v", e)
	}
	long.CountersOrig.Bytes, long.CountersReply.Bytes = 8000, 12000
	h.clock.t = t0.Add(10 * time.Minute)
	h.fm.interim([]conntrack.Flow{long})
	long.CountersOrig.Bytes, long.CountersReply.Bytes = 8500, 12100
	long.Timestamp.Stop = t0.Add(11 * time.Minute)
	h.fm.destroyed(&long)
	h.fm.flush()
	e = h.events[1]
	if detailU(t, e, FlowDetailFlows) != 0 || detailU(t, e, FlowDetailInterim) != 1 || e.BytesOut != 3500 || e.BytesIn != 3100 {
		t.Errorf("second interval's record: %+v", e)
	}
	if len(h.fm.open) != 0 {
		t.Errorf("ended connection still remembered: %v", h.fm.open)
	}
}

// TestFlowRecordsOverload: more distinct tuples in an interval than the cap
// fold to coarser keys; the folded counts and the flows add up to what was
// sent, and the metric says how many were folded.
func TestFlowRecordsOverload(t *testing.T) {
	const maxRecords, sent = 50, 2000
	h := newFlowHarness(t, maxRecords)
	t0 := h.clock.t
	for i := range sent {
		client := []string{"100.64.0.11", "100.64.0.12", "100.64.0.13"}[i%3]
		dst := fmt.Sprintf("10.99.%d.%d", i/200, i%50)
		f := ctFlow(client, dst, protoTCP, uint16(1000+i), 100, 200, t0, t0)
		h.fm.destroyed(&f)
	}
	h.fm.flush()
	var flows, folded, bytes uint64
	coarse := 0
	for _, e := range h.events {
		flows += detailU(t, e, FlowDetailFlows)
		folded += detailU(t, e, FlowDetailFolded)
		bytes += e.BytesOut
		if e.Details[FlowDetailKey] == "coarse" {
			coarse++
			if e.Target.DstPort != 0 || e.Target.Protocol != "" {
				t.Errorf("coarse record keeps a port: %+v", e)
			}
		}
	}
	t.Logf("%d tuples, cap %d: %d records, %d coarse, %d folded", sent, maxRecords, len(h.events), coarse, folded)
	if flows != sent || bytes != sent*100 {
		t.Errorf("flows %d bytes %d, want %d and %d", flows, bytes, sent, sent*100)
	}
	if folded != sent-maxRecords {
		t.Errorf("folded %d, want %d", folded, sent-maxRecords)
	}
	if m := counterValue(t, h.fm.metrics.folded); m != float64(sent-maxRecords) {
		t.Errorf("ferry_tunnel_flow_folded_total = %v, want %d", m, sent-maxRecords)
	}
	if max := maxRecords + maxRecords/2 + 3; len(h.events) > max {
		t.Errorf("%d records, want at most %d", len(h.events), max)
	}
}

// counterValue reads a counter through a registry's text of it.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	r := prometheus.NewRegistry()
	r.MustRegister(c)
	mfs, err := r.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathering counter: %v", err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

// TestFlowEventsCompact: an interval's tuples travel as one flow event per
// client and verdict (audit.Flow), split past maxFlowsPerEvent, and a
// user's five active destinations cost at most flowBytesPerTuple of
// journal record each (the budget is 416 bytes of disk per tuple,
// the journal's overhead included; see BenchmarkFlowJournalGrowth).
func TestFlowEventsCompact(t *testing.T) {
	const flowBytesPerTuple = 250
	h := newFlowHarness(t, 10_000)
	t0 := h.clock.t
	for port := range 5 {
		for i := range 3 {
			f := ctFlow("100.64.0.11", "10.99.0.7", protoTCP, uint16(8000+port), 123456, 1234567, t0.Add(time.Duration(i)*time.Second), t0.Add(59*time.Second))
			h.fm.destroyed(&f)
		}
	}
	h.denied[denyKey{Client: netip.MustParseAddr("100.64.0.11"), Dst: netip.MustParseAddr("10.98.0.1"), Proto: protoTCP, Port: 5432}] = 2
	h.clock.t = t0.Add(time.Minute)
	h.fm.pollDenied()
	h.fm.flush()
	if len(h.raw) == 2 && h.raw[0].Type == audit.TypeFlowDeny {
		h.raw[0], h.raw[1] = h.raw[1], h.raw[0]
	}
	if len(h.raw) != 2 || len(h.raw[0].Flows) != 5 || h.raw[0].Type != audit.TypeFlowAccept || len(h.raw[1].Flows) != 1 || h.raw[1].Type != audit.TypeFlowDeny {
		t.Fatalf("want one accept event with 5 tuples and one deny event with 1, got %d events: %+v", len(h.raw), h.raw)
	}
	acc := h.raw[0]
	acc.ID, acc.Time, acc.Node = "0190a1b2c3d4e5f60718293a4b5c6d7e", t0.Add(time.Minute), "node-1"
	acc.Actor.Session = "s-0123456789abcdef"
	acc.Target.Peer = "p-0123456789abcdef"
	raw, err := json.Marshal(&acc)
	if err != nil {
		t.Fatal(err)
	}
	data, err := auditfile.Canonical(raw)
	if err != nil {
		t.Fatal(err)
	}
	if per := len(data) / len(acc.Flows); per > flowBytesPerTuple {
		t.Errorf("flow record: %d bytes per tuple, want at most %d:\n%s", per, flowBytesPerTuple, data)
	}
	if rule := acc.Details[FlowDetailRule+".1"]; rule != "tcp 10.99.0.0/24" {
		t.Errorf("the rule's text is stored once per event: got %q in %v", rule, acc.Details)
	}

	// A client with more tuples than one event holds: several events,
	// every tuple kept.
	h.raw, h.events = nil, nil
	n := maxFlowsPerEvent*2 + 3
	for port := range n {
		f := ctFlow("100.64.0.12", "10.99.0.7", protoTCP, uint16(10000+port), 1, 1, t0, t0)
		h.fm.destroyed(&f)
	}
	h.fm.flush()
	if len(h.raw) != 3 || len(h.events) != n {
		t.Errorf("%d tuples: %d events, %d records; want 3 events, %d records", n, len(h.raw), len(h.events), n)
	}
	for _, e := range h.raw {
		e.ID, e.Time, e.Node = "0190a1b2c3d4e5f60718293a4b5c6d7e", t0, "node-1"
		if b, _ := json.Marshal(&e); len(b) > 7000 {
			t.Errorf("a flow event of %d tuples is %d bytes: over what syslog receivers take by default (8 KiB with the header)", len(e.Flows), len(b))
		}
	}
}
