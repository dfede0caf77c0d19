package loginflow

import (
	"encoding/json"
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

// tokenFile is a saved token. The server is kept inside too, so a file
// name shared by two spellings of a server is never taken for the other.
type tokenFile struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

// tokenPath returns where the token for server lives under dir ("" means
// DefaultDir).
func tokenPath(dir, server string) (string, string, error) {
	base, err := serverURL(server)
	if err != nil {
		return "", "", err
	}
	if dir == "" {
		if dir, err = DefaultDir(); err != nil {
			return "", "", err
		}
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, strings.ToLower(base.Host))
	return filepath.Join(dir, "tokens", name+".json"), base.String(), nil
}

// SaveToken keeps token for server under dir ("" means DefaultDir), in a
// file only the user can read (0600, in 0700 directories), replaced
// atomically.
func SaveToken(dir, server, token string) error {
	if token == "" {
		return errors.New("loginflow: empty token")
	}
	path, canon, err := tokenPath(dir, server)
	if err != nil {
		return err
	}
	b, err := json.Marshal(tokenFile{Server: canon, Token: token})
	if err != nil {
		return err
	}
	if err := WritePrivateFile(path, append(b, '\n')); err != nil {
		return fmt.Errorf("saving token: %w", err)
	}
	return nil
}

// LoadToken returns the token saved for server under dir ("" means
// DefaultDir), or ErrNoToken. A token file others can read is refused: the
// token may have leaked, so sign in again.
func LoadToken(dir, server string) (string, error) {
	path, canon, err := tokenPath(dir, server)
	if err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNoToken
	}
	if err != nil {
		return "", fmt.Errorf("reading token: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading token: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("loginflow: token file %s is readable by others (mode %04o): delete it and sign in again", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("reading token: %w", err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("loginflow: token file %s is too large", path)
	}
	var tf tokenFile
	if err := json.Unmarshal(b, &tf); err != nil {
		return "", fmt.Errorf("loginflow: token file %s is malformed", path)
	}
	if tf.Server != canon || tf.Token == "" {
		return "", ErrNoToken
	}
	return tf.Token, nil
}
