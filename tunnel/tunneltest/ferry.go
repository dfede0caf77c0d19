package tunneltest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BuildFerry builds the ferry client (cmd/ferry) into a temporary
// directory and returns the binary's path. Where no Go toolchain is (the
// kernel suite's virtual machine), FERRY_TEST_FERRY_BIN names a prebuilt
// binary instead.
func BuildFerry(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("FERRY_TEST_FERRY_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "ferry")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/ferryvpn/ferry/cmd/ferry").CombinedOutput()
	if err != nil {
		t.Fatalf("building ferry: %v\n%s", err, out)
	}
	return bin
}

// Ferry is the real ferry client run in a namespace, as root, on a config
// directory such as "ferry login" writes (state.json and ferry0.conf).
//
// ferry names its interface ferry0 and keeps the UAPI socket
// (/run/wireguard) and its pid and log files (/run/ferry) in places that
// are machine-wide. Each Ferry therefore runs in a mount namespace of its
// own where both are private tmpfs mounts, held by a sleeping process, so
// that tests can run several and never meet the host's. resolvconf is a
// stub that changes nothing.
type Ferry struct {
	bin    string
	dir    string
	env    []string
	holder int // pid of the process holding the namespaces
}

// StartFerry prepares bin to run in namespace ns on the config directory
// dir. The test's cleanup runs "ferry down"; n's removes the rest.
func StartFerry(t testing.TB, n *Net, ns, bin, dir string) *Ferry {
	t.Helper()
	for _, d := range []string{"/run/wireguard", "/run/ferry"} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	stub := t.TempDir()
	if err := os.WriteFile(filepath.Join(stub, "resolvconf"), []byte("#!/bin/sh\ncat >/dev/null\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "sh", "-c",
		"mount -t tmpfs -o mode=0700 ferry /run/wireguard && mount -t tmpfs -o mode=0700 ferry /run/ferry && echo ready && exec sleep 86400")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.Track(cmd.Process)
	if line, _ := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(line) != "ready" {
		t.Fatalf("private /run in %s: %q %s", ns, line, stderr.String())
	}
	f := &Ferry{bin: bin, dir: dir, holder: cmd.Process.Pid, env: append(os.Environ(), "PATH="+stub+":"+os.Getenv("PATH"))}
	t.Cleanup(func() {
		if out, err := f.Run("down"); err != nil {
			t.Logf("ferry down: %v\n%s", err, out)
		}
	})
	return f
}

// Run runs ferry with args in the namespace and returns its combined
// output.
func (f *Ferry) Run(args ...string) (string, error) {
	argv := append([]string{"-t", fmt.Sprint(f.holder), "-m", "-n", "--", f.bin, "--config-dir", f.dir}, args...)
	cmd := exec.Command("nsenter", argv...)
	cmd.Env = f.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("ferry %s: no answer within 60s", strings.Join(args, " "))
	}
}

// Log returns the embedded tunnel's log (/run/ferry/ferry0.log).
func (f *Ferry) Log() string {
	out, err := exec.Command("nsenter", "-t", fmt.Sprint(f.holder), "-m", "cat", "/run/ferry/ferry0.log").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(no log: %v: %s)", err, out)
	}
	return string(out)
}

// WG runs wg(8) with args against the client's private UAPI sockets.
func (f *Ferry) WG(args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(f.holder), "-m", "-n", "--", "wg"}, args...)...).CombinedOutput()
	return string(out), err
}
