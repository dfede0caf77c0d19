package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/audit/audittest"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/prometheus/client_golang/prometheus"
)

func counterValue(t *testing.T, reg *prometheus.Registry, name, sink string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == sink {
					if m.Counter != nil {
						return m.Counter.GetValue()
					}
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

// ingest records n events through l from a few writers and returns when
// all are acknowledged.
func ingest(t *testing.T, l *audit.Log, from, n int) {
	t.Helper()
	if err := ingestErr(l, from, n, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// ingestErr records events from to from+n with 8 writers, each record
// bounded by timeout, and returns the first error: safe to call from any
// goroutine.
func ingestErr(l *audit.Log, from, n int, timeout time.Duration) error {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := from + w; i < from+n; i += 8 {
				e := loginEvent(i)
				if i%3 == 0 {
					e = flowEvent(i)
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				err := l.Record(ctx, e)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("recording event %d: %w", i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// The syslog sink against a real rsyslogd over TLS with a client
// certificate: every record arrives in order and parses; rsyslogd stopped
// under load and started again loses nothing (repeats carry their id).
func TestSyslogTLSToRsyslog(t *testing.T) {
	rs := audittest.StartRsyslog(t, audittest.RsyslogOptions{ClientCert: true})
	c := startCluster(t, 1)
	node := c.Node(0)
	signer := newSigner(t)
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Store: node, Signer: signer, Every: 200, Poll: 10 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	sink, err := audit.NewSyslogSink(audit.SyslogSinkConfig{Addr: rs.Addr, TLS: rs.CA.ClientTLS(t, "ferry-node"), ResendAge: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	x, err := audit.NewExporter(audit.ExporterConfig{Store: node, Sinks: []audit.Sink{sink}, BatchSize: 200, Poll: 20 * time.Millisecond,
		CursorInterval: 100 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, Logger: quietLogger(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	l := newLog(t, node)

	received := func() (map[uint64]bool, []audittest.Message) {
		msgs, err := rs.Messages()
		if err != nil {
			t.Fatal(err)
		}
		seqs := map[uint64]bool{}
		for _, m := range msgs {
			var line struct{ Seq uint64 }
			if err := json.Unmarshal([]byte(strings.TrimSpace(m.Msg)), &line); err != nil {
				t.Fatalf("message body does not parse: %v: %q", err, m.Msg)
			}
			seqs[line.Seq] = true
		}
		return seqs, msgs
	}
	ingest(t, l, 0, 1500)
	waitFor(t, 20*time.Second, func() (bool, string) {
		seqs, _ := received()
		return len(seqs) >= 1000, fmt.Sprintf("%d records received", len(seqs))
	})

	// Stop the receiver under load; keep recording while it is down.
	rs.Stop()
	errsBefore := counterValue(t, reg, "ferry_audit_export_errors_total", "syslog")
	down := make(chan struct{})
	go func() { defer close(down); ingest(t, l, 1500, 1500) }()
	waitFor(t, 20*time.Second, func() (bool, string) {
		n := counterValue(t, reg, "ferry_audit_export_errors_total", "syslog")
		return n >= errsBefore+2, fmt.Sprintf("%v export errors while the receiver is down", n)
	})
	<-down
	lag := counterValue(t, reg, "ferry_audit_export_lag_records", "syslog")
	rs.Start()

	head, _, _ := node.JournalHead()
	waitFor(t, 30*time.Second, func() (bool, string) {
		seqs, _ := received()
		cur, _, _ := audit.ReadCursor(context.Background(), node, "syslog")
		return len(seqs) == int(head) && cur == head, fmt.Sprintf("%d of %d records received, cursor %d", len(seqs), head, cur)
	})
	if lag == 0 {
		t.Errorf("export lag metric stayed 0 while the receiver was down")
	}
	_, msgs := received()
	// In order: each message follows the previous one, or restarts an
	// earlier stretch after a reconnect (at-least-once).
	var bodies bytes.Buffer
	var prev uint64
	dups := 0
	for i, m := range msgs {
		var line struct {
			Seq    uint64
			Record struct{ ID, Type string }
		}
		json.Unmarshal([]byte(m.Msg), &line)
		if line.Seq <= prev {
			dups++
		} else if line.Seq != prev+1 {
			t.Fatalf("message %d: record %d after %d", i, line.Seq, prev)
		}
		prev = max(prev, line.Seq)
		if m.App != "ferry" || (line.Record.ID != "" && !strings.Contains(m.SD, `id="`+line.Record.ID+`"`)) || (line.Record.Type != "" && m.MsgID != line.Record.Type) {
			t.Fatalf("message %d: app %q msgid %q sd %q for record %+v", i, m.App, m.MsgID, m.SD, line.Record)
		}
		bodies.WriteString(m.Msg + "\n")
	}
	rep, err := audit.VerifyFile(&bodies, audit.VerifyOptions{Keys: signer.Keys(), AcceptUnsignedTail: true})
	if err != nil {
		t.Fatalf("what rsyslog received does not verify: %v", err)
	}
	t.Logf("%d messages for %d records (%d repeats), %d checkpoints, signed to %d", len(msgs), head, dups, rep.Checkpoints, rep.Signed)
}

// A leader dies while exporting: the new leader resumes from the cursor
// and the collector ends up with every record.
func TestExportResumesAfterLeaderFailover(t *testing.T) {
	c := startCluster(t, 3)
	h := audittest.NewHEC(t, audittest.HECOptions{Ack: true})
	tok := tokenFile(t, h.Token())
	exporters := make([]*audit.Exporter, 3)
	files := make([]string, 3)
	for i := range exporters {
		sink, err := audit.NewHECSink(audit.HECSinkConfig{URL: h.URL, TokenFile: tok, Ack: true})
		if err != nil {
			t.Fatal(err)
		}
		// Every node also keeps the whole trail in its own file.
		files[i] = filepath.Join(t.TempDir(), "audit", "audit.jsonl")
		fs, err := audit.NewFileSink(audit.FileSinkConfig{Name: "local", Path: files[i]})
		if err != nil {
			t.Fatal(err)
		}
		exporters[i], err = audit.NewExporter(audit.ExporterConfig{Store: c.Node(i), Sinks: []audit.Sink{sink, fs}, BatchSize: 100,
			Poll: 10 * time.Millisecond, CursorInterval: 50 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { exporters[i].Close() })
	}
	li := c.Leader(5 * time.Second)
	writer := (li + 1) % 3
	l := newLog(t, c.Node(writer))
	indexed := func() map[uint64]bool {
		seqs := map[uint64]bool{}
		for _, ev := range h.Events() {
			var line struct{ Seq uint64 }
			json.Unmarshal(ev, &line)
			seqs[line.Seq] = true
		}
		return seqs
	}
	done := make(chan error, 1)
	go func() { done <- ingestErr(l, 0, 4000, time.Minute) }()
	waitFor(t, 20*time.Second, func() (bool, string) {
		cur, _, err := audit.ReadCursor(context.Background(), c.Node(writer), "hec")
		return err == nil && cur > 500, fmt.Sprintf("cursor %d (%v)", cur, err)
	})
	cursorAtKill, _, _ := audit.ReadCursor(context.Background(), c.Node(writer), "hec")
	c.Stop(li) // no goodbye, mid-export: the exporter on it just loses its node
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("recording 4000 events did not finish within 2 minutes of the leader's death")
	}
	var head uint64
	waitFor(t, 30*time.Second, func() (bool, string) {
		// Every one of the 4000 events was acknowledged, and appends are
		// idempotent, so the journal ends at exactly 4000 records; an
		// append retried during the election may commit late, so waiting
		// only for the exporter to catch up with a head read too early
		// would check the files against the wrong end.
		head, _, _ = c.Node(writer).JournalHead()
		cur, _, _ := audit.ReadCursor(context.Background(), c.Node(writer), "hec")
		return head == 4000 && len(indexed()) == int(head) && cur == head, fmt.Sprintf("journal head %d (want 4000), %d indexed, cursor %d", head, len(indexed()), cur)
	})
	ids := journalIDs(t, c.Node(writer))
	got := map[string]bool{}
	for _, ev := range h.Events() {
		var line struct{ Record audit.Event }
		json.Unmarshal(ev, &line)
		got[line.Record.ID] = true
	}
	for id := range ids {
		if !got[id] {
			t.Fatalf("event %s never reached the collector", id)
		}
	}
	if cursorAtKill >= head {
		t.Fatalf("export had finished (cursor %d of %d) before the leader died", cursorAtKill, head)
	}
	for i := range files {
		if i == li {
			continue // killed with its node
		}
		var rep audit.Report
		waitFor(t, 20*time.Second, func() (bool, string) {
			f, err := os.Open(files[i])
			if err != nil {
				return false, err.Error()
			}
			defer f.Close()
			rep, err = audit.VerifyFile(f, audit.VerifyOptions{SkipSignatures: true, AcceptUnsignedTail: true})
			return err == nil && rep.First == 1 && rep.Last == head && rep.Records == head, fmt.Sprintf("node %d's file: %+v, %v; journal head %d", i, rep, err, head)
		})
	}
	t.Logf("cursor %d at the kill; %d events indexed for %d records", cursorAtKill, len(h.Events()), head)
}

var _ = cluster.Local
