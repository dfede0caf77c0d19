package audit_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

// batchedFlow is a flow event as the tunnel writes it: one client's
// tuples of one interval.
func batchedFlow(tuples int) audit.Event {
	e := audit.Event{Type: audit.TypeFlowAccept, Outcome: audit.Success,
		Actor:         audit.Actor{UserID: "alice", Email: "alice@example.com", Session: "s-1"},
		Source:        audit.Source{Addr: "100.64.0.11"},
		Target:        audit.Target{Peer: "p-1", Device: "laptop", Profile: "eng"},
		PolicyVersion: 42,
		Details:       map[string]string{"interval": "1m0s", "rule.0": "tcp 10.99.0.0/24 5432"}}
	t0 := time.Date(2026, 2, 3, 4, 5, 0, 0, time.UTC)
	for i := range tuples {
		e.Flows = append(e.Flows, audit.Flow{Dst: "10.99.0." + string(rune('1'+i)), Port: 5432, Proto: "tcp", Rule: "0",
			Flows: uint64(i + 1), PktsOut: 10, PktsIn: 20, BytesOut: 100, BytesIn: 1000,
			First: t0.UnixMilli(), Last: t0.Add(30 * time.Second).UnixMilli()})
	}
	return e
}

// FlowRecords expands a batched flow event into one event per tuple in the
// single-tuple shape (what reports and SIEM rules read), and leaves a
// single-tuple event as it is.
func TestFlowRecordsExpand(t *testing.T) {
	e := batchedFlow(3)
	e.ID = "ev1"
	recs := e.FlowRecords()
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	r := recs[1]
	if r.ID != "ev1.1" || r.Target.DstAddr != "10.99.0.2" || r.Target.DstPort != 5432 || r.Target.Protocol != "tcp" ||
		r.Target.User != "alice" || r.BytesOut != 100 || r.BytesIn != 1000 || r.Duration != 30*time.Second || r.Flows != nil ||
		r.Details["flows"] != "2" || r.Details["packets_out"] != "10" || r.Details["packets_in"] != "20" ||
		r.Details["first"] != "2026-02-03T04:05:00Z" || r.Details["last"] != "2026-02-03T04:05:30Z" ||
		r.Details["rule"] != "0: tcp 10.99.0.0/24 5432" || r.Details["interval"] != "1m0s" {
		t.Errorf("tuple 1: %+v", r)
	}
	if e.Flows == nil || e.Details["flows"] != "" {
		t.Error("expanding changed the event")
	}
	old := flowEvent(1)
	if got := old.FlowRecords(); len(got) != 1 || got[0].Target.DstAddr != old.Target.DstAddr {
		t.Errorf("a single-tuple event: %+v", got)
	}
	login := loginEvent(1)
	if got := login.FlowRecords(); got != nil {
		t.Errorf("a login has flow records: %+v", got)
	}
}

// A batched flow event is one message per journal record in every format:
// JSON carries the record as stored (so it verifies), CEF and OCSF carry
// the totals, the single destination when there is one, and every tuple.
func TestFlowEventFormats(t *testing.T) {
	for _, tuples := range []int{1, 3} {
		ent := entryFor(batchedFlow(tuples), 7)
		line, err := audit.CEF{}.Append(nil, &ent)
		if err != nil {
			t.Fatal(err)
		}
		_, ext := cefFields(t, string(line))
		wantCnt := map[int]string{1: "1", 3: "6"}[tuples]
		if ext["cnt"] != wantCnt || ext["in"] != map[int]string{1: "1000", 3: "3000"}[tuples] || !strings.Contains(ext["msg"], `"flows":[`) {
			t.Errorf("CEF, %d tuples: %v", tuples, ext)
		}
		if (ext["dst"] == "10.99.0.1") != (tuples == 1) || (ext["dpt"] == "5432") != (tuples == 1) {
			t.Errorf("CEF, %d tuples: dst %q dpt %q", tuples, ext["dst"], ext["dpt"])
		}
		b, err := audit.OCSF{}.Append(nil, &ent)
		if err != nil {
			t.Fatal(err)
		}
		var o map[string]any
		if err := json.Unmarshal(b, &o); err != nil {
			t.Fatal(err)
		}
		fl, _ := lookup(o, "unmapped.flows")
		bytesIn, _ := lookup(o, "traffic.bytes_in")
		if arr, ok := fl.([]any); !ok || len(arr) != tuples || bytesIn != float64(1000*tuples) || o["class_uid"] != float64(4001) {
			t.Errorf("OCSF, %d tuples: %s", tuples, b)
		}
		if ip, _ := lookup(o, "dst_endpoint.ip"); (ip == "10.99.0.1") != (tuples == 1) {
			t.Errorf("OCSF, %d tuples: dst_endpoint %v", tuples, o["dst_endpoint"])
		}
	}
}
