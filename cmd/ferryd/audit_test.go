package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

func TestAuditVerifyOffline(t *testing.T) {
	srv := apitest.Start(t)
	srv.Admin(t)
	dir := t.TempDir()
	var export bytes.Buffer
	ctx := context.Background()
	if _, err := audit.Export(ctx, &export, srv.Cluster.Node(0), audit.ExportOptions{Signer: srv.Signer}); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key.json")
	pub := srv.Signer.Public()
	kb, _ := json.Marshal(audit.PublicKeyRecord{KeyID: audit.KeyID(pub), PublicKey: pub})
	os.WriteFile(keyFile, kb, 0o600)
	good := filepath.Join(dir, "export.jsonl")
	os.WriteFile(good, export.Bytes(), 0o600)
	var out bytes.Buffer
	if err := run(ctx, []string{"audit", "verify", good, "--key", keyFile}, &out, &out); err != nil || !strings.Contains(out.String(), "verified") {
		t.Fatalf("good export: %v\n%s", err, out.String())
	}
	lines := strings.SplitAfter(export.String(), "\n")
	tests := map[string]string{
		"edited":    strings.Replace(export.String(), "admin@example.com", "other@example.com", 1),
		"deleted":   strings.Join(append(append([]string{}, lines[:2]...), lines[3:]...), ""),
		"truncated": strings.Join(lines[:len(lines)/2], ""),
	}
	for name, text := range tests {
		path := filepath.Join(dir, name+".jsonl")
		os.WriteFile(path, []byte(text), 0o600)
		if err := run(ctx, []string{"audit", "verify", path, "--key", keyFile}, &out, &out); err == nil || !strings.Contains(err.Error(), "FAILED") {
			t.Errorf("%s export: %v", name, err)
		}
	}
	if err := run(ctx, []string{"audit", "verify", good}, &out, &out); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("without --key: %v", err)
	}
}
