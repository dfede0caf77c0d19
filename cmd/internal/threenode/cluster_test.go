package threenode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// Ports inside each node's namespace (every node has its own, so they
// are the same on all three).
const (
	clusterPort = 7946
	apiPort     = 8443
	metricsPort = 9090
	wgPort      = 51820
)

// raftTimings are generous: under TCG the nodes run several times slower
// than on hardware, and a missed heartbeat must not start an election.
const raftTimings = `  heartbeat_timeout: 4s
  election_timeout: 4s
  leader_lease_timeout: 2s
  write_timeout: 60s
`

// node is one ferryd process in its namespace.
type node struct {
	id    string
	ns    string
	addr  string // address on the hub's bridge
	iface string // its WireGuard interface
	dir   string
	bin   string
	env   []string
	proc  *exec.Cmd
	done  chan struct{}
	logf  string
}

func (n *node) apiURL() string { return fmt.Sprintf("https://%s:%d", n.addr, apiPort) }

// config is the node's whole ferryd.yaml (replacing what init or join
// wrote), as deploy/local writes it.
func (n *node) config(s *scenario, first bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node_id: %s\ndata_dir: data\nmaster_key_file: %s\n", n.id, s.masterKey)
	fmt.Fprintf(&b, "cluster:\n  bind_addr: %s:%d\n  bootstrap: %t\n%s", n.addr, clusterPort, first, raftTimings)
	b.WriteString("tls:\n  ca_file: tls/ca.crt\n  cert_file: tls/node.crt\n  key_file: tls/node.key\n")
	if first {
		b.WriteString("  ca_key_file: tls/ca.key\n")
	}
	fmt.Fprintf(&b, "api:\n  listen_addr: %s:%d\n  cert_file: tls/api.crt\n  key_file: tls/api.key\n  public_url: %s\n  names: [%s]\n",
		n.addr, apiPort, n.apiURL(), strings.Join(s.nodeAddrs(), ", "))
	fmt.Fprintf(&b, "metrics:\n  listen_addr: %s:%d\nlog:\n  level: info\n  format: text\n", n.addr, metricsPort)
	fmt.Fprintf(&b, "oidc:\n  issuer: %s\n  client_id: ferry\n  client_secret_file: %s\n", s.op.issuer, s.op.secretFile)
	b.WriteString("sessions:\n  admin_groups: [ferry-admins]\nprofiles:\n  pool: 100.64.0.0/16\n")
	fmt.Fprintf(&b, "wireguard:\n  enabled: true\n  interface: %s\n  listen_port: %d\n  endpoint: %s:%d\n", n.iface, wgPort, n.addr, wgPort)
	return b.String()
}

// ferryd runs the ferryd binary (init, token, join) outside the node's
// namespace or, with ns, inside it; it fails t on an error.
func (n *node) ferryd(t *testing.T, inNS bool, args ...string) string {
	t.Helper()
	cmd := exec.Command(n.bin, args...)
	if inNS {
		cmd = exec.Command("ip", append([]string{"netns", "exec", n.ns, n.bin}, args...)...)
	}
	cmd.Env = append(os.Environ(), n.env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ferryd %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// start runs `ferryd ARGS` in the node's namespace in the background,
// its output appended to the node's log.
func (n *node) start(t *testing.T, net *tunneltest.Net, args ...string) {
	t.Helper()
	f, err := os.OpenFile(n.logf, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.ns, n.bin}, args...)...)
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	net.Track(cmd.Process)
	n.proc, n.done = cmd, make(chan struct{})
	done := n.done
	go func() {
		cmd.Wait()
		close(done)
	}()
}

// run starts `ferryd run` on the node's config.
func (n *node) run(t *testing.T, net *tunneltest.Net) {
	t.Helper()
	n.start(t, net, "run", "--config", filepath.Join(n.dir, "ferryd.yaml"))
}

// stop ends the process with sig and waits for it.
func (n *node) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if n.proc == nil {
		return
	}
	n.proc.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not exit after %s", n.id, sig)
	}
	n.proc = nil
}

// log returns the node's log (for failures).
func (n *node) log() string {
	b, _ := os.ReadFile(n.logf)
	return string(b)
}

