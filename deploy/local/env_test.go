package local_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The addresses of deploy/local/lib.sh.
const (
	lbURL      = "https://10.200.0.254"
	vpcService = "10.200.0.100"
)

var nodes = []string{"n1", "n2", "n3"}

func nodeAddr(n string) string { return "10.200.0." + "1" + strings.TrimPrefix(n, "n") }

// env is a running deploy/local setup: three ferryd nodes in namespaces
// behind nginx, the demo IdP, the VPC with its services and the SIEM
// (rsyslog over TLS), and two client namespaces.
type env struct {
	dir  string // FERRY_LOCAL_DIR
	ca   string // the cluster CA, which signed the API certificates
	http *http.Client
}

// requireDrill skips unless this machine can run deploy/local: root,
// Linux, /dev/net/tun, and the programs up.sh and the drill use.
func requireDrill(tb testing.TB) {
	tb.Helper()
	if runtime.GOOS != "linux" {
		tb.Skip("deploy/local needs Linux network namespaces")
	}
	if os.Geteuid() != 0 {
		tb.Skip("deploy/local needs root (network namespaces, the data plane); run make test as root")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		tb.Skip("no /dev/net/tun: userspace WireGuard cannot run")
	}
	for _, p := range []string{"ip", "nginx", "rsyslogd", "wg", "wg-quick", "curl", "openssl", "python3", chromiumPath} {
		if _, err := exec.LookPath(p); err != nil {
			tb.Skipf("deploy/local drill needs %s (CI installs it: see .ci/run)", p)
		}
	}
	if _, err := os.Stat("/usr/lib/nginx/modules/ngx_stream_module.so"); err != nil {
		tb.Skip("nginx's stream module is missing (apt-get install libnginx-mod-stream)")
	}
	if wireguardGo() == "" {
		tb.Skip("the wireguard-go binary is missing (go install golang.zx2c4.com/wireguard@latest, then name it wireguard-go)")
	}
	if _, err := os.Stat("/tmp/ferry-local.env"); err == nil {
		tb.Skip("a deploy/local setup is running on this machine (/tmp/ferry-local.env); stop it with deploy/local/down.sh")
	}
}

// wireguardGo finds the userspace WireGuard binary wg-quick runs.
func wireguardGo() string {
	if p, err := exec.LookPath("wireguard-go"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "wireguard-go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// startEnv runs up.sh into a new directory and down.sh when the test ends
// (after printing the nodes' and the load balancer's logs if it failed).
func startEnv(tb testing.TB) *env {
	tb.Helper()
	requireDrill(tb)
	dir, err := os.MkdirTemp("", "ferry-drill-")
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{dir: dir, ca: filepath.Join(dir, "n1", "tls", "ca.crt")}
	tb.Cleanup(func() {
		if tb.Failed() {
			e.dumpLogs(tb)
			// Keep the logs, state and configuration for a post-mortem.
			os.Setenv("FERRY_LOCAL_KEEP", "1")
			defer os.Unsetenv("FERRY_LOCAL_KEEP")
			tb.Logf("deploy/local state kept in %s", dir)
		}
		e.script(tb, "down.sh")
		for _, s := range []string{"ferry0", clientIface} {
			os.Remove("/var/run/wireguard/" + s + ".sock")
		}
	})
	start := time.Now()
	if out, err := e.scriptOutput("up.sh"); err != nil {
		tb.Fatalf("up.sh: %v\n%s", err, tail(out, 60))
	}
	tb.Logf("up.sh: three nodes behind the load balancer in %s", time.Since(start).Round(time.Millisecond))
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(e.ca)
	if err != nil {
		tb.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	e.http = &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true},
	}
	return e
}

func (e *env) scriptOutput(name string, args ...string) ([]byte, error) {
	cmd := exec.Command("bash", append([]string{name}, args...)...)
	cmd.Env = append(os.Environ(), "FERRY_LOCAL_DIR="+e.dir)
	return cmd.CombinedOutput()
}

func (e *env) script(tb testing.TB, name string, args ...string) {
	tb.Helper()
	if out, err := e.scriptOutput(name, args...); err != nil {
		tb.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out, 30))
	}
}

