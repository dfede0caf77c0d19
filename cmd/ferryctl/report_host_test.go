package main

import (
	"encoding/csv"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// TestReportAccessHosts: flow records admitted by a host rule name the
// granting host (details.host); `ferryctl report access` shows it in every
// format (JSON field host, HOST column in the table, host column in CSV
// and HTML), apart from the same destination reached through a CIDR rule.
func TestReportAccessHosts(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	at := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	rec := func(user, dst, host string, flows uint64) {
		e := audit.Event{Time: at, Type: audit.TypeFlowAccept, Outcome: audit.Success,
			Actor:    audit.Actor{UserID: user, Email: user + "@example.com"},
			Target:   audit.Target{User: user, Device: "laptop", Profile: "eng", DstAddr: dst, DstPort: 5432, Protocol: "tcp"},
			BytesOut: 10, BytesIn: 20, PolicyVersion: 3,
			Details: map[string]string{"flows": fmt.Sprint(flows), "packets_out": "1", "packets_in": "1",
				"first": at.Format(time.RFC3339Nano), "last": at.Add(time.Minute).Format(time.RFC3339Nano)}}
		if host != "" {
			e.Details[audit.FlowDetailHost] = host
		}
		if err := srv.Audit.Record(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	rec("alice", "10.0.4.17", "db.prod.internal", 2)
	rec("alice", "10.0.4.17", "", 1)
	rec("bob", "10.0.4.18", "pg.svc.example.com", 1)

	var rep wire.AccessReport
	ctlJSON(t, &rep, "report", "access", "--since", "1d")
	var got []string
	for _, r := range rep.Rows {
		got = append(got, fmt.Sprintf("%s %s host=%q flows=%d", r.User, r.Dst, r.Host, r.Flows))
	}
	want := []string{`alice 10.0.4.17 host="" flows=1`, `alice 10.0.4.17 host="db.prod.internal" flows=2`, `bob 10.0.4.18 host="pg.svc.example.com" flows=1`}
	if !slices.Equal(got, want) {
		t.Errorf("JSON rows:\n got %q\nwant %q", got, want)
	}

	table := mustCtl(t, "report", "access", "--since", "1d")
	lines := strings.Split(table, "\n")
	if !strings.Contains(lines[0], "HOST") {
		t.Errorf("table header lacks HOST:\n%s", table)
	}
	for _, s := range []string{"db.prod.internal", "pg.svc.example.com"} {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}

	csvOut := mustCtl(t, "report", "access", "--since", "1d", "-o", "csv")
	records, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	if err != nil || len(records) != 4 {
		t.Fatalf("csv (%v):\n%s", err, csvOut)
	}
	col := slices.Index(records[0], "host")
	if col < 0 {
		t.Fatalf("csv header %q lacks host", records[0])
	}
	var hosts []string
	for _, r := range records[1:] {
		hosts = append(hosts, r[col])
	}
	if want := []string{"", "db.prod.internal", "pg.svc.example.com"}; !slices.Equal(hosts, want) {
		t.Errorf("csv hosts %q, want %q", hosts, want)
	}

	html := mustCtl(t, "report", "access", "--since", "1d", "-o", "html")
	for _, s := range []string{"<th>HOST</th>", "<td>db.prod.internal</td>", "<td>pg.svc.example.com</td>"} {
		if !strings.Contains(html, s) {
			t.Errorf("HTML lacks %q:\n%s", s, html)
		}
	}
}
