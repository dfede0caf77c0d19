package report

import (
	"context"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

// batchFlows turns single-tuple flow events into batched ones, as the
// tunnel writes them: one event per user, verdict and time, holding each
// tuple as an audit.Flow.
func batchFlows(evs []audit.Event) []audit.Event {
	var out []audit.Event
	open := map[string]int{}
	for _, e := range evs {
		if !e.IsFlow() {
			out = append(out, e)
			continue
		}
		k := e.Actor.UserID + " " + string(e.Type) + " " + e.Time.String()
		i, ok := open[k]
		if !ok {
			b := e
			b.ID, b.Target.DstAddr, b.Target.DstPort, b.Target.Protocol, b.Target.User = e.ID+"-b", "", 0, "", ""
			b.BytesIn, b.BytesOut, b.Details, b.Flows = 0, 0, map[string]string{"interval": "1m0s"}, nil
			out = append(out, b)
			i = len(out) - 1
			open[k] = i
		}
		u := func(n string) uint64 { v, _ := strconv.ParseUint(e.Details[n], 10, 64); return v }
		ms := func(n string) int64 { t, _ := time.Parse(time.RFC3339Nano, e.Details[n]); return t.UnixMilli() }
		out[i].Flows = append(out[i].Flows, audit.Flow{Dst: e.Target.DstAddr, Port: e.Target.DstPort, Proto: e.Target.Protocol,
			Flows: u("flows"), PktsOut: u("packets_out"), PktsIn: u("packets_in"), BytesOut: e.BytesOut, BytesIn: e.BytesIn,
			First: ms("first"), Last: ms("last")})
	}
	return out
}

// TestRollupBatchedFlows: batched flow events (several tuples per journal
// record) fold into exactly the rollup their tuples as single events do.
func TestRollupBatchedFlows(t *testing.T) {
	single, batched := &memJournal{}, &memJournal{}
	sampleTraffic(single, t)
	var evs []audit.Event
	for h := range 48 {
		at := t0.Add(time.Duration(h) * time.Hour)
		evs = append(evs,
			flowEv(at, "alice", "laptop", "eng", "10.0.4.17", 5432, false, 2, 100, 1000),
			flowEv(at, "alice", "laptop", "eng", "10.0.4.18", 5433, false, 1, 7, 9))
	}
	single.add(t, evs...)
	sampleTraffic(batched, t)
	batched.add(t, batchFlows(evs)...)
	var reports [2]AccessReport
	for i, j := range []*memJournal{single, batched} {
		r := openRollup(t, j, filepath.Join(t.TempDir(), "r.db"))
		if _, err := r.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		rep, err := r.Access(context.Background(), AccessQuery{By: "hour"})
		if err != nil {
			t.Fatal(err)
		}
		reports[i] = rep
	}
	if len(reports[0].Rows) == 0 || !reflect.DeepEqual(reports[0].Rows, reports[1].Rows) {
		t.Errorf("batched flows fold differently:\nsingle  %+v\nbatched %+v", reports[0].Rows, reports[1].Rows)
	}
}
