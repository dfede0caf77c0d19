package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/audit/audittest"
)

// A sink with ack: true against a receiver that does not implement indexer
// acknowledgement (no ackId in its answers, or 400/404 from the ack
// endpoint) is a configuration error: reported in the log, a metric and
// the exporter's sink states, and never a loop re-sending the backlog.
// The requests are counted while a file sink in the same exporter takes
// many more records, which a resend loop with a 1ms back-off would have
// turned into many requests.
func TestHECAckWithoutIndexerAckIsAConfigError(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts audittest.HECOptions
	}{
		{"no ackId in answers", audittest.HECOptions{}},
		{"ack endpoint 400", audittest.HECOptions{Ack: true, AckEndpointStatus: 400}},
		{"ack endpoint 404", audittest.HECOptions{Ack: true, AckEndpointStatus: 404}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := audittest.NewHEC(t, tt.opts)
			c := startCluster(t, 1)
			node := c.Node(0)
			hec, err := audit.NewHECSink(audit.HECSinkConfig{Name: "splunk", URL: h.URL, TokenFile: tokenFile(t, h.Token()), Ack: true})
			if err != nil {
				t.Fatal(err)
			}
			file, err := audit.NewFileSink(audit.FileSinkConfig{Name: "file", Path: t.TempDir() + "/audit.jsonl"})
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			x, err := audit.NewExporter(audit.ExporterConfig{Store: node, Sinks: []audit.Sink{hec, file}, Poll: 5 * time.Millisecond,
				CursorInterval: 10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Logger: quietLogger(), Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			l := newLog(t, node)
			ingest(t, l, 0, 50)
			waitFor(t, 10*time.Second, func() (bool, string) {
				v := counterValue(t, reg, "ferry_audit_sink_config_error", "splunk")
				return v == 1, "no configuration error reported"
			})
			events, acks := h.Requests()
			for round := 1; round <= 5; round++ {
				ingest(t, l, round*100, 50)
				head, _, _ := node.JournalHead()
				waitFor(t, 10*time.Second, func() (bool, string) {
					cur, err := file.Cursor()
					return err == nil && cur >= head, "file sink behind"
				})
			}
			e2, a2 := h.Requests()
			if e2 != events || a2 != acks || events > 1 || acks > 1 {
				t.Fatalf("requests to the receiver: %d posts and %d ack polls at detection, %d and %d after 250 more records: want no re-sending", events, acks, e2, a2)
			}
			var state audit.SinkState
			for _, s := range x.Sinks() {
				if s.Name == "splunk" {
					state = s
				}
			}
			if !strings.Contains(state.ConfigError, "does not implement indexer acknowledgement") {
				t.Fatalf("sink state %+v", state)
			}
		})
	}
}

// With acknowledgement, every record reaches the indexer exactly once per
// acknowledged batch: nothing is posted again.
func TestHECAckDeliversOncePerAck(t *testing.T) {
	h := audittest.NewHEC(t, audittest.HECOptions{Ack: true, AckAfterPolls: 1})
	c := startCluster(t, 1)
	node := c.Node(0)
	hec, err := audit.NewHECSink(audit.HECSinkConfig{Name: "splunk", URL: h.URL, TokenFile: tokenFile(t, h.Token()), Ack: true})
	if err != nil {
		t.Fatal(err)
	}
	x, err := audit.NewExporter(audit.ExporterConfig{Store: node, Sinks: []audit.Sink{hec}, Poll: 5 * time.Millisecond,
		CursorInterval: 10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	l := newLog(t, node)
	ingest(t, l, 0, 300)
	head, _, _ := node.JournalHead()
	waitFor(t, 20*time.Second, func() (bool, string) {
		cur, _, err := audit.ReadCursor(context.Background(), node, "splunk")
		return err == nil && cur >= head, "cursor behind"
	})
	evs := h.Events()
	if uint64(len(evs)) != head {
		t.Fatalf("%d events indexed for %d records: want each exactly once", len(evs), head)
	}
}
