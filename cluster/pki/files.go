package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Fingerprint returns the lowercase hex SHA-256 of the certificate's DER
// encoding (cert.Raw): 64 characters.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// LoadCertPEM reads the PEM certificate at path. If the file holds several
// certificates, it returns the first.
func LoadCertPEM(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: reading certificate: %w", err)
	}
	cert, err := ParseCertPEM(data)
	if err != nil {
		return nil, fmt.Errorf("pki: loading certificate from %s: %w", path, err)
	}
	return cert, nil
}

// WriteFile writes data to path with mode perm, replacing any existing file
// atomically: it writes and syncs a temporary file in the same directory,
// then renames it over path, so readers see the old or the new content and
// never a mix. It creates the parent directory with mode 0700 if it is
// missing. perm is applied exactly, regardless of the umask.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: creating directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("pki: creating temporary file: %w", err)
	}
	tmpName := tmp.Name()
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()

	// Set the mode before writing, so secret content is never readable by
	// others, even briefly.
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("pki: setting file mode: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("pki: writing temporary file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("pki: syncing temporary file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pki: closing temporary file: %w", err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("pki: installing %s: %w", path, err)
	}
	committed = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("pki: syncing directory %s: %w", dir, err)
	}
	return nil
}

// syncDir flushes a directory entry change (a rename) to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
