package console_test

import (
	"encoding/csv"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// TestTrafficReportsAudit: the traffic page draws its charts as SVG with
// a data table and lists the top talkers and denied attempts; the
// reports download as CSV and HTML; the audit search finds records by
// type, user and outcome with their chain position, and says whether the
// range shown verifies.
func TestTrafficReportsAudit(t *testing.T) {
	s := apitest.Start(t)
	b := newBrowser(t, s.URL, s.CAFile, s.Admin(t))
	if _, err := s.Profiles.Put(bg(t), engProfile(t, s), nil, audit.Actor{UserID: "setup"}); err != nil {
		t.Fatal(err)
	}
	recordFlows(t, s)
	at := time.Now().Add(-time.Hour).UTC()
	if err := s.Audit.Record(bg(t), audit.Event{Type: audit.TypeFlowDeny, Time: at, Outcome: audit.Failure,
		Actor:   audit.Actor{UserID: "erin", Email: "erin@example.com"},
		Target:  audit.Target{Profile: "eng", DstAddr: "10.99.0.1", Protocol: "tcp", DstPort: 3306},
		Details: map[string]string{"attempts": "7"}}); err != nil {
		t.Fatal(err)
	}

	resp, page := b.do(http.MethodGet, "/admin/traffic?range=24h", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("traffic: %d\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{`<svg class="chart"`, `<polyline class="s0"`, `<polyline class="s1"`, "<desc", "Bytes as a table",
		`id="talkers"`, "dora@example.com", `id="denials"`, "10.99.0.1 tcp/3306"} {
		if !strings.Contains(page, want) {
			t.Errorf("traffic page lacks %q", want)
		}
	}
	if !strings.Contains(page, "flows: 12 in all") || !strings.Contains(page, "denied: 7 in all") {
		t.Errorf("the flows chart's description does not count 12 flows and 7 denials")
	}
	if resp, page := b.do(http.MethodGet, "/admin/traffic?user=pete@example.com", nil); !strings.Contains(page, "flows: 3 in all") || strings.Contains(page, "dora@example.com") {
		t.Errorf("traffic of pete: %d", resp.StatusCode)
	}
	if resp, _ := b.do(http.MethodGet, "/admin/traffic?dst=not-an-address", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad destination: %d, want 400", resp.StatusCode)
	}

	resp, body := b.do(http.MethodGet, "/admin/reports?kind=access&range=7d&format=csv", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("csv: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v\n%s", err, body)
	}
	var dora int
	for _, r := range recs[1:] {
		if len(r) > 1 && r[1] == "dora@example.com" {
			dora++
		}
	}
	if recs[0][0] != "User" || dora != 2 {
		t.Errorf("csv: head %v, %d rows of dora, want 2\n%s", recs[0], dora, body)
	}
	resp, body = b.do(http.MethodGet, "/admin/reports?kind=unused&range=7d&format=html", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Disposition"), ".html") || !strings.Contains(body, "Rules nobody used") {
		t.Errorf("html download: %d %s", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
	if _, page := b.do(http.MethodGet, "/admin/reports?kind=entitlements&user=erin@example.com", nil); !strings.Contains(page, "group engineering") || strings.Contains(page, "dora@example.com") {
		t.Error("entitlements of erin")
	}

	_, page = b.do(http.MethodGet, "/admin/audit?type=flow.deny&range=24h", nil)
	if !strings.Contains(page, "1 matching record") || !strings.Contains(page, "erin@example.com") || !strings.Contains(page, `id="verified"`) ||
		!strings.Contains(page, "the hash chain is intact") {
		t.Errorf("audit search for flow.deny:\n%s", page)
	}
	if _, page = b.do(http.MethodGet, "/admin/audit?user=dora&outcome=failure", nil); !strings.Contains(page, "0 matching records") {
		t.Errorf("dora's failures: want none")
	}
}

// TestAccessReportPages: the console shows the access report 100 rows a
// page with the total and next/previous links; the CSV download keeps
// every row.
func TestAccessReportPages(t *testing.T) {
	s := apitest.Start(t)
	b := newBrowser(t, s.URL, s.CAFile, s.Admin(t))
	at := time.Now().Add(-2 * time.Hour).UTC()
	const n = 130
	for port := 1000; port < 1000+n; port++ {
		if err := s.Audit.Record(bg(t), audit.Event{Type: audit.TypeFlowAccept, Time: at, Outcome: audit.Success,
			Actor:   audit.Actor{UserID: "dora", Email: "dora@example.com"},
			Target:  audit.Target{Profile: "eng", DstAddr: "10.20.0.5", Protocol: "tcp", DstPort: port},
			Details: map[string]string{"flows": "1", "first": at.Format(time.RFC3339Nano), "last": at.Format(time.RFC3339Nano)}}); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(page string) int {
		_, body, ok := strings.Cut(page, `<tbody>`)
		body, _, _ = strings.Cut(body, `</tbody>`)
		if !ok {
			return -1
		}
		return strings.Count(body, "<tr>")
	}
	_, page := b.do(http.MethodGet, "/admin/reports?kind=access&range=7d", nil)
	if got := rows(page); got != 100 || !strings.Contains(page, "Rows 1 to 100 of 130") || !strings.Contains(page, `id="next"`) || strings.Contains(page, `id="prev"`) {
		t.Errorf("first page: %d rows, want 100 with the total and a next link", got)
	}
	if strings.Contains(page, "tcp</td><td>1100<") || !strings.Contains(page, "tcp</td><td>1099<") {
		t.Error("first page: want ports 1000-1099")
	}
	_, page = b.do(http.MethodGet, "/admin/reports?kind=access&range=7d&page=2", nil)
	if got := rows(page); got != 30 || !strings.Contains(page, "Rows 101 to 130 of 130") || strings.Contains(page, `id="next"`) || !strings.Contains(page, `id="prev"`) ||
		!strings.Contains(page, "tcp</td><td>1100<") {
		t.Errorf("second page: %d rows, want 30 with a previous link", got)
	}
	if _, page = b.do(http.MethodGet, "/admin/reports?kind=access&range=7d&page=9", nil); rows(page) != 30 {
		t.Errorf("a page past the end shows the last page")
	}
	_, body := b.do(http.MethodGet, "/admin/reports?kind=access&range=7d&format=csv", nil)
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(recs) != 1+n+1 {
		t.Errorf("csv: %d lines, want head, %d rows and source (%v)", len(recs), n, err)
	}
	_, body = b.do(http.MethodGet, "/admin/reports?kind=access&range=7d&format=html", nil)
	if got := rows(body); got != n {
		t.Errorf("html download: %d rows, want all %d", got, n)
	}
}
