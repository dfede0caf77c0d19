package report

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/report/reporttest"
)

// The benchmark's traffic: 1,000 users, each with 5 destination services,
// 100 flows per user per day over 8 active hours, for 90 days: 9 M flows.
const (
	benchUsers   = 1000
	benchTuples  = 5
	benchDays    = 90
	benchHours   = 8
	benchFlowsUD = 100
)

// fillRollup writes the buckets folding that traffic would write: one row
// per user, tuple and hour (and day), with the counts of 100 flows per user
// per day spread over the tuples and hours.
func fillRollup(b *testing.B, r *Rollup, start time.Time) {
	b.Helper()
	for d := range benchDays {
		day := start.Add(time.Duration(d) * 24 * time.Hour)
		err := r.db.Update(func(tx *bolt.Tx) error {
			hours, days := tx.Bucket(bucketHour), tx.Bucket(bucketDay)
			for u := range benchUsers {
				for k := range benchTuples {
					key := key{User: fmt.Sprintf("u%04d", u), Email: fmt.Sprintf("u%04d@example.com", u), Device: "laptop",
						Profile: fmt.Sprintf("p%d", u%20), Version: 7, Dst: fmt.Sprintf("10.0.%d.%d", k, 17+u%3), Proto: "tcp", Port: uint16(5432 + k)}
					per := uint64(benchFlowsUD / benchTuples / benchHours)
					c := counts{Flows: per, PktsOut: per * 10, PktsIn: per * 10, BytesOut: per * 1000, BytesIn: per * 10000}
					for h := range benchHours {
						at := day.Add(time.Duration(9+h) * time.Hour)
						c.First, c.Last = at.UnixNano(), at.Add(59*time.Minute).UnixNano()
						if err := hours.Put(key.encode(at), c.encode()); err != nil {
							return err
						}
					}
					dc := c
					dc.Flows, dc.BytesOut = per*benchHours, per*benchHours*1000
					dc.First, dc.Last = day.Add(9*time.Hour).UnixNano(), day.Add(17*time.Hour).UnixNano()
					if err := days.Put(key.encode(day), dc.encode()); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

var benchRollup struct {
	once  sync.Once
	r     *Rollup
	start time.Time
}

func rollup90d(b *testing.B) (*Rollup, time.Time) {
	benchRollup.once.Do(func() {
		dir, err := filepathTemp()
		if err != nil {
			b.Fatal(err)
		}
		r, err := Open(Config{Path: filepath.Join(dir, "bench.db"), Journal: &reporttest.Journal{}})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		fillRollup(b, r, start)
		benchRollup.r, benchRollup.start = r, start
	})
	return benchRollup.r, benchRollup.start
}

// BenchmarkAccess90d: `report access` over 90 days of 1,000 users at 100
// flows per user per day (9 M flow records, folded in the node's rollup);
// the report is node-local, so each node of a cluster answers alike.
// Goal < 2 s (moonshot < 200 ms).
func BenchmarkAccess90d(b *testing.B) {
	r, start := rollup90d(b)
	for _, tc := range []struct {
		name string
		q    AccessQuery
	}{
		{"who-reached-dst-port", AccessQuery{Dst: netip.MustParsePrefix("10.0.4.17/32"), Port: 5436}},
		{"what-did-user-reach", AccessQuery{User: "u0042@example.com"}},
		{"everything", AccessQuery{}},
		{"partial-days", AccessQuery{Since: start.Add(13 * time.Hour), Until: start.Add(89*24*time.Hour + 11*time.Hour)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.q.Since.IsZero() {
				tc.q.Since, tc.q.Until = start, start.Add(benchDays*24*time.Hour)
			}
			var rows int
			t0 := time.Now()
			for range b.N {
				rep, err := r.Access(context.Background(), tc.q)
				if err != nil {
					b.Fatal(err)
				}
				rows = len(rep.Rows)
			}
			b.ReportMetric(float64(time.Since(t0).Milliseconds())/float64(b.N), "ms/report")
			b.ReportMetric(float64(rows), "rows")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// flowEvent is one user's flow event of one interval as the tunnel writes
// it (tunnel's flowEvents): the user's benchTuples tuples, each with the
// rule that admitted it, in one journal record.
func flowEvent(at time.Time, u int) audit.Event {
	e := audit.Event{Time: at, Node: "n1", Type: audit.TypeFlowAccept, Outcome: audit.Success,
		Actor:         audit.Actor{UserID: fmt.Sprintf("u%04d", u), Email: fmt.Sprintf("u%04d@example.com", u), Session: "s-0123456789abcdef"},
		Source:        audit.Source{Addr: fmt.Sprintf("100.64.%d.%d", u/250, u%250)},
		Target:        audit.Target{Peer: "p-0123456789abcdef", Device: "laptop", Profile: "eng"},
		PolicyVersion: 12345,
		Details:       map[string]string{"interval": "1m0s", "rule.0": "tcp 10.0.0.0/16 5432-5436"}}
	for k := range benchTuples {
		e.Flows = append(e.Flows, audit.Flow{Dst: fmt.Sprintf("10.0.%d.17", k), Port: 5432 + k, Proto: "tcp", Rule: "0",
			Flows: 3, PktsOut: 120, PktsIn: 900, BytesOut: 123456, BytesIn: 1234567,
			First: at.Add(-59 * time.Second).UnixMilli(), Last: at.UnixMilli()})
	}
	return e
}

// BenchmarkRollupFold: journal records folded into the rollup per second
// (a rebuild after a snapshot install runs at this rate), each a flow
// event of benchTuples tuples.
func BenchmarkRollupFold(b *testing.B) {
	const n = 40_000
	j := &reporttest.Journal{}
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	var evs []audit.Event
	for i := range n {
		evs = append(evs, flowEvent(t0.Add(time.Duration(i/benchUsers)*time.Minute), i%benchUsers))
	}
	if err := j.Add(evs...); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	t := time.Now()
	for range b.N {
		dir := b.TempDir()
		r, err := Open(Config{Path: filepath.Join(dir, "r.db"), Journal: j})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
	secs := time.Since(t).Seconds()
	b.ReportMetric(float64(n*b.N)/secs, "records/s")
	b.ReportMetric(float64(n*benchTuples*b.N)/secs, "flows/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFlowJournalGrowth records the day through the real
// audit log on a one-node cluster: 1,000 active users with 5 destination
// tuples each per minute over 8 hours at 1-minute aggregation (2.4 M flow
// tuples, 480,000 flow events), of which it writes benchGrowthMinutes
// minutes, and measures where the bytes go:
//
//   - record-bytes: one flow event's canonical JSON (5 tuples);
//   - journal-bytes/flow: the journal's pages (record, hash chain, the
//     idempotency-key index, bbolt page and branch overhead) per tuple,
//     from bbolt's own accounting of the journal buckets — the goal's
//     figure (<= 416 bytes, <= 1 GB per node per day);
//   - snapshot-bytes/flow: what each retained Raft snapshot (the cluster
//     keeps two) adds per tuple, from a backup in the snapshot format;
//   - raft-log-bytes/flow: the Raft log's pages per tuple while it holds
//     them; the log is compacted after every snapshot, so it is bounded
//     (SnapshotThreshold + TrailingLogs entries), not a daily growth.
//
// A signed checkpoint follows each minute (the checkpointer's default at
// this rate: one per 1,000 records). Then the flow window passes and the
// leader prunes (audit.Trimmer.Prune: flow.summary events, then stubs),
// and it measures what a day costs after the window
// (flowPruneMetrics).
func BenchmarkFlowJournalGrowth(b *testing.B) {
	const benchGrowthMinutes = 10
	c := clustertest.Start(b, 1, clustertest.Options{Fast: true, WriteTimeout: 5 * time.Second})
	node := c.Node(0)
	log, err := audit.New(audit.Config{Store: node, Node: c.ID(0)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	var cpNow time.Time
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Store: node, Signer: audit.NewSigner(priv), Poll: time.Hour,
		Now: func() time.Time { return cpNow }})
	if err != nil {
		b.Fatal(err)
	}
	defer cp.Close()
	b.ResetTimer()
	for m := range benchGrowthMinutes {
		var wg sync.WaitGroup
		for w := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for u := w; u < benchUsers; u += 32 {
					if err := log.Record(ctx, flowEvent(t0.Add(time.Duration(m)*time.Minute), u)); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		cpNow = t0.Add(time.Duration(m+1) * time.Minute)
		if _, err := cp.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cp.Close()
	log.Close()
	head, _, _ := node.JournalHead()
	var data, events int
	for from := uint64(1); from <= head; {
		recs, err := node.JournalRange(from, head, 4096)
		if err != nil || len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if bytes.Contains(r.Data, []byte(`"flows":[`)) {
				data += len(r.Data)
				events++
			}
		}
		from = recs[len(recs)-1].Seq + 1
	}
	var snap countingWriter
	if _, err := node.Backup(&snap); err != nil {
		b.Fatal(err)
	}
	c.Stop(0)
	journal := bucketBytes(b, filepath.Join(c.Dir(0), "state.db"), "journal", "jkeys")
	raftLog := bucketBytes(b, filepath.Join(c.Dir(0), "raft.db"), "logs")
	flows := float64(events * benchTuples)
	perUserDay := float64(benchTuples * 60 * benchHours)
	perNodeDay := benchUsers * perUserDay
	rawDay := float64(journal) / flows * perNodeDay
	b.ReportMetric(float64(data)/float64(events), "record-bytes")
	b.ReportMetric(float64(journal)/flows, "journal-bytes/flow")
	b.ReportMetric(float64(journal)/flows*perUserDay, "journal-bytes/user-day")
	b.ReportMetric(rawDay/1e9, "GB/day-1000-users")
	b.ReportMetric(float64(snap.n)/flows, "snapshot-bytes/flow")
	b.ReportMetric(float64(raftLog)/flows, "raft-log-bytes/flow")
	prunedDay := flowPruneMetrics(b, c, t0, float64(events), float64(benchUsers*60*benchHours))
	// A year at the defaults: 30 days raw, 335 days pruned; the audit
	// retention (400 days) keeps 30 raw and 370 pruned.
	b.ReportMetric(prunedDay/1e6, "MB/day-1000-users-pruned")
	b.ReportMetric((30*rawDay+335*prunedDay)/1e9, "GB/year-1000-users")
	b.ReportMetric((30*rawDay+370*prunedDay)/1e9, "GB/400d-1000-users")
	b.ReportMetric(365*rawDay/1e9, "GB/year-1000-users-unpruned")
	b.ReportMetric(0, "ns/op")
}

// flowPruneMetrics lets the flow window pass over the journal the
// benchmark wrote (events flow events, a day holding dayEvents), prunes it
// as the leader does and returns the bytes a day of that traffic costs
// per node once pruned: its stubs and checkpoints (one of each per 1,000
// records, as written), from bbolt's accounting of the stub bucket and of
// the journal's remaining records, plus its flow.summary events (a day's
// totals per user and tuple: the benchmark's users reach the same 5
// tuples all day, so 10 minutes of it summarize like a whole day).
func flowPruneMetrics(b *testing.B, c *clustertest.Cluster, t0 time.Time, events, dayEvents float64) float64 {
	ctx := context.Background()
	node := c.StartNode(0)
	c.Leader(30 * time.Second)
	log, err := audit.New(audit.Config{Store: node, Node: c.ID(0)})
	if err != nil {
		b.Fatal(err)
	}
	head, _, _ := node.JournalHead()
	if _, err := node.Put(ctx, audit.CursorKey("siem"), []byte(strconv.FormatUint(head, 10))); err != nil {
		b.Fatal(err)
	}
	tr, err := audit.NewTrimmer(audit.TrimmerConfig{Store: node, Recorder: log, Delay: time.Hour, Interval: time.Hour,
		Now: func() time.Time { return t0.Add(40 * 24 * time.Hour) }, Policy: audit.RetentionPolicy{Sinks: []string{"siem"}},
		FlowRetention: audit.DefaultFlowRetention, Summarize: Summarize})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	var removed uint64
	for {
		rep, err := tr.Prune(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(rep.Plan.Runs) == 0 {
			break
		}
		removed += rep.Removed
	}
	if removed != uint64(events) {
		b.Fatalf("pruned %d flow records, want %d", removed, int(events))
	}
	// What stays: stubs, checkpoints, summaries (and the prune's own
	// record). Split the journal's pages over them by their bytes.
	var stubs, checkpoints, summaryBytes, otherBytes float64
	for from := uint64(1); ; {
		recs, err := node.JournalRange(from, ^uint64(0), 4096)
		if err != nil || len(recs) == 0 {
			break
		}
		for _, r := range recs {
			switch {
			case r.Pruned > 0:
				stubs++
			case bytes.Contains(r.Data, []byte(`"type":"flow.summary"`)):
				summaryBytes += float64(len(r.Data) + 72)
			default:
				if bytes.HasPrefix(r.Data, []byte(`{"checkpoint"`)) || !bytes.Contains(r.Data, []byte(`"type":"cluster"`)) {
					checkpoints++
				}
				otherBytes += float64(len(r.Data) + 72)
			}
		}
		from = recs[len(recs)-1].LastSeq() + 1
	}
	tr.Close()
	log.Close()
	c.Stop(0)
	state := filepath.Join(c.Dir(0), "state.db")
	journal := float64(bucketBytes(b, state, "journal", "jkeys"))
	stubPages := float64(bucketBytes(b, state, "jstubs"))
	perByte := journal / (summaryBytes + otherBytes)
	scale := dayEvents / events // stubs and checkpoints follow the records
	day := summaryBytes*perByte + scale*(stubPages+otherBytes*perByte)
	b.ReportMetric(stubPages/stubs, "stub-bytes")
	b.ReportMetric(summaryBytes*perByte/benchUsers, "summary-bytes/user-day")
	return day
}

// countingWriter counts what is written to it.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// bucketBytes returns the bytes of pages the named top-level buckets of a
// closed bbolt file occupy (leaf and branch pages; a bucket small enough
// to live inline in its parent's page counts its bytes there), from
// bbolt's accounting.
func bucketBytes(b *testing.B, path string, names ...string) int {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var n int
	err = db.View(func(tx *bolt.Tx) error {
		for _, name := range names {
			bk := tx.Bucket([]byte(name))
			if bk == nil {
				return fmt.Errorf("%s: no bucket %q", path, name)
			}
			st := bk.Stats()
			n += st.BranchAlloc + st.LeafAlloc + st.InlineBucketInuse
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// filepathTemp makes a directory for the shared benchmark rollup, which
// outlives any one sub-benchmark.
func filepathTemp() (string, error) { return os.MkdirTemp("", "ferry-report-bench-") }

// BenchmarkReplay7d: `profile apply --dry-run --replay 7d` of one profile
// change (port 5434 removed) over the last 7 days of BenchmarkAccess90d's
// traffic (1,000 users, 100 flows per user per day; every key of those
// days is read, whichever profile it holds). Goal < 5 s.
func BenchmarkReplay7d(b *testing.B) {
	r, start := rollup90d(b)
	until := start.Add(benchDays * 24 * time.Hour)
	since := until.Add(-7 * 24 * time.Hour)
	proposed := profiles.Profile{Name: "p3", Rules: []profiles.Rule{{
		CIDR: netip.MustParsePrefix("10.0.0.0/16"), Protocol: profiles.ProtoTCP,
		Ports: []profiles.PortRange{{From: 5432, To: 5433}, {From: 5435, To: 5436}},
	}}}
	var deny int
	t0 := time.Now()
	for range b.N {
		rep, err := r.Replay(context.Background(), proposed, since, until)
		if err != nil {
			b.Fatal(err)
		}
		deny = len(rep.WouldDeny)
	}
	// Users u%20 == 3 hold p3, each with one tuple on port 5434.
	if deny != benchUsers/20 {
		b.Fatalf("%d rows would be denied, want %d", deny, benchUsers/20)
	}
	b.ReportMetric(float64(time.Since(t0).Milliseconds())/float64(b.N), "ms/replay")
	b.ReportMetric(float64(deny), "rows")
	b.ReportMetric(0, "ns/op")
}
