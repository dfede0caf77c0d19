package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

// TestOutputFlagIsAlwaysTheFormat: -o is the output format in every
// command, files are arguments or -f (issue: the global -o json stopped
// working in audit export, cluster join and cluster backup, which defined
// their own --output FILE).
func TestOutputFlagIsAlwaysTheFormat(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	srv.PublishCA(t)
	signIn(t, srv, srv.Admin(t))
	dir := t.TempDir()
	t.Chdir(dir)

	var join struct {
		Token, File, Command string
		Expires              time.Time
	}
	ctlJSON(t, &join, "cluster", "join", "--ttl", "10m")
	if join.Token == "" || join.Command == "" {
		t.Errorf("cluster join -o json: %+v", join)
	}
	file := filepath.Join(dir, "n4.token")
	join.Token = ""
	ctlJSON(t, &join, "cluster", "join", "-f", file)
	if join.Token != "" {
		t.Error("cluster join -f printed the token")
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("cluster join -f: %v", err)
	}

	var backup struct {
		File  string
		Bytes int64
	}
	ctlJSON(t, &backup, "cluster", "backup", filepath.Join(dir, "b.snap"))
	if backup.Bytes == 0 {
		t.Errorf("cluster backup -o json: %+v", backup)
	}
	if _, err := ctl(t, "", "audit", "export", "-o", "json", filepath.Join(dir, "a.jsonl")); err != nil {
		t.Errorf("audit export -o json FILE: %v", err)
	}
	// Nothing named after the format.
	if _, err := os.Stat(filepath.Join(dir, "json")); err == nil {
		t.Error("-o json wrote a file named json")
	}
	if _, err := ctl(t, "", "cluster", "backup", "-o", "b2.snap"); err == nil {
		t.Error("-o FILE accepted as a file name")
	}
}
