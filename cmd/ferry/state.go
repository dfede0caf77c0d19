package main

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ferryvpn/ferry/cmd/internal/cli"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// ifaceName is the tunnel interface. wg-quick takes the interface name
// from the config file's name, so the config is ifaceName + ".conf".
const ifaceName = "ferry0"

// Files under the config directory. Every one is 0600, in a 0700
// directory; the token is kept by loginflow under tokens/.
const (
	fileState  = "state.json"
	fileConfig = ifaceName + ".conf"
	fileKey    = ifaceName + ".key"
)

// globals are the flags every command shares and the console.
type globals struct {
	con     console
	dir     string
	server  string // --server: another node of the signed-in cluster
	output  string
	timeout time.Duration
}

// check validates the shared flags before any command runs.
func (g *globals) check() error {
	switch g.output {
	case "table", "json":
	default:
		return fmt.Errorf("-o %q: want table or json", g.output)
	}
	if g.timeout <= 0 {
		return fmt.Errorf("--timeout %s: want a duration above 0", g.timeout)
	}
	return nil
}

func (g *globals) json() bool { return g.output == "json" }

// configDir returns the directory of ferry's files: --config-dir, else
// os.UserConfigDir()/ferry. Under sudo it is the invoking user's, so that
// "sudo ferry up" finds the profile "ferry login" fetched.
func (g *globals) configDir() (string, error) {
	if g.dir != "" {
		return filepath.Abs(g.dir)
	}
	if g.con.root && runtime.GOOS != "windows" {
		if name := os.Getenv("SUDO_USER"); name != "" && name != "root" {
			if u, err := user.Lookup(name); err == nil && u.HomeDir != "" {
				if runtime.GOOS == "darwin" {
					return filepath.Join(u.HomeDir, "Library", "Application Support", "ferry"), nil
				}
				return filepath.Join(u.HomeDir, ".config", "ferry"), nil
			}
		}
	}
	return loginflow.DefaultDir()
}

// state is what ferry remembers between runs: where it signed in and the
// peer the server issued to this device. It holds no secret.
type state struct {
	Server string `json:"server"`
	CAFile string `json:"ca_file,omitempty"`
	Email  string `json:"email,omitempty"`
	Device string `json:"device"`
	// Peer is this device's peer as issued: its ID (to revoke it on
	// logout), address, profile and expiry.
	Peer wire.Peer `json:"peer"`
}

// maxStateFile bounds what loadState reads.
const maxStateFile = 64 << 10

// loadState returns the saved state, or errNotSignedIn.
func loadState(dir string) (state, error) {
	b, err := readPrivate(filepath.Join(dir, fileState), maxStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return state{}, errNotSignedIn
	}
	if err != nil {
		return state{}, err
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil || s.Server == "" {
		return state{}, fmt.Errorf("%s is malformed: delete it and run ferry login again", filepath.Join(dir, fileState))
	}
	return s, nil
}

// readPrivate reads a file that must not be readable by others.
func readPrivate(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %04o): delete it and run ferry login again", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

func saveState(dir string, s state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return loginflow.WritePrivateFile(filepath.Join(dir, fileState), append(b, '\n'))
}

// forget deletes the state, key, config and the session's token from
// dir. Missing files are no error.
func forget(dir string, st state) error {
	var errs []error
	for _, name := range []string{fileConfig, fileKey, fileState} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if st.Server != "" {
		errs = append(errs, loginflow.DeleteToken(dir, st.Server, st.CAFile))
	}
	return errors.Join(errs...)
}

// canonicalServer checks a server URL (cli.ServerURL).
var canonicalServer = cli.ServerURL

// connect returns a client holding the saved session: of the saved server,
// or of --server, another node of the same cluster. A session is the
// cluster's, valid on every node: with a cluster CA (loginflow's
// ClusterFingerprint of the CA file of the sign-in) the token is found by
// the cluster and sent to any node, over TLS pinned to that CA only, which
// no server outside the cluster can answer. Without one it goes to the
// saved server only. A token file of an older ferry, kept by server URL,
// moves to its cluster's key here.
func (g *globals) connect(dir string, st state) (*client.Client, error) {
	if err := loginflow.MigrateToken(dir, st.Server, st.CAFile); err != nil {
		return nil, err
	}
	server := st.Server
	if g.server != "" {
		s, err := canonicalServer(g.server)
		if err != nil {
			return nil, fmt.Errorf("--server: %w", err)
		}
		server = s
	}
	tok, err := loginflow.LoadToken(dir, server, st.CAFile)
	if errors.Is(err, loginflow.ErrNoToken) {
		return nil, errNotSignedIn
	}
	if err != nil {
		return nil, err
	}
	tlsConf, err := client.TLSConfig(st.CAFile)
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{BaseURL: server, TLS: tlsConf, Timeout: g.timeout, Token: tok})
}

// privateKey is the device's WireGuard private key. It is made on the
// device and never leaves it: only its public half is sent to the server.
// String and LogValue redact it; the key reaches only the 0600 files.
type privateKey struct {
	k wgtypes.Key
}

// newPrivateKey makes a fresh key pair.
func newPrivateKey() (privateKey, error) {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return privateKey{}, fmt.Errorf("generating the WireGuard key: %w", err)
	}
	return privateKey{k: k}, nil
}

// parsePrivateKey reads a key in WireGuard's base64 form.
func parsePrivateKey(s string) (privateKey, error) {
	k, err := wgtypes.ParseKey(strings.TrimSpace(s))
	if err != nil {
		return privateKey{}, errors.New("malformed WireGuard private key")
	}
	return privateKey{k: k}, nil
}

// Public returns the public key, base64.
func (k privateKey) Public() string { return k.k.PublicKey().String() }

// Equal reports whether two keys are the same, in constant time.
func (k privateKey) Equal(o privateKey) bool {
	return subtle.ConstantTimeCompare(k.k[:], o.k[:]) == 1
}

// String redacts the key.
func (k privateKey) String() string { return "[redacted private key]" }

// GoString redacts the key from %#v.
func (k privateKey) GoString() string { return k.String() }

// LogValue redacts the key from logs.
func (k privateKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// reveal returns the key in WireGuard's base64 form, for the 0600 key and
// config files only.
func (k privateKey) reveal() string { return k.k.String() }
