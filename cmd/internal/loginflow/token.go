package loginflow

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// ErrNoToken is returned by LoadToken when no token is saved for the
// server.
var ErrNoToken = errors.New("loginflow: not signed in to this server")

// maxTokenFile bounds what LoadToken reads.
const maxTokenFile = 16 << 10

// DefaultDir returns the directory tokens are kept in by default:
// os.UserConfigDir()/ferry.
func DefaultDir() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the config directory: %w", err)
	}
	return filepath.Join(d, "ferry"), nil
}

// tokenFile is a saved token. The server (and, for a cluster's session,
// the cluster's CA fingerprint) is kept inside too, so a file is never
// taken for another server's or another cluster's.
type tokenFile struct {
	// Cluster is "sha256:HEX" of the cluster CA certificate for a session
	// keyed by its cluster; empty for one keyed by its server URL.
	Cluster string `json:"cluster,omitempty"`
	// Server is the URL the session was last signed in through.
	Server string `json:"server"`
	Token  string `json:"token"`
}

// ClusterFingerprint returns "sha256:HEX" of the certificate in caFile
// when caFile holds exactly one certificate and it is a CA's: a cluster's
// private CA, whose API certificates only the cluster's nodes hold. A
// bundle of roots, a leaf certificate, an unreadable or empty path give
// ok false: such a file names no one cluster.
func ClusterFingerprint(caFile string) (fp string, ok bool) {
	if caFile == "" {
		return "", false
	}
	b, err := os.ReadFile(caFile)
	if err != nil || len(b) > maxTokenFile*4 {
		return "", false
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return "", false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !cert.IsCA {
		return "", false
	}
	sum := sha256.Sum256(cert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:]), true
}

// tokenKey is where a token lives and what its file must say.
type tokenKey struct {
	path    string
	server  string // canonical
	cluster string // "" when keyed by the server
}

// keyOf returns where the token for server, trusted with caFile, lives
// under dir ("" means DefaultDir): the cluster's file when caFile names
// one cluster (ClusterFingerprint), else the server's.
func keyOf(dir, server, caFile string) (tokenKey, error) {
	k, err := urlKey(dir, server)
	if err != nil {
		return tokenKey{}, err
	}
	if fp, ok := ClusterFingerprint(caFile); ok {
		k.cluster = fp
		k.path = filepath.Join(filepath.Dir(k.path), "cluster-"+strings.TrimPrefix(fp, "sha256:")[:32]+".json")
	}
	return k, nil
}

// urlKey is the key of a session by its server URL alone (the only key
// before sessions were the cluster's).
func urlKey(dir, server string) (tokenKey, error) {
	base, err := serverURL(server)
	if err != nil {
		return tokenKey{}, err
	}
	if dir == "" {
		if dir, err = DefaultDir(); err != nil {
			return tokenKey{}, err
		}
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, strings.ToLower(base.Host))
	return tokenKey{path: filepath.Join(dir, "tokens", name+".json"), server: base.String()}, nil
}

// SaveToken keeps token for server, trusted with caFile ("" means the
// system roots), under dir ("" means DefaultDir), in a file only the user
// can read (0600, in 0700 directories), replaced atomically. When caFile
// names one cluster (ClusterFingerprint) the token is the cluster's: any
// node's URL finds it with the same CA file.
func SaveToken(dir, server, caFile, token string) error {
	if token == "" {
		return errors.New("loginflow: empty token")
	}
	k, err := keyOf(dir, server, caFile)
	if err != nil {
		return err
	}
	return writeToken(k, token)
}

func writeToken(k tokenKey, token string) error {
	b, err := json.Marshal(tokenFile{Cluster: k.cluster, Server: k.server, Token: token})
	if err != nil {
		return err
	}
	if err := WritePrivateFile(k.path, append(b, '\n')); err != nil {
		return fmt.Errorf("saving token: %w", err)
	}
	return nil
}

// LoadToken returns the token saved for server, trusted with caFile, under
// dir ("" means DefaultDir), or ErrNoToken. When caFile names one cluster
// the cluster's token is returned whichever node's URL server is: the
// caller sends it only over TLS pinned to caFile, which only the cluster's
// nodes can answer. A token file others can read is refused: the token
// may have leaked, so sign in again.
func LoadToken(dir, server, caFile string) (string, error) {
	k, err := keyOf(dir, server, caFile)
	if err != nil {
		return "", err
	}
	tf, err := readToken(k.path)
	if err != nil {
		return "", err
	}
	if tf.Token == "" || tf.Cluster != k.cluster || k.cluster == "" && tf.Server != k.server {
		return "", ErrNoToken
	}
	return tf.Token, nil
}

func readToken(path string) (tokenFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return tokenFile{}, ErrNoToken
	}
	if err != nil {
		return tokenFile{}, fmt.Errorf("reading token: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return tokenFile{}, fmt.Errorf("reading token: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return tokenFile{}, fmt.Errorf("loginflow: token file %s is readable by others (mode %04o): delete it and sign in again", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return tokenFile{}, fmt.Errorf("reading token: %w", err)
	}
	if len(b) > maxTokenFile {
		return tokenFile{}, fmt.Errorf("loginflow: token file %s is too large", path)
	}
	var tf tokenFile
	if err := json.Unmarshal(b, &tf); err != nil {
		return tokenFile{}, fmt.Errorf("loginflow: token file %s is malformed", path)
	}
	return tf, nil
}

// MigrateToken moves a token saved by an older ferry, keyed by the URL of
// server alone, to the cluster's key when caFile names one cluster; the
// caller passes the server and CA file the session was signed in with.
// Without such a file, or when caFile names no cluster, it does nothing.
func MigrateToken(dir, server, caFile string) error {
	k, err := keyOf(dir, server, caFile)
	if err != nil || k.cluster == "" {
		return err
	}
	old, err := urlKey(dir, server)
	if err != nil {
		return err
	}
	tf, err := readToken(old.path)
	if errors.Is(err, ErrNoToken) {
		return nil
	}
	if err != nil {
		return err
	}
	if tf.Cluster != "" || tf.Server != old.server || tf.Token == "" {
		return nil
	}
	if err := writeToken(k, tf.Token); err != nil {
		return err
	}
	if err := os.Remove(old.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the old token file: %w", err)
	}
	return nil
}

// DeleteToken removes the token saved for server, trusted with caFile,
// under dir ("" means DefaultDir), and any older file keyed by the URL of
// server alone. A missing file is no error.
func DeleteToken(dir, server, caFile string) error {
	k, err := keyOf(dir, server, caFile)
	if err != nil {
		return err
	}
	old, err := urlKey(dir, server)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range []string{k.path, old.path} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("deleting the session token: %w", err))
		}
	}
	return errors.Join(errs...)
}
