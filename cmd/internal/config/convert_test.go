package config

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// writeNode writes a CA, a node certificate for id, an API certificate
// (leaf only) and a master key into dir, under the names base uses.
func writeNode(t *testing.T, dir, id string, ca *pki.CA) {
	t.Helper()
	write := func(name string, data []byte, perm os.FileMode) {
		if err := pki.WriteFile(filepath.Join(dir, name), data, perm); err != nil {
			t.Fatal(err)
		}
	}
	nodePEM, keyPEM := issueNode(t, ca, id)
	apiKey, _ := pki.NewKey()
	apiPEM, err := ca.IssueServer(apiKey.Public(), nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	apiKeyPEM, _ := pki.KeyPEM(apiKey)
	caKeyPEM, _ := ca.KeyPEM()
	write("tls/ca.crt", ca.CertPEM(), 0o644)
	write("tls/ca.key", caKeyPEM, 0o600)
	write("tls/node.crt", nodePEM, 0o644)
	write("tls/node.key", keyPEM, 0o600)
	write("tls/api.crt", apiPEM, 0o644)
	write("tls/api.key", apiKeyPEM, 0o600)
	master, _ := seal.GenerateKey()
	if err := seal.WriteKeyFile(filepath.Join(dir, "master.key"), master); err != nil {
		t.Fatal(err)
	}
}

// withCAKey is base with the CA key file set.
var withCAKey = edit("  key_file: tls/node.key", "  key_file: tls/node.key\n  ca_key_file: tls/ca.key")

// issueNode returns a node certificate for id from ca and its key, in PEM.
func issueNode(t *testing.T, ca *pki.CA, id string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, id)
	certPEM, err := ca.IssueNode(csr, id, []string{cluster.DefaultServerName}, nil, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ = pki.KeyPEM(key)
	return certPEM, keyPEM
}

// replaceNode overwrites the node certificate and key in dir with new ones
// for id from ca.
func replaceNode(t *testing.T, dir string, ca *pki.CA, id string) {
	t.Helper()
	certPEM, keyPEM := issueNode(t, ca, id)
	if err := os.WriteFile(filepath.Join(dir, "tls/node.crt"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls/node.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestIdentityFiles(t *testing.T) {
	ca, err := pki.NewCA("test CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherCA, _ := pki.NewCA("other CA", time.Hour, time.Now())
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		load  func(c *Config) error
		want  string // "" for success
	}{
		{"cluster config", nil, func(c *Config) error { _, err := c.ClusterConfig(nil, nil); return err }, ""},
		{"api certificate gains the CA", nil, func(c *Config) error {
			cert, err := c.APICertificate()
			if err == nil && len(cert.Certificate) != 2 {
				return errors.New("chain lacks the CA certificate")
			}
			return err
		}, ""},
		{"ca key", nil, func(c *Config) error { _, err := c.LoadCA(); return err }, ""},
		{"master key", nil, func(c *Config) error { _, err := c.MasterKey(); return err }, ""},
		{"missing ca file", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "tls/ca.crt")) },
			func(c *Config) error { _, err := c.ClusterConfig(nil, nil); return err }, "tls.ca_file: pki: reading certificate"},
		{"missing node key", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "tls/node.key")) },
			func(c *Config) error { _, err := c.ClusterConfig(nil, nil); return err }, "tls.key_file: open "},
		{"certificate of another node", func(t *testing.T, dir string) { replaceNode(t, dir, ca, "n2") },
			func(c *Config) error { _, err := c.ClusterConfig(nil, nil); return err }, `is the certificate of node "n2", but node_id is "n1"`},
		{"key of another certificate", func(t *testing.T, dir string) {
			os.Rename(filepath.Join(dir, "tls/api.key"), filepath.Join(dir, "tls/node.key"))
		}, func(c *Config) error { _, err := c.ClusterConfig(nil, nil); return err }, "tls.cert_file: "},
		{"certificate of another CA", func(t *testing.T, dir string) { replaceNode(t, dir, otherCA, "n1") }, func(c *Config) error { _, err := c.ClusterConfig(nil, nil); return err }, "does not verify against tls.ca_file"},
		{"ca key of another CA", func(t *testing.T, dir string) {
			k, _ := otherCA.KeyPEM()
			os.WriteFile(filepath.Join(dir, "tls/ca.key"), k, 0o600)
		}, func(c *Config) error { _, err := c.LoadCA(); return err }, "tls.ca_key_file: "},
		{"master key readable by others", func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, "master.key"), 0o644) },
			func(c *Config) error { _, err := c.MasterKey(); return err }, "master_key_file: seal: key file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeNode(t, dir, "n1", ca)
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			c, err := Parse([]byte(withCAKey), dir, Overrides{})
			if err != nil {
				t.Fatal(err)
			}
			err = tt.load(c)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestLoadCAMissingKey checks that a deleted CA key file is recognisable.
func TestLoadCAMissingKey(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]byte(withCAKey), dir, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	ca, _ := pki.NewCA("test CA", time.Hour, time.Now())
	os.WriteFile(filepath.Join(dir, "tls/ca.crt"), ca.CertPEM(), 0o644)
	if _, err := c.LoadCA(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadCA without the key file: %v, want fs.ErrNotExist", err)
	}
}
