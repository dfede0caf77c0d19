package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests run ferryd as real processes, as an operator would.

// node is one ferryd node of a process test.
type node struct {
	id                                string
	dir                               string
	clusterAddr, apiAddr, metricsAddr string
	proc                              *proc
}

func (n *node) config() string { return filepath.Join(n.dir, "ferryd.yaml") }

// ready returns nil when the node's /readyz answers 200.
func (n *node) ready(c *http.Client) error {
	if n.proc != nil && n.proc.exited() {
		return fmt.Errorf("%s: %w: %v", n.id, errExited, n.proc.err)
	}
	_, err := fetch(c, "https://"+n.apiAddr+"/readyz")
	return err
}

var metricsClient = &http.Client{Timeout: 5 * time.Second}

// metric returns the value of an unlabelled or fully written metric line.
func (n *node) metric(series string) (string, error) {
	body, err := fetch(metricsClient, "http://"+n.metricsAddr+"/metrics")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s: no metric %s", n.id, series)
}

// leaderOf returns the node that reports itself Raft leader.
func leaderOf(nodes []*node) (*node, error) {
	for _, n := range nodes {
		if v, err := n.metric(`ferry_cluster_raft_state{state="Leader"}`); err == nil && v == "1" {
			return n, nil
		}
	}
	return nil, errors.New("no node reports itself leader")
}

func allReady(c *http.Client, nodes []*node) func() error {
	return func() error {
		for _, n := range nodes {
			if err := n.ready(c); err != nil {
				return err
			}
		}
		return nil
	}
}

func votersAre(nodes []*node, want string) func() error {
	return func() error {
		for _, n := range nodes {
			if v, err := n.metric("ferry_cluster_voters"); err != nil || v != want {
				return fmt.Errorf("%s: voters %q (%v), want %s", n.id, v, err, want)
			}
		}
		return nil
	}
}

