package audit_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryvpn/ferry/audit"
)

// A dead receiver on a quiet cluster (no new records) still shows: the
// sink keeps trying to reach it, and ferry_audit_sink_stalled turns 1.
// While the exporter backs off, the lag metric follows the journal.
func TestDeadSinkStallsAndLagStaysLive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there any more
	c := startCluster(t, 1)
	node := c.Node(0)
	sink, err := audit.NewSyslogSink(audit.SyslogSinkConfig{Name: "siem", Addr: dead})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	x, err := audit.NewExporter(audit.ExporterConfig{Store: node, Sinks: []audit.Sink{sink}, Poll: 10 * time.Millisecond,
		MinBackoff: 5 * time.Second, MaxBackoff: 10 * time.Second, StallAfter: 300 * time.Millisecond, Logger: quietLogger(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	waitFor(t, 10*time.Second, func() (bool, string) {
		v := counterValue(t, reg, "ferry_audit_sink_stalled", "siem")
		return v == 1, fmt.Sprintf("stalled = %v on a quiet cluster with a dead receiver", v)
	})
	// Now records arrive while the exporter waits out its back-off.
	l := newLog(t, node)
	ingest(t, l, 0, 40)
	head, _, _ := node.JournalHead()
	waitFor(t, 10*time.Second, func() (bool, string) {
		v := counterValue(t, reg, "ferry_audit_export_lag_records", "siem")
		return v == float64(head), fmt.Sprintf("lag %v during back-off, journal head %d", v, head)
	})
}
