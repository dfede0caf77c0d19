package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startThree builds a three-node cluster as the README does (init, token,
// join) and returns its nodes, all ready, and a client trusting its CA.
func startThree(t *testing.T) ([]*node, *http.Client) {
	t.Helper()
	dir := t.TempDir()
	addrs := freeAddrs(t, 9)
	var nodes []*node
	for i := range 3 {
		id := fmt.Sprintf("n%d", i+1)
		nodes = append(nodes, &node{id: id, dir: filepath.Join(dir, id),
			clusterAddr: addrs[3*i], apiAddr: addrs[3*i+1], metricsAddr: addrs[3*i+2]})
	}
	n1 := nodes[0]
	if out, errOut, err := ferryd(t, "init", "--dir", n1.dir, "--node-id", "n1", "--cluster-addr", n1.clusterAddr,
		"--api-addr", n1.apiAddr, "--metrics-addr", n1.metricsAddr); err != nil {
		t.Fatalf("init: %v\n%s%s", err, out, errOut)
	}
	n1.proc = start(t, "n1", "run", "--config", n1.config(), "--log-format", "text")
	https := httpsClient(t, filepath.Join(n1.dir, "tls", "ca.crt"))
	waitFor(t, "n1 ready", 30*time.Second, allReady(https, nodes[:1]))
	master := filepath.Join(n1.dir, "master.key")
	for _, n := range nodes[1:] {
		// A token admits one node.
		tok, errOut, err := ferryd(t, "token", "--config", n1.config(), "--ttl", "10m")
		if err != nil {
			t.Fatalf("token: %v\n%s", err, errOut)
		}
		n.proc = start(t, n.id, "join", "--server", "https://"+n1.apiAddr, "--token", strings.TrimSpace(tok), "--dir", n.dir,
			"--node-id", n.id, "--cluster-addr", n.clusterAddr, "--api-addr", n.apiAddr, "--metrics-addr", n.metricsAddr,
			"--master-key-file", master, "--log-format", "text")
	}
	waitFor(t, "three ready nodes", 90*time.Second, allReady(https, nodes))
	waitFor(t, "three voters everywhere", 30*time.Second, votersAre(nodes, "3"))
	return nodes, https
}

// metricValue reads a numeric metric of n.
func (n *node) metricValue(series string) (float64, error) {
	v, err := n.metric(series)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(v, 64)
}

// TestStartUpNeverDependsOnTheLeader is the restart after a crash:
// kill -9 a follower of a three-node cluster, keep it down past the
// leader's replication back-off, restart it. It must wait to catch up
// instead of exiting ("loading the audit signing key: … no leader with
// quorum reachable"), and /readyz must answer 503 until it has caught up.
// On the way, a second ferryd on a running node's data directory must
// exit at once, naming the directory and the PID that holds it, and leave
// the running node's state alone.
func TestStartUpNeverDependsOnTheLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("runs several ferryd processes; skipped with -short")
	}
	nodes, https := startThree(t)

	t.Run("second instance on a data directory", func(t *testing.T) {
		n := nodes[0]
		state := filepath.Join(n.dir, "data", "state.db")
		before, err := os.Stat(state)
		if err != nil {
			t.Fatalf("the running node has no state file: %v", err)
		}
		_, errOut, err := ferryd(t, "run", "--config", n.config(), "--log-format", "text")
		if err == nil {
			t.Fatal("a second ferryd run on the same data directory succeeded")
		}
		pid := strconv.Itoa(n.proc.cmd.Process.Pid)
		if !strings.Contains(errOut, filepath.Join(n.dir, "data")) || !strings.Contains(errOut, "process "+pid) {
			t.Errorf("the error names neither the data directory nor PID %s:\n%s", pid, errOut)
		}
		after, err := os.Stat(state)
		if err != nil || !os.SameFile(before, after) {
			t.Errorf("the second instance touched the running node's state file: %v", err)
		}
		if err := n.ready(https); err != nil {
			t.Errorf("the running node is no longer ready: %v", err)
		}
	})

	var leader, follower *node
	waitFor(t, "a leader", 30*time.Second, func() (err error) { leader, err = leaderOf(nodes); return err })
	for _, n := range nodes {
		if n != leader {
			follower = n
			break
		}
	}
	follower.proc.kill()
	t.Logf("killed follower %s (leader %s)", follower.id, leader.id)
	// Down past the back-off: the leader has failed to send it entries
	// often enough (11 times, each wait twice the last, from 10 ms) that
	// its replication now waits 5-10 s between attempts.
	failures := `ferry_cluster_peer_rpc_failures_total{peer="` + follower.clusterAddr + `",rpc="append_entries"}`
	waitFor(t, "the leader to back off from the dead follower", 90*time.Second, func() error {
		v, err := leader.metricValue(failures)
		if err == nil && v < 11 {
			err = fmt.Errorf("%v failed RPCs so far", v)
		}
		return err
	})
	target, err := leader.metricValue("ferry_cluster_applied_index")
	if err != nil {
		t.Fatal(err)
	}

	follower.proc = start(t, follower.id+" (restarted)", "run", "--config", follower.config(), "--log-format", "text")
	var notReady int
	waitFor(t, "the restarted follower to become ready", 90*time.Second, func() error {
		if follower.proc.exited() {
			return fmt.Errorf("%w: %v", errExited, follower.proc.err)
		}
		body, err := fetch(https, "https://"+follower.apiAddr+"/readyz")
		if err != nil {
			if strings.Contains(err.Error(), "503") {
				notReady++
			}
			return err
		}
		// Ready: it must have caught up with what the leader had applied
		// before it came back.
		applied, merr := follower.metricValue("ferry_cluster_applied_index")
		if merr != nil || applied < target {
			t.Errorf("/readyz said %q with applied index %v (%v), the leader's was %v", body, applied, merr, target)
		}
		return nil
	})
	if notReady == 0 {
		t.Error("/readyz never answered 503 while the follower caught up")
	}
	if strings.Contains(follower.proc.stderr.String(), "level=ERROR") {
		t.Errorf("the restart logged errors:\n%s", tail(follower.proc.stderr.String(), 4000))
	}
	if n := strings.Count(leader.proc.stderr.String(), "level=ERROR"); n > 0 {
		t.Errorf("the leader logged %d ERROR lines for one follower down:\n%s", n, tail(leader.proc.stderr.String(), 4000))
	}
	var errs []error
	for _, n := range nodes {
		if err := n.ready(https); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
}
