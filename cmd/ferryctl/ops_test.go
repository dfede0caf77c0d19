package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

func TestAuditAndClusterCommands(t *testing.T) {
	dir := isolate(t)
	srv := apitest.Start(t)
	ca := srv.PublishCA(t)
	signIn(t, srv, srv.Admin(t))
	mustCtl(t, "profile", "create", "eng", "--rule", "10.0.0.0/16 tcp 22", "--group", "engineering")

	t.Run("cluster status", func(t *testing.T) {
		out := mustCtl(t, "cluster", "status")
		for _, want := range []string{"State:", "Leader", "Ready:", "yes", "MEMBER"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		var st wire.ClusterStatus
		ctlJSON(t, &st, "cluster", "status")
		if !st.Ready || len(st.Members) != 1 {
			t.Errorf("status -o json: %+v", st)
		}
	})
	t.Run("audit tail and export", func(t *testing.T) {
		out := mustCtl(t, "audit", "tail", "-n", "100", "-o", "json", "--type", "profile.*")
		if !strings.Contains(out, `"profile.change"`) || strings.Contains(out, `"auth.login"`) {
			t.Errorf("tail -o json --type profile.*:\n%s", out)
		}
		// For people: one readable line per record, no JSON (issue:
		// audit tail printed raw JSON even with -o table).
		out = mustCtl(t, "audit", "tail", "-n", "100", "--type", "profile.*")
		if !strings.Contains(out, "profile.change") || strings.Contains(out, "{") || !strings.Contains(out, "success") {
			t.Errorf("tail for people:\n%s", out)
		}
		t.Logf("audit tail:\n%s", out)
		if out := mustCtl(t, "audit", "tail", "-n", "100", "--format", "cef"); !strings.Contains(out, "CEF:") {
			t.Errorf("tail --format cef:\n%s", out)
		}
		file := filepath.Join(dir, "export.jsonl")
		mustCtl(t, "audit", "export", file)
		data, err := os.ReadFile(file)
		if err != nil || !strings.Contains(string(data), "profile.change") || fileMode(t, file) != 0o600 {
			t.Fatalf("export file: %v\n%s", err, data)
		}
		if _, err := ctl(t, "", "audit", "export", "--since", "last tuesday"); err == nil || !strings.Contains(err.Error(), "--since") {
			t.Errorf("bad --since: %v", err)
		}
	})
	t.Run("audit key and verify", func(t *testing.T) {
		if out := mustCtl(t, "audit", "key"); !strings.Contains(out, "key_id") {
			t.Errorf("key:\n%s", out)
		}
		if out := mustCtl(t, "audit", "verify", "--live"); !strings.Contains(out, "verified") {
			t.Errorf("verify --live:\n%s", out)
		}
		if _, err := ctl(t, "", "audit", "verify"); err == nil || !strings.Contains(err.Error(), "--live") {
			t.Errorf("verify without FILE or --live: %v", err)
		}
	})
	t.Run("backup and restore", func(t *testing.T) {
		file := filepath.Join(dir, "backup.snap")
		if out := mustCtl(t, "cluster", "backup", file); !strings.Contains(out, "Wrote") {
			t.Fatalf("backup: %s", out)
		}
		mustCtl(t, "profile", "delete", "eng", "--yes")
		if _, err := ctl(t, "", "cluster", "restore", file); err == nil || !strings.Contains(err.Error(), "--yes") {
			t.Fatalf("restore without --yes: %v", err)
		}
		mustCtl(t, "cluster", "restore", file, "--yes")
		if out := mustCtl(t, "profile", "list"); !strings.Contains(out, "eng") {
			t.Fatalf("profile list after restore:\n%s", out)
		}
	})
	t.Run("cluster join", func(t *testing.T) {
		verify := func(tok string) {
			t.Helper()
			key := seal.DeriveKey(srv.MasterKey, "join-token")
			if err := pki.VerifyJoinToken(key, pki.Fingerprint(ca.Cert), tok, time.Now()); err != nil {
				t.Fatalf("token %.12q...: %v", tok, err)
			}
			if err := pki.VerifyJoinToken(key, pki.Fingerprint(ca.Cert), tok, time.Now().Add(61*time.Minute)); err == nil {
				t.Fatal("the token outlives its default hour")
			}
		}
		out := mustCtl(t, "cluster", "join")
		lines := strings.Split(out, "\n")
		if len(lines) < 3 || !strings.HasPrefix(lines[0], "Join token, valid until") {
			t.Fatalf("join:\n%s", out)
		}
		verify(lines[2])
		if want := "ferryd join --server " + srv.URL + " --token-file FILE"; !strings.Contains(out, want) {
			t.Errorf("join lacks %q:\n%s", want, out)
		}

		file := filepath.Join(dir, "n4.token")
		out = mustCtl(t, "cluster", "join", "--ttl", "1h", "-f", file)
		data, err := os.ReadFile(file)
		if err != nil || fileMode(t, file) != 0o600 {
			t.Fatalf("token file: %v", err)
		}
		tok := strings.TrimSpace(string(data))
		verify2 := pki.VerifyJoinToken(seal.DeriveKey(srv.MasterKey, "join-token"), pki.Fingerprint(ca.Cert), tok, time.Now().Add(59*time.Minute))
		if verify2 != nil {
			t.Fatalf("token of --ttl 1h: %v", verify2)
		}
		if strings.Contains(out, tok) || !strings.Contains(out, "--token-file n4.token") {
			t.Errorf("join -f printed the token or lacks the token file:\n%s", out)
		}
		if _, err := ctl(t, "", "cluster", "join", "-f", file); err == nil {
			t.Error("join -f overwrote an existing file")
		}
		for _, ttl := range []string{"0s", "25h", "1.5s"} {
			if _, err := ctl(t, "", "cluster", "join", "--ttl", ttl); err == nil || !strings.Contains(err.Error(), "--ttl") {
				t.Errorf("--ttl %s: %v", ttl, err)
			}
		}
	})
	t.Run("refused to non-admins", func(t *testing.T) {
		signIn(t, srv, srv.Token(t, alice))
		for _, args := range [][]string{
			{"cluster", "status"}, {"cluster", "remove", "n9"}, {"cluster", "backup", filepath.Join(dir, "x")},
			{"cluster", "restore", filepath.Join(dir, "backup.snap"), "--yes"},
			{"cluster", "join"}, {"cluster", "join", "-f", filepath.Join(dir, "refused.token")},
			{"audit", "tail"}, {"audit", "export"}, {"audit", "key"}, {"audit", "verify", "--live"},
		} {
			if _, err := ctl(t, "", args...); err == nil || err.Error() != msgForbidden {
				t.Errorf("%v as a non-admin: %v", args, err)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "refused.token")); !os.IsNotExist(err) {
			t.Errorf("a refused join left its token file: %v", err)
		}
	})
}
