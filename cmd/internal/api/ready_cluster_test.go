package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// TestReadyzFollowsTheLeadersIndex is the ready rule on a real three-node
// cluster: a follower held back from the leader (cut off by the test
// network) while more than cluster.DefaultReadyLag entries commit answers
// /readyz 503; healed, it answers 200 once it has caught up, and never
// while it trails the leader's commit index by more than the lag (issue:
// a node restarted from a snapshot said ready ~4,200 entries behind).
// digits blurs the numbers in /readyz answers, to log each kind once.
var digits = regexp.MustCompile(`[0-9.]+m?s|[0-9]+`)

func TestReadyzFollowsTheLeadersIndex(t *testing.T) {
	srvs := apitest.StartCluster(t, 3)
	c := srvs[0].Cluster
	leader := c.Leader(15 * time.Second)
	f := (leader + 1) % 3
	tlsConf, err := client.TLSConfig(srvs[f].CAFile)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}, Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	readyz := func() (int, string, error) {
		resp, err := hc.Get(srvs[f].URL + wire.PathReadyz)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b)), err
	}
	clustertest.WaitFor(t, 30*time.Second, "the follower ready before the partition", func() error {
		if code, body, err := readyz(); err != nil || code != http.StatusOK {
			return fmt.Errorf("readyz %d %q %v", code, body, err)
		}
		return nil
	})

	// Hold the follower back: cut it off, commit well over the lag
	// through the leader (which keeps its quorum with the third node).
	c.Net.Isolate(c.ID(f))
	const writes = 4 * cluster.DefaultReadyLag
	for k := 0; k < writes; k++ {
		clustertest.WaitFor(t, 30*time.Second, "a write through the leader", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := c.Node(leader).Put(ctx, fmt.Sprintf("readyz-test/%04d", k), []byte("x"))
			if errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrNoQuorum) {
				return err // retried while no leader is known
			}
			if err != nil {
				t.Fatalf("write %d: %v", k, err)
			}
			return nil
		})
	}
	behind := c.Node(leader).Status().CommitIndex - c.Node(f).Status().AppliedIndex
	if behind <= cluster.DefaultReadyLag {
		t.Fatalf("the follower trails by %d entries only: the test holds nothing back", behind)
	}
	// Cut off, the follower cannot learn how far the leader has gone: it
	// stops reporting ready once it has not heard from its leader for a
	// heartbeat timeout (the writes above may all commit within one).
	clustertest.WaitFor(t, 30*time.Second, fmt.Sprintf("readyz 503 from a follower %d entries behind", behind), func() error {
		if code, body, err := readyz(); err != nil || code != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz %d %q %v", code, body, err)
		}
		return nil
	})

	// Healed, it reports 503 until caught up, then 200. Each sample
	// reads the leader's commit index before the request and the
	// follower's applied index after the answer: a 200 with the latter
	// more than the lag below the former was a lie.
	c.Net.Heal()
	var reasons []string
	clustertest.WaitFor(t, 60*time.Second, "the follower ready after it caught up", func() error {
		leaderCommit := c.Node(leader).Status().CommitIndex
		code, body, err := readyz()
		applied := c.Node(f).Status().AppliedIndex
		if err != nil {
			return err
		}
		if code == http.StatusOK {
			if applied+cluster.DefaultReadyLag < leaderCommit {
				t.Fatalf("readyz 200 with applied index %d, the leader's commit index %d", applied, leaderCommit)
			}
			return nil
		}
		if code != http.StatusServiceUnavailable {
			t.Fatalf("readyz %d %q", code, body)
		}
		if r := digits.ReplaceAllString(body, "N"); len(reasons) == 0 || reasons[len(reasons)-1] != r {
			reasons = append(reasons, r)
		}
		return fmt.Errorf("readyz 503 %q", body)
	})
	t.Logf("503 answers after the heal, in order: %q", reasons)
	if got, want := c.Node(f).Status().AppliedIndex, c.Node(leader).Status().CommitIndex; got+cluster.DefaultReadyLag < want {
		t.Errorf("ready with applied index %d, the leader's commit index %d", got, want)
	}
}
