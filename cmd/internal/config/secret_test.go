package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientSecretFileMode: the OIDC client secret is refused like the
// master key when group or other can read it (issue: a client secret file
// with mode 0644 was accepted while the master key must be 0600).
func TestClientSecretFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "client-secret")
	if err := os.WriteFile(path, []byte("s3cret-value\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Config{}
	c.OIDC.Issuer, c.OIDC.ClientID, c.OIDC.ClientSecretFile = "https://idp.example.com", "ferry", path
	_, err := c.OIDCConfig()
	if err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("mode 0644: %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OIDCConfig(); err != nil {
		t.Errorf("mode 0600: %v", err)
	}
}
