package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/ferryvpn/ferry/cmd/internal/cli"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/spf13/cobra"
)

// errNotSignedIn is returned when no administrator session is saved for
// the server.
var errNotSignedIn = errors.New("ferryctl: not signed in")

// roleAdmin is the role of an administrator's session.
const roleAdmin = "admin"

// globals are the flags every command shares and the console.
type globals struct {
	con     console
	server  string
	caFile  string
	output  string
	timeout time.Duration
}

// check validates the shared flags before any command runs.
func (g *globals) check(cmd *cobra.Command) error {
	switch {
	case g.output == "table" || g.output == "json":
	case cmd.HasParent() && cmd.Parent().Name() == "report" && slices.Contains(reportFormats, g.output):
	case cmd.HasParent() && cmd.Parent().Name() == "report":
		return fmt.Errorf("-o %q: want table, json, csv or html", g.output)
	default:
		return fmt.Errorf("-o %q: want table or json (-o is always the output format; files are arguments or -f FILE)", g.output)
	}
	if g.timeout <= 0 {
		return fmt.Errorf("--timeout %s: want a duration above 0", g.timeout)
	}
	return nil
}

// json reports whether the output is for scripts.
func (g *globals) json() bool { return g.output == "json" }

// session is what "ferryctl login" keeps, 0600 in ctl.json: the server,
// the CA file it was told to trust, and the administrator's session token.
type session struct {
	Server string `json:"server"`
	CAFile string `json:"ca_file,omitempty"`
	// Token is the bearer secret: never printed.
	Token   string    `json:"token"`
	UserID  string    `json:"user_id,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
}

// maxSessionFile bounds what loadSession reads.
const maxSessionFile = 64 << 10

// sessionPath returns where ctl.json lives: os.UserConfigDir()/ferry. The
// desktop client keeps its own files beside it.
func sessionPath() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the config directory: %w", err)
	}
	return filepath.Join(d, "ferry", "ctl.json"), nil
}

// loadSession returns the saved session, or errNotSignedIn. A file others
// can read is refused: the token may have leaked.
func loadSession() (session, error) {
	path, err := sessionPath()
	if err != nil {
		return session{}, err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return session{}, errNotSignedIn
	}
	if err != nil {
		return session{}, fmt.Errorf("reading the saved session: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return session{}, fmt.Errorf("reading the saved session: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return session{}, fmt.Errorf("%s is readable by others (mode %04o): delete it and run ferryctl login again", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSessionFile+1))
	if err != nil {
		return session{}, fmt.Errorf("reading the saved session: %w", err)
	}
	var s session
	if len(b) > maxSessionFile || json.Unmarshal(b, &s) != nil || s.Server == "" || s.Token == "" {
		return session{}, fmt.Errorf("%s is malformed: delete it and run ferryctl login again", path)
	}
	return s, nil
}

// saveSession writes the session 0600 (directory 0700), replacing the old
// one atomically.
func saveSession(s session) error {
	path, err := sessionPath()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return loginflow.WritePrivateFile(path, append(b, '\n'))
}

// deleteSession removes the saved session; a missing one is no error.
func deleteSession() error {
	path, err := sessionPath()
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting the saved session: %w", err)
	}
	return nil
}

// canonicalServer checks a server URL (cli.ServerURL).
var canonicalServer = cli.ServerURL

// target resolves the server and CA file of a command: the flags, else
// the saved login's. It returns the saved session too when it belongs to
// that server (its token is never sent to another).
func (g *globals) target() (server, caFile string, sess *session, err error) {
	saved, err := loadSession()
	if err != nil && !errors.Is(err, errNotSignedIn) {
		return "", "", nil, err
	}
	server = g.server
	if server == "" {
		server = saved.Server
	}
	if server == "" {
		return "", "", nil, errNotSignedIn
	}
	if server, err = canonicalServer(server); err != nil {
		return "", "", nil, fmt.Errorf("--server: %w", err)
	}
	if saved.Server == server {
		sess = &saved
		caFile = saved.CAFile
	}
	if g.caFile != "" {
		caFile = g.caFile
	}
	// A session is the cluster's, valid on every node. Another node gets
	// the token only over TLS pinned to the cluster CA the session was
	// made with: only the cluster's nodes hold API certificates from it,
	// so the token cannot go to a server outside the cluster.
	if sess == nil && saved.Token != "" && clusterCA(saved.CAFile) {
		if caFile == "" {
			caFile = saved.CAFile
		}
		if sameFileContents(caFile, saved.CAFile) {
			sess = &saved
		}
	}
	return server, caFile, sess, nil
}

// clusterCA reports whether path holds exactly one certificate, a CA's:
// a private cluster CA, not a bundle of public roots that would trust
// servers outside the cluster.
func clusterCA(path string) bool {
	if path == "" {
		return false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	return err == nil && cert.IsCA
}

// sameFileContents reports whether two files hold the same bytes.
func sameFileContents(a, b string) bool {
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// connect returns a client of the server holding the saved administrator
// session, or errNotSignedIn.
func (g *globals) connect() (*client.Client, error) {
	server, caFile, sess, err := g.target()
	if err != nil {
		return nil, err
	}
	if sess == nil {
		return nil, errNotSignedIn
	}
	return g.newClient(server, caFile, sess.Token)
}

func (g *globals) newClient(server, caFile, token string) (*client.Client, error) {
	tlsConf, err := client.TLSConfig(caFile)
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{BaseURL: server, TLS: tlsConf, Timeout: g.timeout, Token: token})
}

// connectAdmin is connect for commands whose endpoints also answer
// ordinary users: it refuses a session that is not an administrator's.
func (g *globals) connectAdmin(ctx context.Context) (*client.Client, error) {
	c, err := g.connect()
	if err != nil {
		return nil, err
	}
	if _, err := requireAdmin(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// requireAdmin refuses a session that is not an administrator's. Commands
// whose endpoints also answer ordinary users (their own profiles and
// peers) call it, so that ferryctl never quietly shows an administrator a
// user's narrower view.
func requireAdmin(ctx context.Context, c *client.Client) (wire.Me, error) {
	me, err := c.Me(ctx)
	if err != nil {
		return wire.Me{}, err
	}
	if me.Role != roleAdmin {
		return me, errNotAdmin
	}
	return me, nil
}
