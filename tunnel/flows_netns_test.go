package tunnel_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/report"
	"github.com/ferryvpn/ferry/report/reporttest"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// flowSum is what the flow records of one key add up to.
type flowSum struct {
	records, flows, interim uint64
	bytesOut, bytesIn       uint64
	rules                   map[string]bool
}

func sumFlows(evs []audit.Event) map[string]*flowSum {
	out := map[string]*flowSum{}
	for _, e := range expandFlows(evs) {
		if e.Type != audit.TypeFlowAccept && e.Type != audit.TypeFlowDeny {
			continue
		}
		k := fmt.Sprintf("%s %s %s %s:%d", e.Type, e.Actor.UserID, e.Target.Protocol, e.Target.DstAddr, e.Target.DstPort)
		s := out[k]
		if s == nil {
			s = &flowSum{rules: map[string]bool{}}
			out[k] = s
		}
		u := func(n string) uint64 { v, _ := strconv.ParseUint(e.Details[n], 10, 64); return v }
		s.records++
		s.flows += u("flows")
		s.interim += u("interim")
		s.bytesOut += e.BytesOut
		s.bytesIn += e.BytesIn
		s.rules[e.Details["rule"]] = true
	}
	return out
}

// TestFlowRecordsNetns: two clients, two destinations, a known mix of
// allowed and denied connections, one of them held open past the active
// timeout: the flow records and the access report match it exactly.
func TestFlowRecordsNetns(t *testing.T) {
	tp := startTopology(t)
	s1, c1, c2 := tp.s1, tp.c1, tp.c2
	// Warm-up on 7001, which the assertions leave out.
	waitFor(t, "c1 tcp 10.99.0.1:7001", 15*time.Second, probe(c1, "tcp", "10.99.0.1:7001"))
	waitFor(t, "c2 tcp 10.99.0.1:7001", 15*time.Second, probe(c2, "tcp", "10.99.0.1:7001"))

	// alice: three transfers of 1000 bytes to the sink, and a denied
	// attempt to a port of 10.99.0.2 no rule allows.
	for range 3 {
		c1.Must(t, tunneltest.Request{Op: "transfer", Addr: "10.99.0.1:7004", Bytes: 1000})
	}
	never(t, "alice to 10.99.0.2:7001", probe(c1, "tcp", "10.99.0.2:7001"))
	// bob: two UDP echoes, one ping to the second destination, and a
	// connection held open past the active timeout.
	for range 2 {
		c2.Must(t, tunneltest.Request{Op: "probe", Proto: "udp", Addr: "10.99.0.1:7002", Timeout: time.Second})
	}
	c2.Must(t, tunneltest.Request{Op: "ping", Addr: "10.99.0.2", Timeout: time.Second})
	c2.Must(t, tunneltest.Request{Op: "hold", Addr: "10.99.0.1:7004"})

	want := map[string]struct {
		flows uint64
		rule  string
	}{
		"flow.accept alice tcp 10.99.0.1:7004": {3, "0: tcp 10.99.0.1/32 7001,7004"},
		"flow.accept bob udp 10.99.0.1:7002":   {2, "1: udp 10.99.0.0/24 7002"},
		"flow.accept bob icmp 10.99.0.2:0":     {1, "2: icmp 10.99.0.2/32"},
	}
	var evs []audit.Event
	var sums map[string]*flowSum
	waitFor(t, "flow records of the known mix", 30*time.Second, func() error {
		evs = s1.Must(t, tunneltest.Request{Op: "events"}).Events
		sums = sumFlows(evs)
		for k, w := range want {
			if s := sums[k]; s == nil || s.flows != w.flows {
				return fmt.Errorf("%s: %+v, want %d flows", k, s, w.flows)
			}
		}
		if s := sums["flow.accept bob tcp 10.99.0.1:7004"]; s == nil || s.interim == 0 {
			return fmt.Errorf("no interim record of bob's open connection: %+v", s)
		}
		if s := sums["flow.deny alice tcp 10.99.0.2:7001"]; s == nil || s.flows == 0 {
			return fmt.Errorf("no denied record of alice's attempt: %+v", s)
		}
		return nil
	})
	for k, w := range want {
		s := sums[k]
		if len(s.rules) != 1 || !s.rules[w.rule] {
			t.Errorf("%s: rules %v, want %q", k, s.rules, w.rule)
		}
	}
	a := sums["flow.accept alice tcp 10.99.0.1:7004"]
	// 3,000 bytes of payload plus headers: about ten packets of 52-60
	// bytes per connection each way.
	if a.bytesOut < 3000 || a.bytesOut > 3000+3*1000 || a.bytesIn == 0 || a.bytesIn > 3*1000 {
		t.Errorf("alice's bytes: out %d in %d, want 3000 payload within protocol overhead", a.bytesOut, a.bytesIn)
	}
	if s := sums["flow.accept bob tcp 10.99.0.1:7004"]; s.flows != 1 {
		t.Errorf("bob's open connection counted %d times, want once", s.flows)
	}
	if s := sums["flow.deny alice tcp 10.99.0.2:7001"]; len(s.rules) != 1 || !s.rules[""] {
		t.Errorf("a denied record names a rule: %v", s.rules)
	}

	// The access report from the same records.
	j := &reporttest.Journal{}
	if err := j.Add(evs...); err != nil {
		t.Fatal(err)
	}
	r, err := report.Open(report.Config{Path: filepath.Join(t.TempDir(), "r.db"), Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Access(context.Background(), report.AccessQuery{})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]report.AccessRow{}
	for _, row := range rep.Rows {
		rows[fmt.Sprintf("%s %s %s:%d", row.User, row.Protocol, row.Dst, row.Port)] = row
	}
	for k, w := range map[string]struct{ flows, denied uint64 }{
		"alice tcp 10.99.0.1:7004": {3, 0},
		"bob udp 10.99.0.1:7002":   {2, 0},
		"bob icmp 10.99.0.2:0":     {1, 0},
		"bob tcp 10.99.0.1:7004":   {1, 0},
		"alice tcp 10.99.0.2:7001": {0, sums["flow.deny alice tcp 10.99.0.2:7001"].flows},
	} {
		row, ok := rows[k]
		if !ok || row.Flows != w.flows || row.Denied != w.denied || row.Profile != "eng" {
			t.Errorf("access row %s: %+v, want %d flows and %d denied", k, row, w.flows, w.denied)
		}
	}
	if row := rows["alice tcp 10.99.0.1:7004"]; row.BytesOut != a.bytesOut || row.BytesIn != a.bytesIn {
		t.Errorf("access row bytes %d/%d, records %d/%d", row.BytesOut, row.BytesIn, a.bytesOut, a.bytesIn)
	}
}
