package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cmd/internal/config"
)

// runIn runs ferryd in this process and returns its output.
func runIn(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	err = run(context.Background(), args, &o, &e)
	return o.String(), e.String(), err
}

// TestCommandErrors checks that commands refuse bad input with an error
// naming the flag, before they write anything.
func TestCommandErrors(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	if _, _, err := runIn("init", "--dir", existing, "--cluster-addr", "127.0.0.1:7946", "--api-addr", "127.0.0.1:8443"); err != nil {
		t.Fatalf("init: %v", err)
	}
	cfg := filepath.Join(existing, "ferryd.yaml")
	tok, _, err := runIn("token", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(tok)
	master := filepath.Join(existing, "master.key")
	n := 0
	fresh := func() string { n++; return filepath.Join(dir, fmt.Sprintf("fresh%d", n)) }
	joinArgs := func(extra ...string) []string {
		return append([]string{"join", "--server", "https://127.0.0.1:1", "--dir", fresh(), "--node-id", "n2",
			"--cluster-addr", "127.0.0.1:7947", "--api-addr", "127.0.0.1:8444"}, extra...)
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"init without dir", []string{"init", "--cluster-addr", "127.0.0.1:1", "--api-addr", "127.0.0.1:2"}, `required flag(s) "dir" not set`},
		{"init bad node id", []string{"init", "--dir", fresh(), "--node-id", "N1", "--cluster-addr", "127.0.0.1:1", "--api-addr", "127.0.0.1:2"}, "--node-id: pki: invalid node ID"},
		{"init wildcard cluster addr", []string{"init", "--dir", fresh(), "--cluster-addr", "0.0.0.0:7946", "--api-addr", "127.0.0.1:2"}, "--cluster-addr \"0.0.0.0:7946\": want an address"},
		{"init cluster port 0", []string{"init", "--dir", fresh(), "--cluster-addr", "10.0.0.1:0", "--api-addr", "127.0.0.1:2"}, "want host:port with a fixed port"},
		{"init no api name", []string{"init", "--dir", fresh(), "--cluster-addr", "10.0.0.1:1", "--api-addr", "0.0.0.0:8443"}, "--api-name: give the DNS names"},
		{"init reserved api name", []string{"init", "--dir", fresh(), "--cluster-addr", "10.0.0.1:1", "--api-addr", "0.0.0.0:8443", "--api-name", "ferry-cluster"}, "reserved for node certificates"},
		{"init over a cluster", []string{"init", "--dir", existing, "--cluster-addr", "127.0.0.1:1", "--api-addr", "127.0.0.1:2"}, "already holds a ferry node (found ferryd.yaml); refusing to overwrite"},
		{"init on another node's state", []string{"init", "--dir", fresh(), "--data-dir", existing, "--cluster-addr", "127.0.0.1:1", "--api-addr", "127.0.0.1:2"}, "is not empty; refusing to start a new node on existing state"},
		{"token ttl zero", []string{"token", "--config", cfg, "--ttl", "0s"}, "--ttl 0s: want a duration above 0"},
		{"token ttl too long", []string{"token", "--config", cfg, "--ttl", "1000h"}, "at most 24h0m0s"},
		{"token bad config", []string{"token", "--config", filepath.Join(dir, "none.yaml")}, "reading config"},
		{"join malformed token", joinArgs("--token", "hello", "--master-key-file", master), "--token: pki: malformed join token"},
		{"join token and token file", joinArgs("--token", tok, "--token-file", "x", "--master-key-file", master), "none of the others can be"},
		{"join missing master key", joinArgs("--token", tok, "--master-key-file", filepath.Join(dir, "none")), "--master-key-file: seal: opening key file"},
		{"join plain http", append(joinArgs("--token", tok, "--master-key-file", master), "--server", "http://127.0.0.1:1"), `--server "http://127.0.0.1:1": want an https:// URL`},
		{"join unreachable server", joinArgs("--token", tok, "--master-key-file", master, "--wait", "0s"), "join via https://127.0.0.1:1: POST /v1/cluster/join"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runIn(tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(cfg); err != nil {
		t.Errorf("a failed command damaged an existing node: %v", err)
	}
	// No failed init or join left files behind in a fresh directory.
	left, _ := filepath.Glob(filepath.Join(dir, "fresh*", "*"))
	if len(left) != 0 {
		t.Errorf("failed commands left files: %v", left)
	}
}

// TestInitWritesLoadableCluster checks the files and modes init writes.
func TestInitWritesLoadableCluster(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n1")
	out, _, err := runIn("init", "--dir", dir, "--node-id", "n1", "--cluster-addr", "10.0.1.5:7946",
		"--api-addr", "0.0.0.0:8443", "--api-name", "vpn.example.com", "--api-name", "10.0.1.5", "--public-url", "https://vpn.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "ferryd join --server https://vpn.example.com") {
		t.Errorf("next steps do not name the public URL:\n%s", out)
	}
	modes := map[string]os.FileMode{
		"master.key": 0o600, "tls/ca.key": 0o600, "tls/node.key": 0o600, "tls/api.key": 0o600,
		"tls/ca.crt": 0o644, "tls/node.crt": 0o644, "tls/api.crt": 0o644, "ferryd.yaml": 0o644,
	}
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "ferryd.yaml"), config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Cluster.Bootstrap || cfg.TLS.CAKeyFile == "" || cfg.API.PublicURL != "https://vpn.example.com" {
		t.Errorf("config = %+v", cfg)
	}
	if _, err := cfg.ClusterConfig(nil, nil); err != nil {
		t.Errorf("ClusterConfig: %v", err)
	}
	if _, err := cfg.LoadCA(); err != nil {
		t.Errorf("LoadCA: %v", err)
	}
	apiCert, err := cfg.APICertificate()
	if err != nil {
		t.Fatal(err)
	}
	if len(apiCert.Certificate) != 2 {
		t.Fatalf("api certificate chain has %d certificates, want leaf and CA", len(apiCert.Certificate))
	}
	if err := pki.VerifyPin(apiCert.Certificate, pki.Fingerprint(apiCert.Leaf)[:32]); err == nil {
		t.Errorf("pin of the leaf verified")
	}
	ca, _ := cfg.LoadCACert()
	if err := pki.VerifyPin(apiCert.Certificate, pki.Fingerprint(ca)[:32]); err != nil {
		t.Errorf("a joining node could not verify the API against the CA pin: %v", err)
	}
	if err := apiCert.Leaf.VerifyHostname("vpn.example.com"); err != nil {
		t.Error(err)
	}
	if err := apiCert.Leaf.VerifyHostname("10.0.1.5"); err != nil {
		t.Error(err)
	}
}

func TestVersion(t *testing.T) {
	out, _, err := runIn("version")
	if err != nil || !strings.HasPrefix(out, "ferryd ") {
		t.Errorf("version: %q, %v", out, err)
	}
}