// TestThreeNodeCluster creates a cluster with init, joins two nodes with a
// token, kills the leader and restarts it.
func TestThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs several ferryd processes; skipped with -short")
	}
	dir := t.TempDir()
	addrs := freeAddrs(t, 11)
	var nodes []*node
	for i := range 3 {
		id := fmt.Sprintf("n%d", i+1)
		nodes = append(nodes, &node{id: id, dir: filepath.Join(dir, id),
			clusterAddr: addrs[3*i], apiAddr: addrs[3*i+1], metricsAddr: addrs[3*i+2]})
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	// 1. A new cluster and its first node.
	out, errOut, err := ferryd(t, "init", "--dir", n1.dir, "--node-id", "n1", "--cluster-addr", n1.clusterAddr,
		"--api-addr", n1.apiAddr, "--metrics-addr", n1.metricsAddr)
	if err != nil || !strings.Contains(out, "Next steps") {
		t.Fatalf("init: %v\n%s%s", err, out, errOut)
	}
	n1.proc = start(t, "n1", "run", "--config", n1.config(), "--log-format", "text")
	https := httpsClient(t, filepath.Join(n1.dir, "tls", "ca.crt"))
	waitFor(t, "n1 ready", 30*time.Second, allReady(https, nodes[:1]))

	// 2. A token per node (one binds its node), and the master key
	// copied for the other nodes.
	tok, errOut, err := ferryd(t, "token", "--config", n1.config(), "--ttl", "10m")
	if err != nil {
		t.Fatalf("token: %v\n%s", err, errOut)
	}
	tok = strings.TrimSpace(tok)
	tok3, errOut, err := ferryd(t, "token", "--config", n1.config(), "--node-id", "n3")
	if err != nil {
		t.Fatalf("token: %v\n%s", err, errOut)
	}
	key, err := os.ReadFile(filepath.Join(n1.dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	master := filepath.Join(dir, "master.key")
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(master, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokFile, []byte(tok3), 0o600); err != nil {
		t.Fatal(err)
	}

	// 3. n2 joins through n1, n3 through n2: any node serves joins. Both
	// start at once, so n3 must wait for n2 to come up and receive the CA.
	join := func(n, via *node, tokenArgs ...string) {
		args := append([]string{"join", "--server", "https://" + via.apiAddr, "--dir", n.dir, "--node-id", n.id,
			"--cluster-addr", n.clusterAddr, "--api-addr", n.apiAddr, "--metrics-addr", n.metricsAddr,
			"--master-key-file", master, "--log-format", "text"}, tokenArgs...)
		n.proc = start(t, n.id, args...)
	}
	join(n2, n1, "--token", tok)
	join(n3, n2, "--token-file", tokFile)
	for _, n := range nodes[1:] {
		waitFor(t, n.id+" to join", 60*time.Second, func() error {
			if n.proc.exited() {
				return fmt.Errorf("%w: %v", errExited, n.proc.err)
			}
			if !strings.Contains(n.proc.stdout.String(), "Joined the cluster as "+n.id) {
				return errors.New("not joined yet")
			}
			return n.ready(https)
		})
	}
	waitFor(t, "three ready nodes", 30*time.Second, allReady(https, nodes))
	waitFor(t, "three voters everywhere", 30*time.Second, votersAre(nodes, "3"))

	t.Run("join with a bad token", func(t *testing.T) {
		i := len(tok) - 20
		bad := tok[:i] + map[bool]string{true: "B", false: "A"}[tok[i] == 'A'] + tok[i+1:]
		badDir := filepath.Join(dir, "n4")
		_, errOut, err := ferryd(t, "join", "--server", "https://"+n1.apiAddr, "--token", bad, "--dir", badDir,
			"--node-id", "n4", "--cluster-addr", addrs[9], "--api-addr", addrs[10], "--master-key-file", master)
		if err == nil {
			t.Fatal("join with a bad token succeeded")
		}
		if !strings.Contains(errOut, "join refused by https://"+n1.apiAddr+": join token refused") {
			t.Errorf("unclear error: %s", errOut)
		}
		if strings.Contains(errOut, bad[20:]) {
			t.Errorf("the error repeats the token: %s", errOut)
		}
		if _, err := os.Stat(filepath.Join(badDir, "ferryd.yaml")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused join left a config: %v", err)
		}
		if err := votersAre(nodes, "3")(); err != nil {
			t.Errorf("membership changed: %v", err)
		}
	})

	t.Run("join with a used token", func(t *testing.T) {
		badDir := filepath.Join(dir, "n5")
		_, errOut, err := ferryd(t, "join", "--server", "https://"+n1.apiAddr, "--token", tok, "--dir", badDir,
			"--node-id", "n5", "--cluster-addr", addrs[9], "--api-addr", addrs[10], "--master-key-file", master)
		if err == nil || !strings.Contains(errOut, "already used") {
			t.Fatalf("second use of a token: %v\n%s", err, errOut)
		}
		if err := votersAre(nodes, "3")(); err != nil {
			t.Errorf("membership changed: %v", err)
		}
	})

	// 4. Lose the leader: the other two elect a new one and stay ready.
	var leader *node
	waitFor(t, "a leader", 30*time.Second, func() (err error) { leader, err = leaderOf(nodes); return err })
	var rest []*node
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	leader.proc.kill()
	t.Logf("killed the leader %s", leader.id)
	waitFor(t, "a new leader", 30*time.Second, func() error {
		if _, err := leaderOf(rest); err != nil {
			return err
		}
		return allReady(https, rest)()
	})

	// 5. The old leader comes back with "ferryd run" and catches up.
	leader.proc = start(t, leader.id+" (restarted)", "run", "--config", leader.config(), "--log-format", "text")
	waitFor(t, "all three ready again", 60*time.Second, allReady(https, nodes))
	waitFor(t, "three voters after restart", 30*time.Second, votersAre(nodes, "3"))
}

func TestRunBadConfig(t *testing.T) {
	dir := t.TempDir()
	good := `node_id: n1
data_dir: data
master_key_file: master.key
cluster:
  bind_addr: 127.0.0.1:1
tls:
  ca_file: ca.crt
  cert_file: node.crt
  key_file: node.key
api:
  listen_addr: 127.0.0.1:2
  cert_file: api.crt
  key_file: api.key
`
	tests := []struct {
		name string
		yaml string // "" for no file
		args []string
		want string
	}{
		{"no such file", "", nil, "reading config: open"},
		{"unknown field", good + "colour: blue\n", nil, "colour (line 14): unknown field"},
		{"bad address", strings.Replace(good, "127.0.0.1:1", "nowhere", 1), nil, `cluster.bind_addr: "nowhere": want host:port`},
		{"bad duration", strings.Replace(good, "  bind_addr", "  write_timeout: soon\n  bind_addr", 1), nil, "cluster.write_timeout (line 5)"},
		{"bad flag value", good, []string{"--log-level", "loud"}, `log.level: "loud"`},
		{"missing master key", good, nil, "master_key_file: seal: opening key file"},
		{"unknown flag", good, []string{"--colour"}, "unknown flag: --colour"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("ferryd%d.yaml", i))
			if tt.yaml != "" {
				if err := os.WriteFile(path, []byte(tt.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, errOut, err := ferryd(t, append([]string{"run", "--config", path}, tt.args...)...)
			if err == nil {
				t.Fatal("ferryd run succeeded")
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q does not contain %q", errOut, tt.want)
			}
		})
	}
}

func TestDev(t *testing.T) {
	addrs := freeAddrs(t, 2)
	p := start(t, "dev", "dev", "--addr", addrs[0], "--metrics-addr", addrs[1])
	var caFile string
	waitFor(t, "dev to say where it serves", 60*time.Second, func() error {
		if p.exited() {
			return fmt.Errorf("%w: %v", errExited, p.err)
		}
		for _, line := range strings.Split(p.stdout.String(), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "trust" && f[1] == "CA" {
				caFile = f[2]
				return nil
			}
		}
		return errors.New("no 'trust CA' line yet")
	})
	if body, err := fetch(httpsClient(t, caFile), "https://"+addrs[0]+"/readyz"); err != nil || body != "ok\n" {
		t.Errorf("readyz: %q, %v", body, err)
	}
	n := &node{id: "dev", metricsAddr: addrs[1]}
	if _, err := leaderOf([]*node{n}); err != nil {
		t.Errorf("metrics: %v", err)
	}
	p.stop()
	if p.err != nil {
		t.Errorf("dev did not exit cleanly on SIGTERM: %v", p.err)
	}
	if _, err := os.Stat(filepath.Dir(filepath.Dir(caFile))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dev left its directory behind: %v", err)
	}
}
