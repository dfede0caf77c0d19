package report

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/report/reporttest"
)

// memJournal is reporttest.Journal with a test's failure on bad input.
type memJournal struct{ reporttest.Journal }

func (j *memJournal) add(t testing.TB, evs ...audit.Event) {
	t.Helper()
	if err := j.Add(evs...); err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func flowEv(at time.Time, user, device, profile, dst string, port int, deny bool, flows, out, in uint64) audit.Event {
	e := audit.Event{ID: fmt.Sprintf("ev-%s-%d-%s-%d", user, at.UnixNano(), dst, port), Time: at, Type: audit.TypeFlowAccept, Outcome: audit.Success,
		Actor:    audit.Actor{UserID: user, Email: user + "@example.com"},
		Target:   audit.Target{User: user, Device: device, Profile: profile, DstAddr: dst, DstPort: port, Protocol: "tcp"},
		BytesOut: out, BytesIn: in, PolicyVersion: 7,
		Details: map[string]string{"flows": fmt.Sprint(flows), "packets_out": "3", "packets_in": "2",
			"first": at.Add(-30 * time.Second).Format(time.RFC3339Nano), "last": at.Format(time.RFC3339Nano)}}
	if deny {
		e.Type, e.Outcome = audit.TypeFlowDeny, audit.Failure
		e.BytesOut, e.BytesIn = 0, 0
	}
	return e
}

// sampleTraffic is a known mix over two days.
func sampleTraffic(j *memJournal, t testing.TB) {
	for h := range 48 {
		at := t0.Add(time.Duration(h) * time.Hour)
		j.add(t, flowEv(at, "alice", "laptop", "eng", "10.0.4.17", 5432, false, 2, 100, 1000))
		if h%2 == 0 {
			j.add(t, flowEv(at, "bob", "phone", "eng", "10.0.4.17", 5432, false, 1, 10, 20))
		}
		j.add(t, flowEv(at, "bob", "phone", "eng", "10.0.9.1", 22, true, 3, 0, 0))
		j.add(t, audit.Event{ID: fmt.Sprint("login-", h), Time: at, Type: audit.TypeLogin, Outcome: audit.Success})
	}
}

func openRollup(t *testing.T, j audit.Journal, path string) *Rollup {
	t.Helper()
	r, err := Open(Config{Path: path, Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestAccessReport(t *testing.T) {
	j := &memJournal{}
	sampleTraffic(j, t)
	r := openRollup(t, j, filepath.Join(t.TempDir(), "r.db"))
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		q    AccessQuery
		want []string // user dst:port flows denied bytes_out
	}{
		{"everything", AccessQuery{}, []string{"alice 10.0.4.17:5432 96 0 4800", "bob 10.0.4.17:5432 24 0 240", "bob 10.0.9.1:22 0 144 0"}},
		{"who reached 10.0.4.17:5432", AccessQuery{Dst: netip.MustParsePrefix("10.0.4.17/32"), Port: 5432},
			[]string{"alice 10.0.4.17:5432 96 0 4800", "bob 10.0.4.17:5432 24 0 240"}},
		{"what did bob reach, by email", AccessQuery{User: "bob@example.com"}, []string{"bob 10.0.4.17:5432 24 0 240", "bob 10.0.9.1:22 0 144 0"}},
		{"a time range across a day boundary", AccessQuery{User: "alice", Since: t0.Add(13 * time.Hour), Until: t0.Add(40*time.Hour + 30*time.Minute)},
			[]string{"alice 10.0.4.17:5432 56 0 2800"}},
		{"nothing", AccessQuery{Profile: "ops"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := r.Access(context.Background(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, row := range rep.Rows {
				got = append(got, fmt.Sprintf("%s %s:%d %d %d %d", row.User, row.Dst, row.Port, row.Flows, row.Denied, row.BytesOut))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("rows\n got %q\nwant %q", got, tc.want)
			}
			if rep.Source.FromSeq != 1 || rep.Source.ToSeq != uint64(j.Len()) {
				t.Errorf("source %+v, want 1..%d", rep.Source, j.Len())
			}
		})
	}
	rep, _ := r.Access(context.Background(), AccessQuery{User: "alice"})
	if row := rep.Rows[0]; !reflect.DeepEqual(row.Devices, []string{"laptop"}) || !reflect.DeepEqual(row.Versions, []uint64{7}) ||
		!row.First.Equal(t0.Add(-30*time.Second)) || !row.Last.Equal(t0.Add(47*time.Hour)) {
		t.Errorf("alice's row: %+v", row)
	}
	if _, err := r.Access(context.Background(), AccessQuery{Dst: netip.MustParsePrefix("10.0.4.17/16")}); err == nil {
		t.Error("a prefix with host bits was accepted")
	}
}

// dump returns every bucket and the cursor, to compare rollups.
func dump(t *testing.T, r *Rollup) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := r.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketHour, bucketDay, bucketMeta, bucketDayTotal} {
			tx.Bucket(b).ForEach(func(k, v []byte) error {
				out[string(b)+"/"+string(k)] = string(v)
				return nil
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRollupResumesAndRebuilds: a rollup folded in several steps, reopened
// in between (as after kill -9: the file holds whatever the last
// transaction committed), equals a rebuild from the journal; a journal
// replaced under it (snapshot install) makes it rebuild.
func TestRollupResumesAndRebuilds(t *testing.T) {
	j := &memJournal{}
	sampleTraffic(j, t)
	dir := t.TempDir()
	ctx := context.Background()
	inc, err := Open(Config{Path: filepath.Join(dir, "inc.db"), Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inc.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	inc.Close()
	j.add(t, flowEv(t0.Add(50*time.Hour), "carol", "desk", "ops", "10.0.5.5", 443, false, 1, 5, 5))
	inc = openRollup(t, j, filepath.Join(dir, "inc.db"))
	if _, err := inc.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	full := openRollup(t, j, filepath.Join(dir, "full.db"))
	if err := full.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if a, b := dump(t, inc), dump(t, full); !reflect.DeepEqual(a, b) {
		t.Errorf("incremental rollup (%d keys) differs from a rebuild (%d keys)", len(a), len(b))
	}

	// A snapshot install gives the node another journal: the record under
	// the cursor has another hash.
	other := &memJournal{}
	other.add(t, flowEv(t0, "dave", "pc", "eng", "10.0.4.17", 5432, false, 1, 1, 1))
	for range j.Len() {
		other.add(t, audit.Event{ID: "x", Time: t0, Type: audit.TypeLogin, Outcome: audit.Success})
	}
	inc.cfg.Journal = other
	if _, err := inc.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := openRollup(t, other, filepath.Join(dir, "fresh.db"))
	if _, err := fresh.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a, b := dump(t, inc), dump(t, fresh); !reflect.DeepEqual(a, b) {
		t.Errorf("rollup after the journal was replaced (%d keys) differs from a rebuild (%d keys)", len(a), len(b))
	}
	rep, err := inc.Access(ctx, AccessQuery{})
	if err != nil || len(rep.Rows) != 1 || rep.Rows[0].User != "dave" {
		t.Errorf("after replacement: %+v, %v", rep.Rows, err)
	}
}

// TestAccessOverTime: the same rows split per day and per hour add up to
// the totals (packet statistics over time).
func TestAccessOverTime(t *testing.T) {
	j := &memJournal{}
	sampleTraffic(j, t)
	r := openRollup(t, j, filepath.Join(t.TempDir(), "r.db"))
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		by   string
		rows int
	}{{"day", 3}, {"hour", 48}} { // 48 hours from 10:00 span three days
		rep, err := r.Access(context.Background(), AccessQuery{User: "alice", By: tc.by})
		if err != nil {
			t.Fatal(err)
		}
		var flows uint64
		for _, row := range rep.Rows {
			flows += row.Flows
			if row.Period.IsZero() {
				t.Errorf("by %s: a row without its period: %+v", tc.by, row)
			}
		}
		if len(rep.Rows) != tc.rows || flows != 96 {
			t.Errorf("by %s: %d rows, %d flows; want %d rows, 96 flows", tc.by, len(rep.Rows), flows, tc.rows)
		}
	}
	if _, err := r.Access(context.Background(), AccessQuery{By: "week"}); err == nil {
		t.Error("by week was accepted")
	}
}
