package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/pki"
)

// leaveConfig writes a config file for node i of c, with a node
// certificate of its own, and returns its path. Only what leave reads is
// real: the API and master key files are never opened.
func leaveConfig(t *testing.T, c *clustertest.Cluster, i int) string {
	t.Helper()
	dir := t.TempDir()
	id := c.ID(i)
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := c.CA.IssueNode(csr, id, []string{cluster.DefaultServerName}, nil, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"ca.crt": c.CA.CertPEM(), "node.crt": certPEM, "node.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`node_id: %s
data_dir: data
master_key_file: master.key
cluster:
  bind_addr: %s
tls:
  ca_file: ca.crt
  cert_file: node.crt
  key_file: node.key
api:
  listen_addr: 127.0.0.1:8443
  cert_file: api.crt
  key_file: api.key
`, id, c.Node(i).Addr())
	path := filepath.Join(dir, "ferryd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func voters(n *cluster.Node) int {
	v := 0
	for _, m := range n.Status().Members {
		if m.Voter {
			v++
		}
	}
	return v
}

// TestLeaveCommand removes a follower, then the leader, with "ferryd
// leave"; leaving twice and the last voter leaving are refused clearly.
// (cluster's tests try other nodes' and foreign certificates.)
func TestLeaveCommand(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, WriteTimeout: 5 * time.Second})
	leader := c.Leader(5 * time.Second)
	f1, f2 := (leader+1)%3, (leader+2)%3
	cfgs := map[int]string{leader: leaveConfig(t, c, leader), f1: leaveConfig(t, c, f1), f2: leaveConfig(t, c, f2)}

	out, errOut, err := runIn("leave", "--config", cfgs[f1])
	if err != nil || !strings.Contains(out, "Node "+c.ID(f1)+" left the cluster") {
		t.Fatalf("follower leave: %v\n%s%s", err, out, errOut)
	}
	if n := voters(c.Node(leader)); n != 2 {
		t.Fatalf("%d voters after a follower left, want 2", n)
	}
	if _, _, err := runIn("leave", "--config", cfgs[f1], "--peer", c.Node(leader).Addr()); err == nil || !strings.Contains(err.Error(), "not a member of the cluster") {
		t.Fatalf("leaving twice: %v", err)
	}
	c.Stop(f1)

	if out, errOut, err := runIn("leave", "--config", cfgs[leader]); err != nil {
		t.Fatalf("leader leave: %v\n%s%s", err, out, errOut)
	}
	waitFor(t, "one voter left", 10*time.Second, func() error {
		if n := voters(c.Node(f2)); n != 1 || !c.Node(f2).IsLeader() {
			return fmt.Errorf("%d voters, leader %v", n, c.Node(f2).IsLeader())
		}
		return nil
	})
	c.Stop(leader)

	if _, _, err := runIn("leave", "--config", cfgs[f2]); err == nil || !strings.Contains(err.Error(), "refused, nothing changed") || !strings.Contains(err.Error(), "last voter") {
		t.Fatalf("last voter leaving: %v", err)
	}
	if n := voters(c.Node(f2)); n != 1 {
		t.Fatalf("%d voters after the last voter was refused", n)
	}

	help, _, err := runIn("leave", "--help")
	if err != nil || !strings.Contains(help, "a node can remove only") || !strings.Contains(help, "no live majority") {
		t.Errorf("leave --help:\n%s", help)
	}
}
