//go:build linux

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// TestEmbeddedDNSNetns: the real "ferry up --foreground" (the embedded
// tunnel) in a network namespace with a private /run, given a profile with
// DNS, applies it with the tool it finds (recording stubs of resolvconf and
// resolvectl, so the host's resolver is never touched) and undoes it when
// stopped as ferry down stops it (SIGTERM); with neither tool it connects
// and says DNS was not configured.
func TestEmbeddedDNSNetns(t *testing.T) {
	tunneltest.Require(t, "ip", "unshare", "nsenter")
	bin := tunneltest.BuildFerry(t)
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tag string
		stubs     []string
		up, down  []string // lines of the stubs' log, in order
		stderr    string
	}{
		{name: "resolvconf", tag: "a", stubs: []string{"resolvconf", "resolvectl"},
			up:   []string{"resolvconf -a ferry0 -m 0 -x | nameserver 10.0.0.2 search corp.example.com"},
			down: []string{"resolvconf -d ferry0 -f |"}},
		{name: "systemd-resolved", tag: "b", stubs: []string{"resolvectl"},
			up:   []string{"resolvectl dns ferry0 10.0.0.2 |", "resolvectl domain ferry0 corp.example.com ~. |"},
			down: []string{"resolvectl revert ferry0 |"}},
		{name: "neither", tag: "c", stderr: "DNS was not configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tunneltest.NewNet(t)
			ns := n.NS("dns" + tc.tag)
			// PATH holds ip and the stubs only: each stub logs its
			// arguments and standard input.
			pathDir, logFile := t.TempDir(), filepath.Join(t.TempDir(), "dns.log")
			if err := os.Symlink(ipPath, filepath.Join(pathDir, "ip")); err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.stubs {
				script := "#!/bin/sh\nPATH=/usr/bin:/bin\nin=$(cat | tr '\\n' ' ')\necho \"" + s + " $* | $in\" | sed 's/ *$//' >>" + logFile + "\n"
				if err := os.WriteFile(filepath.Join(pathDir, s), []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			dir := filepath.Join(t.TempDir(), "ferry")
			k, err := newPrivateKey()
			if err != nil {
				t.Fatal(err)
			}
			conf, err := withPrivateKey(strings.Replace(serverConf, "vpn.example.com:51820", "10.212.0.100:51820", 1), k)
			if err != nil {
				t.Fatal(err)
			}
			if err := loginflow.WritePrivateFile(filepath.Join(dir, fileConfig), []byte(conf)); err != nil {
				t.Fatal(err)
			}
			if err := saveState(dir, state{Server: "https://vpn.example.com", Device: "laptop", Peer: wire.Peer{ID: "p1", UserID: "alice",
				Device: "laptop", PublicKey: k.Public(), Address: "100.64.3.7", Profile: "eng", Expires: time.Now().Add(time.Hour), State: "active"}}); err != nil {
				t.Fatal(err)
			}
			// ferry's /run/wireguard and /run/ferry are private to it.
			cmd := exec.Command("ip", "netns", "exec", ns, "unshare", "-m", "sh", "-c",
				`mount --make-rprivate / && mount -t tmpfs -o mode=0700 ferry /run/wireguard && mount -t tmpfs -o mode=0700 ferry /run/ferry && exec env PATH="$P" "$@"`,
				"sh", bin, "--config-dir", dir, "up", "--foreground")
			cmd.Env = append(os.Environ(), "P="+pathDir)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := os.MkdirAll("/run/wireguard", 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll("/run/ferry", 0o700); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			n.Track(cmd.Process)
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			readLog := func() []string {
				b, _ := os.ReadFile(logFile)
				return strings.Split(strings.TrimSpace(string(b)), "\n")
			}
			// Connected: the link is up in the namespace (and, when a tool
			// is found, DNS is applied before that is reported).
			defer func() {
				if t.Failed() {
					t.Logf("ferry said:\n%s\nstubs logged:\n%s", out.String(), strings.Join(readLog(), "\n"))
				}
			}()
			waitForCond(t, "ferry0 up in "+ns, 20*time.Second, func() bool {
				select {
				case err := <-exited:
					t.Fatalf("ferry up exited: %v\n%s", err, out.String())
				default:
				}
				o, err := exec.Command("ip", "-n", ns, "-o", "address", "show", "dev", "ferry0").CombinedOutput()
				return err == nil && strings.Contains(string(o), "100.64.3.7") && strings.Join(readLog(), "\n") == strings.Join(tc.up, "\n")
			})
			// ferry down signals the tunnel with SIGTERM.
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("ferry up ended with %v\n%s", err, out.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("ferry up did not stop\n%s", out.String())
			}
			if tc.stubs != nil {
				if got, want := strings.Join(readLog(), "\n"), strings.Join(append(tc.up, tc.down...), "\n"); got != want {
					t.Errorf("DNS commands:\n%s\nwant\n%s\nferry said:\n%s", got, want, out.String())
				}
			}
			if !strings.Contains(out.String(), tc.stderr) {
				t.Errorf("ferry said %q, want %q", out.String(), tc.stderr)
			}
		})
	}
}
