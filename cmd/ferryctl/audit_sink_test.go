package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/audit/audittest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// ferryctl audit sink add, list, show, test and remove against a real
// HEC receiver; cluster status says when no network sink exists.
func TestAuditSinkCommands(t *testing.T) {
	dir := isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	if out := mustCtl(t, "cluster", "status"); !strings.Contains(out, "NO NETWORK SINK") {
		t.Errorf("cluster status without sinks:\n%s\nwant it to say no network sink exists", out)
	}
	hec := audittest.NewHEC(t, audittest.HECOptions{})
	tok := filepath.Join(dir, "hec-token")
	if err := os.WriteFile(tok, []byte(hec.Token()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCtl(t, "audit", "sink", "add", "splunk", "--type", "hec", "--url", hec.URL, "--token-file", tok)
	if _, err := ctl(t, "", "audit", "sink", "add", "splunk", "--type", "hec", "--url", hec.URL, "--token-file", tok); err == nil {
		t.Error("adding a sink twice: accepted")
	}
	if _, err := ctl(t, "", "audit", "sink", "add", "bad", "--type", "kafka"); err == nil {
		t.Error("a sink of unknown type: accepted")
	}
	if out := mustCtl(t, "audit", "sink", "list"); !strings.Contains(out, "splunk") || !strings.Contains(out, hec.URL) {
		t.Errorf("list:\n%s", out)
	}
	var shown wire.AuditSink
	ctlJSON(t, &shown, "audit", "sink", "show", "splunk")
	if shown.Token != "(sealed)" || strings.Contains(mustCtl(t, "audit", "sink", "show", "splunk"), hec.Token()) {
		t.Errorf("show reveals the token: %+v", shown)
	}
	// The receiver gets the test record (sequence 0) beside the journal's
	// records, which the leader's exporter sends to every network sink as
	// soon as it is added, as in ferryd.
	out := mustCtl(t, "audit", "sink", "test", "splunk")
	if !strings.Contains(out, "HTTP 200: Success") {
		t.Errorf("test: %q", out)
	}
	tests := 0
	for _, e := range hec.Events() {
		var ev struct {
			Seq    uint64
			Record struct{ Type string }
		}
		if json.Unmarshal(e, &ev) == nil && ev.Seq == 0 && ev.Record.Type == "audit.sink_test" {
			tests++
		}
	}
	if tests != 1 {
		t.Errorf("%d test records among the %d events at the receiver, want 1", tests, len(hec.Events()))
	}
	if out := mustCtl(t, "cluster", "status"); strings.Contains(out, "NO NETWORK SINK") {
		t.Errorf("cluster status with a sink still says none:\n%s", out)
	}
	mustCtl(t, "audit", "sink", "remove", "splunk")
	if _, err := ctl(t, "", "audit", "sink", "show", "splunk"); err == nil {
		t.Error("show after remove: found")
	}
}