func (e *env) dumpLogs(tb testing.TB) {
	for _, f := range []string{"n1/ferryd.log", "n2/ferryd.log", "n3/ferryd.log", "lb/health.log", "lb/error.log", "siem/rsyslogd.log"} {
		b, err := os.ReadFile(filepath.Join(e.dir, f))
		if err == nil {
			tb.Logf("--- %s (tail)\n%s", f, tail(b, 25))
		}
	}
}

func tail(b []byte, lines int) string {
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

func (e *env) bin(name string) string { return filepath.Join(e.dir, "bin", name) }

// in runs a command in network namespace ns ("" for this host's).
func (e *env) in(ns string, name string, args ...string) *exec.Cmd {
	if ns == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// must runs cmd and returns its output, failing the test on error.
func must(tb testing.TB, cmd *exec.Cmd) string {
	tb.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

// ferryctl runs the admin CLI on this host with the administrator's
// saved sign-in.
func (e *env) ferryctl(args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin("ferryctl"), args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(e.dir, "ctl"))
	return cmd
}

// startLogin starts a login command that prints the sign-in address
// (--no-browser) and returns that address; wait for the command with the
// returned function.
func startLogin(tb testing.TB, cmd *exec.Cmd) (string, func() string) {
	tb.Helper()
	var out bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(pw, &out)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if s := strings.TrimSpace(sc.Text()); strings.HasPrefix(s, lbURL+"/login?") {
				found <- s
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	select {
	case u := <-found:
		return u, func() string {
			select {
			case err := <-done:
				if err != nil {
					tb.Fatalf("%s: %v\n%s", cmd.Args[0], err, out.String())
				}
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				tb.Fatalf("%s did not finish after the browser signed in\n%s", cmd.Args[0], out.String())
			}
			return out.String()
		}
	case err := <-done:
		tb.Fatalf("%s exited before printing the sign-in address: %v\n%s", strings.Join(cmd.Args, " "), err, out.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		tb.Fatalf("%s printed no sign-in address\n%s", strings.Join(cmd.Args, " "), out.String())
	}
	return "", nil
}

// api calls the API through the load balancer with a bearer token and
// decodes a JSON answer into out (if not nil). It returns the status.
func (e *env) api(ctx context.Context, method, path, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, lbURL+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// clientToken is the session token `ferry login` saved in dir.
func clientToken(tb testing.TB, dir string) string {
	tb.Helper()
	matches, _ := filepath.Glob(filepath.Join(dir, "tokens", "*.json"))
	if len(matches) != 1 {
		tb.Fatalf("want one saved token under %s, found %v", dir, matches)
	}
	b, err := os.ReadFile(matches[0])
	if err != nil {
		tb.Fatal(err)
	}
	var f struct{ Token string }
	if err := json.Unmarshal(b, &f); err != nil || f.Token == "" {
		tb.Fatalf("token file %s: %v", matches[0], err)
	}
	return f.Token
}

// devicePeers returns the public keys of node n's WireGuard device (its
// userspace control socket is reachable from every namespace).
func devicePeers(n string) (map[string]bool, error) {
	out, err := exec.Command("wg", "show", "ferry-"+n, "peers").Output()
	if err != nil {
		return nil, fmt.Errorf("wg show ferry-%s: %w", n, err)
	}
	m := map[string]bool{}
	for _, k := range strings.Fields(string(out)) {
		m[k] = true
	}
	return m, nil
}

// carrier returns the node whose device handshook with key most recently.
func carrier(key string) (string, time.Time) {
	var best string
	var at time.Time
	for _, n := range nodes {
		out, err := exec.Command("wg", "show", "ferry-"+n, "latest-handshakes").Output()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 || f[0] != key {
				continue
			}
			var sec int64
			fmt.Sscan(f[1], &sec)
			if sec > 0 && time.Unix(sec, 0).After(at) {
				best, at = n, time.Unix(sec, 0)
			}
		}
	}
	return best, at
}

// leader asks the cluster which node leads.
func (e *env) leader(tb testing.TB) string {
	tb.Helper()
	var st struct {
		Leader string `json:"leader_id"`
	}
	if err := e.waitFor(15*time.Second, "a leader", func() error {
		out, err := e.ferryctl("cluster", "status", "-o", "json").Output()
		if err != nil {
			return err
		}
		if err := json.Unmarshal(out, &st); err != nil {
			return err
		}
		if st.Leader == "" {
			return errors.New("no leader")
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return st.Leader
}

// waitFor polls cond every 50 ms until it returns nil or within passes.
func (e *env) waitFor(within time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting %s for %s: %w", within, what, err)
		}
		<-tick.C
	}
}

// prober sends a TCP connection attempt to addr from namespace ns every
// 100 ms (the service behind the tunnel) and records when they succeed.
type prober struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	oks []time.Time
	// fails holds when failed probes started.
	fails []time.Time
	done  chan struct{}
}

const probeScript = `
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
while True:
    t = time.time()
    try:
        socket.create_connection((host, port), timeout=0.3).close()
        print("ok %.6f" % t, flush=True)
    except OSError:
        print("fail %.6f" % t, flush=True)
    time.sleep(max(0.0, 0.1 - (time.time() - t)))
`

func (e *env) startProber(tb testing.TB, ns, addr, port string) *prober {
	tb.Helper()
	p := &prober{cmd: e.in(ns, "python3", "-c", probeScript, addr, port), done: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var word string
			var ts float64
			if _, err := fmt.Sscan(sc.Text(), &word, &ts); err != nil {
				continue
			}
			sec := int64(ts)
			at := time.Unix(sec, int64((ts-float64(sec))*1e9))
			p.mu.Lock()
			switch word {
			case "ok":
				p.oks = append(p.oks, at)
			case "fail":
				p.fails = append(p.fails, at)
			}
			p.mu.Unlock()
		}
	}()
	tb.Cleanup(p.stop)
	return p
}

func (p *prober) stop() {
	if p.cmd.Process != nil {
		p.cmd.Process.Kill()
		<-p.done
		p.cmd.Wait()
	}
}

// okAfter reports whether a probe started after t succeeded, and when.
func (p *prober) okAfter(t time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ok := range p.oks {
		if ok.After(t) {
			return ok, true
		}
	}
	return time.Time{}, false
}

// failedAfter counts the probes started after t that failed.
func (p *prober) failedAfter(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, f := range p.fails {
		if f.After(t) {
			n++
		}
	}
	return n
}

// maxGap is the longest time between consecutive successful probes that
// started in [from, to]: the outage, when from is just before a failure and
// to is after the traffic came back.
func (p *prober) maxGap(from, to time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var worst time.Duration
	var prev time.Time
	for _, ok := range p.oks {
		if ok.Before(from) || ok.After(to) {
			continue
		}
		if !prev.IsZero() {
			worst = max(worst, ok.Sub(prev))
		}
		prev = ok
	}
	return worst
}

// recovered waits until a probe that started after t succeeds and returns
// when it started.
func (p *prober) recovered(e *env, t time.Time, within time.Duration) (time.Time, error) {
	var at time.Time
	err := e.waitFor(within, "traffic to pass again", func() error {
		var ok bool
		if at, ok = p.okAfter(t); !ok {
			return errors.New("no successful probe")
		}
		return nil
	})
	return at, err
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

// login runs a desktop sign-in (ferryctl login or ferry login with
// --no-browser, made by newCmd) and completes it in the browser as user,
// starting again when an attempt fails: a browser may abort a page when
// the machine's network changes (other tests add interfaces), as a person
// would press "Sign in again". It returns the command's output.
func (e *env) login(tb testing.TB, br *browser, user string, newCmd func() *exec.Cmd) string {
	tb.Helper()
	var errs []error
	for range 3 {
		cmd := newCmd()
		url, wait := startLogin(tb, cmd)
		if err := br.trySignIn(tb, url, user); err != nil {
			errs = append(errs, err)
			cmd.Process.Kill()
			continue
		}
		return wait()
	}
	tb.Fatalf("signing in as %s failed three times: %v", user, errs)
	return ""
}
