package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/webpage/webpagetest"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// recordFlows records a known mix of flow records through the real audit
// log: alice and bob reach the database, bob is denied ssh.
func recordFlows(t *testing.T, srv *apitest.Server) time.Time {
	t.Helper()
	at := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	rec := func(user, dst string, port int, deny bool, flows, out, in uint64) {
		e := audit.Event{Time: at, Type: audit.TypeFlowAccept, Outcome: audit.Success,
			Actor:    audit.Actor{UserID: user, Email: user + "@example.com"},
			Target:   audit.Target{User: user, Device: "laptop", Profile: "eng", DstAddr: dst, DstPort: port, Protocol: "tcp"},
			BytesOut: out, BytesIn: in, PolicyVersion: 3,
			Details: map[string]string{"flows": fmt.Sprint(flows), "packets_out": "1", "packets_in": "1",
				"first": at.Format(time.RFC3339Nano), "last": at.Add(time.Minute).Format(time.RFC3339Nano)}}
		if deny {
			e.Type, e.Outcome = audit.TypeFlowDeny, audit.Failure
		}
		if err := srv.Audit.Record(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	rec("alice", "10.0.4.17", 5432, false, 4, 4000, 40000)
	rec("alice", "10.0.4.17", 5432, false, 1, 1000, 10000)
	rec("bob", "10.0.4.17", 5432, false, 2, 200, 2000)
	rec("bob", "10.0.9.1", 22, true, 3, 0, 0)
	return at
}

// TestReportAccess: the access report through the API and ferryctl, in
// JSON, table and CSV, with its journal range; then the HTML file in
// headless Chromium shows the same rows as the CSV.
func TestReportAccess(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	recordFlows(t, srv)

	var rep wire.AccessReport
	ctlJSON(t, &rep, "report", "access", "--dst", "10.0.4.17:5432", "--since", "1d")
	var got []string
	for _, r := range rep.Rows {
		got = append(got, fmt.Sprintf("%s %s:%d flows=%d out=%d in=%d denied=%d", r.User, r.Dst, r.Port, r.Flows, r.BytesOut, r.BytesIn, r.Denied))
	}
	want := []string{"alice 10.0.4.17:5432 flows=5 out=5000 in=50000 denied=0", "bob 10.0.4.17:5432 flows=2 out=200 in=2000 denied=0"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("who reached 10.0.4.17:5432:\n got %q\nwant %q", got, want)
	}
	head, _, _ := srv.Cluster.Node(srv.Node).JournalHead()
	if rep.Source.FromSeq != 1 || rep.Source.ToSeq < head-1 || rep.Source.Node == "" {
		t.Errorf("source %+v (journal head %d)", rep.Source, head)
	}

	var byHour wire.AccessReport
	ctlJSON(t, &byHour, "report", "access", "--user", "alice", "--since", "1d", "--by", "hour")
	if len(byHour.Rows) != 1 || byHour.Rows[0].Period.IsZero() || byHour.Rows[0].Flows != 5 {
		t.Errorf("by hour: %+v", byHour.Rows)
	}
	table := mustCtl(t, "report", "access", "--user", "bob@example.com")
	for _, s := range []string{"10.0.9.1", "22", "3", "computed on node", "from journal records 1-"} {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}
	if _, err := ctl(t, "", "report", "access", "--dst", "10.0.4.17/16"); err == nil || !strings.Contains(err.Error(), "dst") {
		t.Errorf("a CIDR with host bits: %v", err)
	}
	if _, err := ctl(t, "", "profile", "list", "-o", "csv"); err == nil {
		t.Error("-o csv was accepted outside report commands")
	}

	csvOut := mustCtl(t, "report", "access", "-o", "csv")
	records, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	if err != nil || len(records) != 4 {
		t.Fatalf("csv (%v):\n%s", err, csvOut)
	}

	html := mustCtl(t, "report", "access", "-o", "html")
	file := filepath.Join(t.TempDir(), "access.html")
	if err := os.WriteFile(file, []byte(html), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := webpagetest.Browser(t)
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, chromedp.Navigate("file://"+file)); err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(sctx, chromedp.Evaluate[[][]string](
		`Array.from(document.querySelectorAll("#access tr")).map(tr => Array.from(tr.children).map(c => c.innerText))`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(records) {
		t.Fatalf("HTML shows %d rows, CSV has %d", len(rows), len(records))
	}
	for i := 1; i < len(rows); i++ {
		if !reflect.DeepEqual(rows[i], records[i]) {
			t.Errorf("row %d: HTML %q, CSV %q", i, rows[i], records[i])
		}
	}
	src, err := chromedp.Run(sctx, chromedp.Text(chromedp.ID("source")))
	if err != nil || !strings.Contains(src, "from journal records 1-") {
		t.Errorf("HTML source line %q (%v)", src, err)
	}
}

// TestProfileApplyReplay: a proposed change that removes a port names
// exactly the users who used it as "would be denied"; nothing changes.
func TestProfileApplyReplay(t *testing.T) {
	dir := isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	mustCtl(t, "profile", "create", "eng", "--rule", "10.0.4.0/24 tcp 443,5432", "--group", "engineering")
	recordFlows(t, srv) // alice and bob used 5432; bob was denied 10.0.9.1:22
	at := time.Now().UTC().Add(-time.Hour)
	if err := srv.Audit.Record(t.Context(), audit.Event{Time: at, Type: audit.TypeFlowAccept, Outcome: audit.Success,
		Actor:   audit.Actor{UserID: "carol", Email: "carol@example.com"},
		Target:  audit.Target{User: "carol", Profile: "eng", DstAddr: "10.0.4.20", DstPort: 443, Protocol: "tcp"},
		Details: map[string]string{"flows": "9"}}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "profiles.yaml")
	if err := os.WriteFile(file, []byte("profiles:\n  - name: eng\n    rules:\n      - {cidr: 10.0.4.0/24, protocol: tcp, ports: [443]}\n    groups: [engineering]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Plan   wire.ApplyResponse  `json:"plan"`
		Replay wire.ReplayResponse `json:"replay"`
	}
	ctlJSON(t, &out, "profile", "apply", "-f", file, "--dry-run", "--replay", "7d")
	if len(out.Replay.Profiles) != 1 || out.Replay.Profiles[0].Profile != "eng" {
		t.Fatalf("replay: %+v", out.Replay)
	}
	var deny []string
	for _, r := range out.Replay.Profiles[0].WouldDeny {
		deny = append(deny, fmt.Sprintf("%s %s:%d %d", r.User, r.Dst, r.Port, r.Flows))
	}
	if want := []string{"alice 10.0.4.17:5432 5", "bob 10.0.4.17:5432 2"}; !reflect.DeepEqual(deny, want) {
		t.Errorf("would be denied:\n got %q\nwant %q", deny, want)
	}
	if n := len(out.Replay.Profiles[0].WouldAllow); n != 0 {
		t.Errorf("would be allowed: %+v", out.Replay.Profiles[0].WouldAllow)
	}
	text := mustCtl(t, "profile", "apply", "-f", file, "--dry-run", "--replay", "7d")
	for _, s := range []string{"would be denied", "alice@example.com", "bob@example.com", "5432", "nothing was changed"} {
		if !strings.Contains(text, s) {
			t.Errorf("replay text lacks %q:\n%s", s, text)
		}
	}
	if strings.Contains(text, "carol") {
		t.Errorf("carol, who used only 443, is named:\n%s", text)
	}
	if _, err := ctl(t, "", "profile", "apply", "-f", file, "--replay", "7d"); err == nil {
		t.Error("--replay without --dry-run was accepted")
	}
	var p wire.Profile
	ctlJSON(t, &p, "profile", "show", "eng")
	if len(p.Rules) != 1 || len(p.Rules[0].Ports) != 2 {
		t.Errorf("the replay changed the profile: %+v", p.Rules)
	}
}

// TestReportEntitlementsUnused: who can reach what (user → group → profile
// → rule) and what of it went unused, through ferryctl.
func TestReportEntitlementsUnused(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	mustCtl(t, "profile", "create", "eng", "--rule", "10.0.4.0/24 tcp 5432", "--rule", "10.0.8.0/24 tcp 22", "--group", "engineering")
	for _, u := range []string{"alice", "bob"} {
		if _, err := srv.Users.Upsert(t.Context(), authn.Identity{UserID: u, Email: u + "@example.com", Groups: []string{"engineering"}}); err != nil {
			t.Fatal(err)
		}
	}
	recordFlows(t, srv) // alice and bob used 10.0.4.17:5432

	var rep wire.EntitlementsReport
	ctlJSON(t, &rep, "report", "entitlements", "--since", "7d")
	var got []string
	for _, r := range rep.Rows {
		got = append(got, fmt.Sprintf("%s via %s: %s#%d %d", r.User, r.Via, r.Profile, r.Rule, r.Flows))
	}
	want := []string{"alice via group engineering: eng#0 5", "alice via group engineering: eng#1 0",
		"bob via group engineering: eng#0 2", "bob via group engineering: eng#1 0"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entitlements:\n got %q\nwant %q", got, want)
	}
	text := mustCtl(t, "report", "unused", "--since", "7d")
	for _, s := range []string{"alice@example.com", "bob@example.com", "1: tcp 10.0.8.0/24 22", "(every holder)"} {
		if !strings.Contains(text, s) {
			t.Errorf("unused report lacks %q:\n%s", s, text)
		}
	}
	if strings.Contains(text, "5432") {
		t.Errorf("unused report names the used rule:\n%s", text)
	}
	if _, err := ctl(t, "", "report", "unused"); err == nil {
		t.Error("unused without --since was accepted")
	}
}

// TestReportSameOnEveryNode: each node of a three-node cluster answers the
// access report from its own rollup of its own journal; once their
// journals reach the same head, every node gives the same rows and names
// the same journal range.
func TestReportSameOnEveryNode(t *testing.T) {
	srvs := apitest.StartCluster(t, 3)
	recordFlows(t, srvs[0])
	var head uint64
	clustertest.WaitFor(t, 10*time.Second, "journals at one head", func() error {
		heads := map[uint64]bool{}
		for _, s := range srvs {
			h, _, err := s.Cluster.Node(s.Node).JournalHead()
			if err != nil {
				return err
			}
			heads[h] = true
			head = h
		}
		if len(heads) != 1 {
			return fmt.Errorf("heads %v", heads)
		}
		return nil
	})
	token := srvs[0].Admin(t)
	var first wire.AccessReport
	for i, s := range srvs {
		rep, err := userClient(t, s, token).ReportAccess(t.Context(), client.AccessFilter{})
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if len(rep.Rows) != 3 || rep.Source.ToSeq < head {
			t.Errorf("node %d: %d rows, source %+v (head %d)", i, len(rep.Rows), rep.Source, head)
		}
		if i == 0 {
			first = rep
			continue
		}
		if !reflect.DeepEqual(rep.Rows, first.Rows) {
			t.Errorf("node %d rows differ from node 0's:\n%+v\n%+v", i, rep.Rows, first.Rows)
		}
		if rep.Source.Node == first.Source.Node {
			t.Errorf("node %d answered as %s", i, rep.Source.Node)
		}
	}
}
