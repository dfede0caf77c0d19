package seal

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// KeySize is the size of a master key in bytes: AES-256.
const KeySize = 32

// maxKeyFileSize bounds how much of a key file is read, so that pointing
// LoadKeyFile at a large file by mistake fails fast. A base64 key with a
// newline is 45 bytes.
const maxKeyFileSize = 1024

// redacted is what a Key prints as, in every format and log handler.
const redacted = "[redacted]"

// ErrZeroKey is returned when Seal, Open or WriteKeyFile is given the zero
// Key, which usually means a Key was declared but never generated or
// loaded. Sealing under an all-zero key would look like encryption and
// protect nothing.
var ErrZeroKey = errors.New("seal: key is zero (not generated or loaded)")

// Key is a 256-bit master key. The zero Key is not a usable key.
//
// A Key never prints its bytes: String, GoString, Format and LogValue all
// produce "[redacted]". This holds for a Key, a *Key and a Key held in an
// exported struct field; fmt cannot call methods on unexported fields, so do
// not print structs that hold a Key in an unexported field.
type Key struct {
	k [KeySize]byte
}

// GenerateKey returns a new random Key from crypto/rand.
func GenerateKey() (Key, error) {
	var k Key
	if _, err := io.ReadFull(rand.Reader, k.k[:]); err != nil {
		return Key{}, fmt.Errorf("seal: generating key: %w", err)
	}
	return k, nil
}

// Equal reports whether k and o are the same key, in constant time.
func (k Key) Equal(o Key) bool {
	return subtle.ConstantTimeCompare(k.k[:], o.k[:]) == 1
}

// IsZero reports whether k is the zero Key.
func (k Key) IsZero() bool {
	return k.Equal(Key{})
}

// String returns "[redacted]".
func (k Key) String() string { return redacted }

// GoString returns "[redacted]", so %#v does not print the key.
func (k Key) GoString() string { return redacted }

// Format writes "[redacted]" for every verb, so that no fmt verb (%x, %d,
// %v, ...) prints the key bytes.
func (k Key) Format(f fmt.State, verb rune) { io.WriteString(f, redacted) }

// LogValue returns "[redacted]", so slog handlers never log the key.
func (k Key) LogValue() slog.Value { return slog.StringValue(redacted) }

// DeriveKey returns a 32-byte sub-key of k for one purpose:
// HMAC-SHA256(k, "ferry/"+purpose). Different purposes give independent
// keys; the same key and purpose always give the same sub-key. Purposes are
// fixed strings chosen by the caller, such as "join-token".
func DeriveKey(k Key, purpose string) []byte {
	m := hmac.New(sha256.New, k.k[:])
	io.WriteString(m, "ferry/"+purpose)
	return m.Sum(nil)
}

// LoadKeyFile reads a Key from path. The file holds the key in standard
// base64 with an optional trailing newline (line breaks are ignored, as
// encoding/base64 does). LoadKeyFile refuses a file that
// is not a regular file, a file that group or other may access
// (mode&0o077 != 0), and a key of the wrong length. Errors never contain
// the file's contents.
func LoadKeyFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("seal: opening key file: %w", err)
	}
	defer f.Close()

	// Stat the open file, not the path, so that the checked file is the
	// read file.
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("seal: checking key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, fmt.Errorf("seal: key file %s is not a regular file (mode %s)", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Key{}, fmt.Errorf("seal: key file %s has mode %#o, which group or other can access; run chmod 600 %s", path, perm, path)
	}

	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return Key{}, fmt.Errorf("seal: reading key file %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return Key{}, fmt.Errorf("seal: key file %s is larger than %d bytes; want a base64 %d-byte key", path, maxKeyFileSize, KeySize)
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))

	var k Key
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
	n, err := base64.StdEncoding.Decode(buf, data)
	if err != nil {
		// Do not wrap: base64.CorruptInputError carries only an offset, but
		// keep the message free of anything read from the file.
		return Key{}, fmt.Errorf("seal: key file %s is not valid standard base64", path)
	}
	if n != KeySize {
		return Key{}, fmt.Errorf("seal: key file %s holds %d bytes, want %d", path, n, KeySize)
	}
	copy(k.k[:], buf[:n])
	clear(buf)
	return k, nil
}

// WriteKeyFile writes k to path in the format LoadKeyFile reads, with mode
// 0600. It never overwrites an existing file: if path exists it returns an
// error that wraps fs.ErrExist and leaves the file alone. The key is first
// written and synced to a temporary file in the same directory, then linked
// into place, so path never holds a partial key.
func WriteKeyFile(path string, k Key) error {
	if k.IsZero() {
		return ErrZeroKey
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("seal: creating temporary key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after a successful link this removes the extra name only

	enc := make([]byte, base64.StdEncoding.EncodedLen(KeySize)+1)
	base64.StdEncoding.Encode(enc, k.k[:])
	enc[len(enc)-1] = '\n'
	defer clear(enc)

	// CreateTemp uses 0600; Chmod makes it explicit and independent of umask.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("seal: setting key file mode: %w", err)
	}
	if _, err := tmp.Write(enc); err != nil {
		tmp.Close()
		return fmt.Errorf("seal: writing temporary key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("seal: syncing temporary key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("seal: closing temporary key file: %w", err)
	}

	// link(2) fails if path exists, atomically; rename(2) would replace it.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("seal: key file %s already exists, refusing to overwrite: %w", path, fs.ErrExist)
		}
		return fmt.Errorf("seal: installing key file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("seal: syncing key file directory: %w", err)
	}
	return nil
}

// syncDir flushes a directory entry change (a new link) to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
