package main

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cluster/pki"
)

// Files of a node directory, relative to it, as written by init and join.
const (
	fileConfig    = "ferryd.yaml"
	fileMasterKey = "master.key"
	fileCACert    = "tls/ca.crt"
	fileCAKey     = "tls/ca.key"
	fileNodeCert  = "tls/node.crt"
	fileNodeKey   = "tls/node.key"
	fileAPICert   = "tls/api.crt"
	fileAPIKey    = "tls/api.key"
	dirData       = "data"
)

// nodeDir writes the files of a new node directory and remembers them, so
// that a failed init or join can take back what it wrote.
type nodeDir struct {
	dir   string
	undos []func() // newest last
}

// newNodeDir prepares dir for a new node: it must not hold a node already.
func newNodeDir(dir string) (*nodeDir, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, f := range []string{fileConfig, fileMasterKey, "tls", dirData} {
		if _, err := os.Lstat(filepath.Join(abs, f)); err == nil {
			return nil, fmt.Errorf("%s already holds a ferry node (found %s); refusing to overwrite it", dir, f)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(abs, "tls"), 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	d := &nodeDir{dir: abs}
	d.track(filepath.Join(abs, "tls"))
	return d, nil
}

// path returns the absolute path of name in the directory.
func (d *nodeDir) path(name string) string { return filepath.Join(d.dir, name) }

// write writes data to name with mode perm.
func (d *nodeDir) write(name string, data []byte, perm fs.FileMode) error {
	p := d.path(name)
	if err := pki.WriteFile(p, data, perm); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	d.track(p)
	return nil
}

// writeKey writes a private key in PEM with mode 0600.
func (d *nodeDir) writeKey(name string, key crypto.Signer) error {
	pemKey, err := pki.KeyPEM(key)
	if err != nil {
		return err
	}
	defer clear(pemKey)
	return d.write(name, pemKey, 0o600)
}

// track records a path created by someone else, such as the master key.
func (d *nodeDir) track(p string) { d.undos = append(d.undos, func() { os.RemoveAll(p) }) }

// claimDataDir checks that the data directory, relative to the node
// directory unless absolute, is missing or empty, so a new node never
// starts on another node's state; undo empties or removes it again.
func (d *nodeDir) claimDataDir(dataDir string) error {
	p := dataDir
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.dir, p)
	}
	entries, err := os.ReadDir(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.track(p)
		return nil
	case err != nil:
		return fmt.Errorf("--data-dir: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("--data-dir %s is not empty; refusing to start a new node on existing state", p)
	}
	d.undos = append(d.undos, func() {
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			os.RemoveAll(filepath.Join(p, e.Name()))
		}
	})
	return nil
}

// undo removes everything written, newest first.
func (d *nodeDir) undo() {
	for i := len(d.undos) - 1; i >= 0; i-- {
		d.undos[i]()
	}
}

// splitNames sorts the names of an API certificate into DNS names and IP
// addresses, refusing names an API certificate must not carry.
func splitNames(names []string) (dns []string, ips []net.IP, err error) {
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if err := admit.CheckAPIName(n); err != nil {
			return nil, nil, fmt.Errorf("--api-name: %w", err)
		}
		dns = append(dns, strings.ToLower(n))
	}
	if len(dns)+len(ips) == 0 {
		return nil, nil, errors.New("--api-name: give the DNS names or IP addresses clients use to reach the API")
	}
	return dns, ips, nil
}

// apiNames returns the names given, or the host of apiAddr when it is a
// specific address and no name was given.
func apiNames(given []string, apiAddr string) []string {
	if len(given) > 0 {
		return given
	}
	host, _, err := net.SplitHostPort(apiAddr)
	if ip := net.ParseIP(host); err != nil || host == "" || (ip != nil && ip.IsUnspecified()) {
		return nil
	}
	return []string{host}
}

// checkAddr checks a host:port flag that other machines dial.
func checkAddr(flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return fmt.Errorf("%s %q: want host:port with a fixed port", flag, addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return fmt.Errorf("%s %q: want an address other machines can reach, not a wildcard", flag, addr)
	}
	return nil
}
