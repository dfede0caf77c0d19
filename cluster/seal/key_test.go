package seal

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyEqual(t *testing.T) {
	a, b := testKey(t), testKey(t)
	tests := []struct {
		name string
		x, y Key
		want bool
	}{
		{name: "same", x: a, y: a, want: true},
		{name: "copy", x: a, y: Key{k: a.k}, want: true},
		{name: "different", x: a, y: b, want: false},
		{name: "zero", x: a, y: Key{}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.x.Equal(tt.y); got != tt.want {
				t.Errorf("Equal = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKeyNeverPrinted(t *testing.T) {
	k := testKey(t)
	secrets := []string{
		hex.EncodeToString(k.k[:]),
		strings.ToUpper(hex.EncodeToString(k.k[:])),
		base64.StdEncoding.EncodeToString(k.k[:]),
		base64.RawURLEncoding.EncodeToString(k.k[:]),
		fmt.Sprint(k.k),     // [1 2 3 ...]
		fmt.Sprint(k.k[:4]), // a prefix of it
		string(k.k[:]),
	}
	type holder struct{ Key Key }

	var jsonBuf, textBuf bytes.Buffer
	jsonLog := slog.New(slog.NewJSONHandler(&jsonBuf, nil))
	textLog := slog.New(slog.NewTextHandler(&textBuf, nil))
	jsonLog.Info("key", "key", k, "ptr", &k, slog.Group("g", "key", k))
	textLog.Info("key", "key", k, "ptr", &k, slog.Group("g", "key", k))

	tests := []struct {
		name string
		out  string
	}{
		{name: "String", out: k.String()},
		{name: "GoString", out: k.GoString()},
		{name: "%v", out: fmt.Sprintf("%v", k)},
		{name: "%+v", out: fmt.Sprintf("%+v", k)},
		{name: "%#v", out: fmt.Sprintf("%#v", k)},
		{name: "%s", out: fmt.Sprintf("%s", k)},
		{name: "%x", out: fmt.Sprintf("%x", k)},
		{name: "%X", out: fmt.Sprintf("%X", k)},
		{name: "%d", out: fmt.Sprintf("%d", k)},
		{name: "%q", out: fmt.Sprintf("%q", k)},
		{name: "pointer %v", out: fmt.Sprintf("%v", &k)},
		{name: "pointer %x", out: fmt.Sprintf("%x", &k)},
		{name: "struct field %+v", out: fmt.Sprintf("%+v", holder{k})},
		{name: "struct field %#v", out: fmt.Sprintf("%#v", holder{k})},
		{name: "slice %v", out: fmt.Sprintf("%v", []Key{k})},
		{name: "error wrapping", out: fmt.Errorf("loading %v: %w", k, errors.New("x")).Error()},
		{name: "slog JSON", out: jsonBuf.String()},
		{name: "slog text", out: textBuf.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(tt.out, redacted) {
				t.Errorf("output %q does not contain %q", tt.out, redacted)
			}
			for _, s := range secrets {
				if strings.Contains(tt.out, s) {
					t.Errorf("output %q contains the key as %q", tt.out, s)
				}
			}
		})
	}
}

func TestKeyFileRoundTrip(t *testing.T) {
	k := testKey(t)
	path := filepath.Join(t.TempDir(), "master.key")
	if err := WriteKeyFile(path, k); err != nil {
		t.Fatalf("WriteKeyFile: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode = %#o, want 0600", got)
	}
	got, err := LoadKeyFile(path)
	if err != nil {
		t.Fatalf("LoadKeyFile: %v", err)
	}
	if !got.Equal(k) {
		t.Errorf("loaded key differs from written key")
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key file (temporary file left behind?)", len(entries))
	}
}

func TestWriteKeyFileRefusesOverwrite(t *testing.T) {
	first, second := testKey(t), testKey(t)
	path := filepath.Join(t.TempDir(), "master.key")
	if err := WriteKeyFile(path, first); err != nil {
		t.Fatal(err)
	}
	err := WriteKeyFile(path, second)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteKeyFile error = %v, want one wrapping fs.ErrExist", err)
	}
	got, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(first) {
		t.Errorf("existing key file was changed")
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
}

func TestWriteKeyFileRefusesZeroKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	if err := WriteKeyFile(path, Key{}); !errors.Is(err, ErrZeroKey) {
		t.Errorf("error = %v, want %v", err, ErrZeroKey)
	}
}

func TestLoadKeyFile(t *testing.T) {
	k := testKey(t)
	b64 := base64.StdEncoding.EncodeToString(k.k[:])
	tests := []struct {
		name    string
		content string
		mode    fs.FileMode
		wantErr string // substring; empty means success
	}{
		{name: "no newline", content: b64, mode: 0o600},
		{name: "trailing newline", content: b64 + "\n", mode: 0o600},
		{name: "trailing CRLF", content: b64 + "\r\n", mode: 0o600},
		{name: "owner read only", content: b64 + "\n", mode: 0o400},
		{name: "world readable", content: b64 + "\n", mode: 0o644, wantErr: "0644"},
		{name: "group readable", content: b64 + "\n", mode: 0o640, wantErr: "0640"},
		{name: "other writable", content: b64 + "\n", mode: 0o602, wantErr: "0602"},
		{name: "too short", content: base64.StdEncoding.EncodeToString(k.k[:31]) + "\n", mode: 0o600, wantErr: "holds 31 bytes, want 32"},
		{name: "too long", content: base64.StdEncoding.EncodeToString(append(k.k[:], 0)) + "\n", mode: 0o600, wantErr: "holds 33 bytes, want 32"},
		{name: "empty", content: "", mode: 0o600, wantErr: "holds 0 bytes"},
		{name: "raw bytes not base64", content: string(k.k[:]), mode: 0o600, wantErr: "not valid standard base64"},
		{name: "url alphabet", content: base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), mode: 0o600, wantErr: "not valid standard base64"},
		{name: "two newlines", content: b64 + "\n\n", mode: 0o600}, // encoding/base64 skips newlines
		{name: "huge", content: strings.Repeat("A", 4096), mode: 0o600, wantErr: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := LoadKeyFile(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadKeyFile: %v", err)
				}
				if !got.Equal(k) {
					t.Errorf("loaded a different key")
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadKeyFile succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not contain %q and the path", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), b64) {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
}

func TestLoadKeyFileRejectsNonRegular(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("LoadKeyFile(directory) error = %v, want \"not a regular file\"", err)
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadKeyFile(missing) error = %v, want fs.ErrNotExist", err)
	}
}
