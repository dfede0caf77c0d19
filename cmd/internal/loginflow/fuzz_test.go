package loginflow_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
)

// FuzzLoadToken feeds LoadToken arbitrary token files: it returns a token
// or an error, never panics, and never returns another server's token.
func FuzzLoadToken(f *testing.F) {
	const server = "https://vpn.example.com"
	for _, s := range []string{
		`{"server":"https://vpn.example.com","token":"t"}`,
		`{"server":"https://other.example.com","token":"t"}`,
		`{"server":"https://vpn.example.com","token":""}`,
		`{"server":1}`, `null`, ``, `{`, "\x00\xff",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	if err := loginflow.SaveToken(dir, server, "", "seed"); err != nil {
		f.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "tokens", "*.json"))
	if err != nil || len(files) != 1 {
		f.Fatalf("token file: %v %v", files, err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(files[0], b, 0o600); err != nil {
			t.Fatal(err)
		}
		tok, err := loginflow.LoadToken(dir, server, "")
		if err == nil && tok == "" {
			t.Fatal("empty token without an error")
		}
		if err != nil && tok != "" {
			t.Fatal("token with an error")
		}
		if errors.Is(err, loginflow.ErrNoToken) && len(b) == 0 {
			t.Fatal("an empty file read as no token rather than malformed")
		}
	})
}
