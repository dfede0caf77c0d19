package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/audit/audittest"
)

// A receiver frozen (kill -STOP) while records are produced, then killed
// (kill -9) with unread data in its socket buffers, then restarted: every
// record arrives. Over RELP the cursor passes only acknowledged records;
// over RFC 5425 syslog/TLS the re-send window sends the records written
// before the break again (repeats counted, same event IDs).
func TestReceiverFrozenThenKilledLosesNothing(t *testing.T) {
	for _, transport := range []string{"relp", "syslog"} {
		t.Run(transport, func(t *testing.T) {
			rs := audittest.StartRsyslog(t, audittest.RsyslogOptions{ClientCert: true, RELP: transport == "relp"})
			c := startCluster(t, 1)
			node := c.Node(0)
			signer := newSigner(t)
			cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Store: node, Signer: signer, Every: 100, Poll: 10 * time.Millisecond, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer cp.Close()
			tc := rs.CA.ClientTLS(t, "ferry-node")
			var sink audit.Sink
			if transport == "relp" {
				sink, err = audit.NewRELPSink(audit.RELPSinkConfig{Name: "siem", Addr: rs.Addr, TLS: tc, AckTimeout: 3 * time.Second})
			} else {
				sink, err = audit.NewSyslogSink(audit.SyslogSinkConfig{Name: "siem", Addr: rs.Addr, TLS: tc, WriteTimeout: 3 * time.Second})
			}
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			x, err := audit.NewExporter(audit.ExporterConfig{Store: node, Sinks: []audit.Sink{sink}, BatchSize: 100, Poll: 10 * time.Millisecond,
				CursorInterval: 20 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: quietLogger(), Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			l := newLog(t, node)

			received := func() (map[uint64]int, []audittest.Message) {
				msgs, err := rs.Messages()
				if err != nil {
					t.Fatal(err)
				}
				seqs := map[uint64]int{}
				for _, m := range msgs {
					var line struct{ Seq uint64 }
					if err := json.Unmarshal([]byte(strings.TrimSpace(m.Msg)), &line); err != nil {
						t.Fatalf("message body does not parse: %v: %q", err, m.Msg)
					}
					seqs[line.Seq]++
				}
				return seqs, msgs
			}
			ingest(t, l, 0, 300)
			waitFor(t, 20*time.Second, func() (bool, string) {
				seqs, _ := received()
				head, _, _ := node.JournalHead()
				return len(seqs) == int(head), fmt.Sprintf("%d of %d records received before the freeze", len(seqs), head)
			})

			rs.Freeze()
			frozenAt, _, _ := node.JournalHead()
			sentBefore := counterValue(t, reg, "ferry_audit_exported_records_total", "siem")
			ingest(t, l, 300, 400)
			// Wait until the sink has written what was produced into the
			// frozen receiver's socket.
			waitFor(t, 20*time.Second, func() (bool, string) {
				n := counterValue(t, reg, "ferry_audit_exported_records_total", "siem")
				return n >= sentBefore+400, fmt.Sprintf("%v records written since the freeze", n-sentBefore)
			})
			cur, _, _ := audit.ReadCursor(context.Background(), node, "siem")
			if cur > frozenAt {
				t.Errorf("cursor at %d when the frozen receiver was killed: it passed records written after the freeze (%d), which the receiver never read", cur, frozenAt)
			}
			rs.Kill()
			rs.Start()

			// Over RELP the cursor reaches the head once all is
			// acknowledged; over syslog it trails by the re-send window.
			var head uint64
			waitFor(t, 60*time.Second, func() (bool, string) {
				head, _, _ = node.JournalHead()
				seqs, _ := received()
				cur, _, _ := audit.ReadCursor(context.Background(), node, "siem")
				return len(seqs) == int(head) && (transport != "relp" || cur >= head), fmt.Sprintf("%d of %d records received, cursor %d", len(seqs), head, cur)
			})
			seqs, msgs := received()
			for seq := uint64(1); seq <= head; seq++ {
				if seqs[seq] == 0 {
					t.Errorf("record %d never arrived", seq)
				}
			}
			var bodies bytes.Buffer
			for _, m := range msgs {
				bodies.WriteString(m.Msg + "\n")
			}
			rep, err := audit.VerifyFile(&bodies, audit.VerifyOptions{Keys: signer.Keys(), AcceptUnsignedTail: true})
			if err != nil {
				t.Fatalf("what rsyslog received does not verify: %v", err)
			}
			t.Logf("%s: cursor at %d when the frozen receiver was killed; %d messages for %d records, %d repeats", transport, cur, len(msgs), head, rep.Duplicates)
		})
	}
}
