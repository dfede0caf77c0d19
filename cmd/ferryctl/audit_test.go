package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// TestAuditVerifyFile exports the audit log through the API, then checks
// the export offline: the untouched file verifies, and each way of
// tampering with it is named with the record it hit.
func TestAuditVerifyFile(t *testing.T) {
	dir := isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Store: srv.Cluster.Node(srv.Node), Signer: srv.Signer, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	for i := range 6 {
		mustCtl(t, "profile", "create", fmt.Sprintf("p%d", i), "--rule", "10.0.0.0/16 tcp 22", "--group", "engineering")
		if i == 2 {
			if _, err := cp.Checkpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Export through the API; the progress counts records, not the
	// header and trailer lines.
	export := filepath.Join(dir, "export.jsonl")
	_, stderr, err := ctlConsole(t, console{}, "audit", "export", export)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	records := len(lines) - 3 // header, the export's first checkpoint, trailer
	if !strings.HasPrefix(lines[0], `{"export":`) || !strings.HasPrefix(lines[1], `{"checkpoint":`) || !strings.HasPrefix(lines[len(lines)-1], `{"end":`) || records < 8 {
		t.Fatalf("export of %d lines:\n%s", len(lines), data)
	}
	if want := fmt.Sprintf("exported %d records", records); !strings.Contains(stderr, want) {
		t.Errorf("export progress %q does not say %q", stderr, want)
	}
	keyFile := filepath.Join(dir, "key.json")
	if err := os.WriteFile(keyFile, []byte(mustCtl(t, "audit", "key")), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("untouched", func(t *testing.T) {
		out := mustCtl(t, "audit", "verify", export, "--key", keyFile)
		want := fmt.Sprintf("%s: %d records (1..%d, ", export, records, records)
		if !strings.HasPrefix(out, want) || !strings.Contains(out, "1 checkpoints) verified; signed through") {
			t.Errorf("verify:\n%s\nwant it to start %q", out, want)
		}
		var res fileVerification
		ctlJSON(t, &res, "audit", "verify", export, "--key", keyFile)
		if !res.OK || res.Records != uint64(records) || res.Checkpoints != 1 || !res.Trailer || res.Signed != uint64(records) || res.KeyFrom != keyFile {
			t.Errorf("verify -o json: %+v", res)
		}
	})
	t.Run("key from the signed-in server", func(t *testing.T) {
		out, stderr, err := ctlConsole(t, console{}, "audit", "verify", export)
		if err != nil || !strings.Contains(out, "verified") || !strings.Contains(stderr, "fetched from "+srv.URL) {
			t.Errorf("verify without --key: %v\nstdout: %s\nstderr: %s", err, out, stderr)
		}
	})

	// lines[i+1] holds record i: line 0 is the header, line 1 the
	// export's first checkpoint.
	tests := []struct {
		name   string
		tamper func(ls []string) []string
		kind   string
		seq    uint64
		want   string
	}{
		{"edited", func(ls []string) []string {
			ls[5] = strings.Replace(ls[5], `"p`, `"q`, 1)
			return ls
		}, "edited", 4, "record 4 edited: its contents do not match its hash (line 6)"},
		{"deleted", func(ls []string) []string {
			return append(ls[:6], ls[7:]...)
		}, "missing", 5, "record 5 missing (line 7)"},
		{"reordered", func(ls []string) []string {
			ls[4], ls[5] = ls[5], ls[4]
			return ls
		}, "reordered", 3, "records out of order at 3: record 4 comes before it (line 6)"},
		{"truncated", func(ls []string) []string {
			return ls[:records] // the last two records and the trailer go
		}, "truncated", uint64(records - 2), fmt.Sprintf("export truncated after record %d: its signed trailer is missing", records-2)},
		{"truncated mid-line", func(ls []string) []string {
			last := ls[records+1]
			return append(ls[:records+1], last[:len(last)/2])
		}, "truncated", uint64(records - 1), fmt.Sprintf("export truncated after record %d: the last line is cut off", records-1)},
	}
	tampered := func(t *testing.T, name string, tamper func([]string) []string) string {
		t.Helper()
		file := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".jsonl")
		if err := os.WriteFile(file, []byte(strings.Join(tamper(append([]string(nil), lines...)), "")), 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := tampered(t, tt.name, tt.tamper)
			_, err := ctl(t, "", "audit", "verify", file, "--key", keyFile)
			if err == nil || !strings.Contains(err.Error(), file+" FAILED verification: audit: "+tt.want) {
				t.Errorf("verify: %v\nwant it to name %q", err, tt.want)
			}
			var te *audit.TamperError
			if !errors.As(err, &te) || te.Kind.String() != tt.kind || te.Seq != tt.seq {
				t.Errorf("verify: %#v, want a %s record %d", te, tt.kind, tt.seq)
			}
			out, _, err := ctlConsole(t, console{}, "audit", "verify", file, "--key", keyFile, "-o", "json")
			var res fileVerification
			if err == nil || decodeStrict(out, &res) != nil || res.OK || res.Kind != tt.kind || res.Seq != tt.seq || !strings.Contains(res.Problem, tt.want) {
				t.Errorf("verify -o json: %v, %+v", err, res)
			}
		})
	}

	t.Run("exit status", func(t *testing.T) {
		cmd := exec.Command(ferryctlBin, "audit", "verify", tampered(t, tests[0].name, tests[0].tamper), "--key", keyFile)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "record 4 edited") {
			t.Errorf("ferryctl on an edited export: %v\n%s", err, out)
		}
		cmd = exec.Command(ferryctlBin, "audit", "verify", export, "--key", keyFile)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("ferryctl on the untouched export: %v\n%s", err, out)
		}
		// As a sink writes it (no header, no trailer): the records after
		// the checkpoint are unsigned, exit status 3 unless accepted.
		sink := tampered(t, "sink stream", func(ls []string) []string { return ls[2 : len(ls)-1] })
		cmd = exec.Command(ferryctlBin, "audit", "verify", sink, "--key", keyFile, "--no-trailer")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err = cmd.CombinedOutput()
		if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "not covered by a signature") {
			t.Errorf("ferryctl on a stream with an unsigned tail: %v\n%s", err, out)
		}
		cmd = exec.Command(ferryctlBin, "audit", "verify", sink, "--key", keyFile, "--no-trailer", "--accept-unsigned-tail")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("ferryctl accepting the unsigned tail: %v\n%s", err, out)
		}
	})

	t.Run("bad arguments", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"audit", "verify"}, "give an export FILE to verify offline"},
			{[]string{"audit", "verify", export, "--live"}, "not both"},
			{[]string{"audit", "verify", "--live", "--key", keyFile}, "apply to an export FILE"},
			{[]string{"audit", "verify", export, "--key", filepath.Join(dir, "missing.json")}, "--key: open"},
			{[]string{"audit", "verify", export, "--key", export}, "--key: " + export + ": audit: malformed input"},
		} {
			if _, err := ctl(t, "", tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%v: %v, want %q", tt.args, err, tt.want)
			}
		}
		if err := deleteSession(); err != nil {
			t.Fatal(err)
		}
		if _, err := ctl(t, "", "audit", "verify", export); err == nil || !strings.Contains(err.Error(), "--key KEY.json: required when not signed in") {
			t.Errorf("verify without --key, signed out: %v", err)
		}
	})
}

// TestAuditStatus: ferryctl audit status shows the retention, the flow
// records' window and the last prune, for people and as JSON.
func TestAuditStatus(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	out := mustCtl(t, "audit", "status")
	for _, want := range []string{"Retention", "9600h0m0s", "Flow retention", "off (flow records follow the audit retention)", "Last prune", "never", "Journal", "records 1 to "} {
		if !strings.Contains(out, want) {
			t.Errorf("audit status does not say %q:\n%s", want, out)
		}
	}
	var st struct {
		Node, Retention, FlowRetention string
		Head                           uint64
	}
	if err := json.Unmarshal([]byte(mustCtl(t, "audit", "status", "-o", "json")), &st); err != nil || st.Retention != "9600h0m0s" || st.Head == 0 || st.Node == "" {
		t.Fatalf("audit status -o json: %+v, %v", st, err)
	}
}
