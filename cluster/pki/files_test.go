package pki

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name string
		perm fs.FileMode
	}{
		{name: "secret", perm: 0o600},
		{name: "public", perm: 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "a", "b")
			path := filepath.Join(dir, "file.pem")
			if err := WriteFile(path, []byte("one"), tt.perm); err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			if err := WriteFile(path, []byte("two"), tt.perm); err != nil {
				t.Fatalf("WriteFile over an existing file: %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "two" {
				t.Errorf("content = %q, want %q", got, "two")
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.perm {
				t.Errorf("file mode = %#o, want %#o", fi.Mode().Perm(), tt.perm)
			}
			di, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if di.Mode().Perm() != 0o700 {
				t.Errorf("directory mode = %#o, want 0700", di.Mode().Perm())
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want 1 (temporary file left behind?)", len(entries))
			}
		})
	}
}

func TestWriteFileFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Renaming a file over a non-empty directory fails.
	if err := WriteFile(target, []byte("data"), 0o600); err == nil {
		t.Fatalf("WriteFile over a directory succeeded")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (temporary file left behind?)", len(entries))
	}
}

func TestLoadCertPEM(t *testing.T) {
	ca := newTestCA(t, "ca", testNow)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name    string
		content []byte
		wantErr string
	}{
		{name: "certificate", content: ca.CertPEM()},
		{name: "certificate chain", content: append(newTestNode(t, ca, "node-a", time.Hour, testNow).certPEM, ca.CertPEM()...)},
		{name: "key", content: keyPEM, wantErr: `"PRIVATE KEY", want "CERTIFICATE"`},
		{name: "empty", content: nil, wantErr: "no PEM block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".pem")
			if err := WriteFile(path, tt.content, 0o644); err != nil {
				t.Fatal(err)
			}
			cert, err := LoadCertPEM(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("LoadCertPEM error = %v, want one containing %q and the path", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCertPEM: %v", err)
			}
			if cert.Subject.CommonName == "" {
				t.Errorf("loaded certificate has no common name")
			}
		})
	}
	if _, err := LoadCertPEM(filepath.Join(dir, "missing.pem")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadCertPEM(missing) = %v, want a not-exist error", err)
	}
}