// waitReady waits until the node's /readyz answers 200.
func (n *node) waitReady(t *testing.T, s *scenario, d time.Duration) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.ferryCAs}}}
	defer hc.CloseIdleConnections()
	err := waitFor(d, func() error {
		if n.done != nil {
			select {
			case <-n.done:
				return fmt.Errorf("%w: %s exited", errStop, n.id)
			default:
			}
		}
		resp, err := hc.Get(n.apiURL() + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s not ready: %v\nlog:\n%s", n.id, err, tail(n.log(), 60))
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errStop ends a waitFor at once.
var errStop = fmt.Errorf("giving up")

// waitFor calls f until it returns nil, an error wrapping errStop, or d
// has passed; it returns f's last error.
func waitFor(d time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		if strings.Contains(err.Error(), errStop.Error()) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", d, err)
		case <-tick.C:
		}
	}
}

// loadCAs reads a PEM CA file into a pool.
func loadCAs(t *testing.T, files ...string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !pool.AppendCertsFromPEM(b) {
			t.Fatalf("no certificate in %s", f)
		}
	}
	return pool
}

// formCluster creates the three-node cluster as an operator would: init
// on n1, a one-use token per node, join, then each node run with the
// full config.
func (s *scenario) formCluster(t *testing.T) {
	t.Helper()
	n1 := s.nodes[0]
	args := []string{"init", "--dir", n1.dir, "--data-dir", "data", "--node-id", n1.id,
		"--cluster-addr", fmt.Sprintf("%s:%d", n1.addr, clusterPort), "--api-addr", fmt.Sprintf("%s:%d", n1.addr, apiPort),
		"--metrics-addr", fmt.Sprintf("%s:%d", n1.addr, metricsPort), "--public-url", n1.apiURL()}
	for _, a := range s.nodeAddrs() {
		args = append(args, "--api-name", a)
	}
	n1.ferryd(t, false, args...)
	key, err := os.ReadFile(filepath.Join(n1.dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	s.masterKey = filepath.Join(s.dir, "master.key")
	if err := os.WriteFile(s.masterKey, key, 0o600); err != nil {
		t.Fatal(err)
	}
	s.ferryCAs = loadCAs(t, filepath.Join(n1.dir, "tls", "ca.crt"))
	s.writeConfig(t, n1, true)
	n1.run(t, s.net)
	n1.waitReady(t, s, 3*time.Minute)
	for _, n := range s.nodes[1:] {
		tok := n1.ferryd(t, false, "token", "--config", filepath.Join(n1.dir, "ferryd.yaml"), "--ttl", "15m", "--node-id", n.id)
		tokFile := filepath.Join(s.dir, n.id+".token")
		if err := os.WriteFile(tokFile, []byte(strings.TrimSpace(lastLine(tok))), 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"join", "--server", n1.apiURL(), "--token-file", tokFile, "--dir", n.dir, "--data-dir", "data",
			"--node-id", n.id, "--cluster-addr", fmt.Sprintf("%s:%d", n.addr, clusterPort),
			"--api-addr", fmt.Sprintf("%s:%d", n.addr, apiPort), "--metrics-addr", fmt.Sprintf("%s:%d", n.addr, metricsPort),
			"--master-key-file", s.masterKey, "--oidc-client-secret-file", s.op.secretFile, "--log-format", "text"}
		for _, a := range s.nodeAddrs() {
			args = append(args, "--api-name", a)
		}
		n.start(t, s.net, args...)
		if err := waitFor(5*time.Minute, func() error {
			if strings.Contains(n.log(), "Joined the cluster") {
				return nil
			}
			select {
			case <-n.done:
				return fmt.Errorf("%w: join exited", errStop)
			default:
			}
			return fmt.Errorf("not joined yet")
		}); err != nil {
			t.Fatalf("%s: %v\nlog:\n%s", n.id, err, tail(n.log(), 60))
		}
		// As deploy/local does: the joined node is handed over to
		// `ferryd run` with the full config (data plane and all).
		n.stop(t, syscall.SIGTERM)
		s.writeConfig(t, n, false)
		n.run(t, s.net)
		n.waitReady(t, s, 3*time.Minute)
	}
}

func (s *scenario) writeConfig(t *testing.T, n *node, first bool) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.dir, "ferryd.yaml"), []byte(n.config(s, first)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
