package local_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// BenchmarkDrill measures, on deploy/local's three nodes behind the load
// balancer, the figures the deployment promises. Each iteration is one
// round: kill -9 the node carrying a `ferry up` client's tunnel (the
// client's traffic gap), kill -9 the leader while issuances run (time to
// the next successful issuance), and revocations of fresh peers (until the
// peer is gone from all three devices). Run with -benchtime Nx for N
// rounds; it reports medians, and the p99 of the revocations.
func BenchmarkDrill(b *testing.B) {
	e := startEnv(b)
	br := newBrowser(b)
	e.login(b, br, "demo", func() *exec.Cmd { return e.ferryctl("login", lbURL, "--ca", e.ca, "--no-browser") })
	must(b, e.ferryctl("profile", "apply", "-f", filepath.Join(e.dir, "profiles.yaml")))
	carolDir := filepath.Join(e.dir, "carol")
	e.login(b, br, "carol", func() *exec.Cmd {
		return exec.Command(e.bin("ferry"), "--config-dir", carolDir, "login", lbURL, "--ca", e.ca, "--no-browser", "--device", "laptop")
	})
	must(b, e.in("ferry-c2", e.bin("ferry"), "--config-dir", carolDir, "up", "--embedded"))
	carolKey := strings.TrimSpace(must(b, exec.Command("wg", "show", "ferry0", "public-key")))
	token := clientToken(b, carolDir)
	p := e.startProber(b, "ferry-c2", vpcService, "80")

	var gaps, issues, revokes []time.Duration
	for i := 0; i < b.N; i++ {
		gap, victim := e.killCarrier(b, p, carolKey)
		gaps = append(gaps, gap)
		e.node(b, "start", victim)
		e.waitHealthy(b)

		issues = append(issues, e.leaderKillDuringWrites(b, nil, token))
		e.waitHealthy(b)

		for j := range 10 {
			k, _ := wgtypes.GeneratePrivateKey()
			var resp struct {
				Peer struct{ ID string } `json:"peer"`
			}
			if _, err := e.api(context.Background(), http.MethodPost, "/v1/peers", token,
				map[string]string{"public_key": k.PublicKey().String(), "device": fmt.Sprintf("rev-%d", j), "profile": "engineering"}, &resp); err != nil {
				b.Fatal(err)
			}
			revokes = append(revokes, e.revokeEverywhere(b, k.PublicKey().String(), func() {
				if _, err := e.api(context.Background(), http.MethodDelete, "/v1/peers/"+resp.Peer.ID, token, nil, nil); err != nil {
					b.Fatal(err)
				}
			}))
		}
	}
	b.ReportMetric(median(gaps).Seconds(), "node-death-gap-s")
	b.ReportMetric(slices.Max(gaps).Seconds(), "node-death-gap-max-s")
	b.ReportMetric(median(issues).Seconds(), "leader-kill-to-issue-s")
	b.ReportMetric(slices.Max(issues).Seconds(), "leader-kill-to-issue-max-s")
	b.ReportMetric(float64(percentile(revokes, 0.99).Microseconds())/1000, "revoke-3-nodes-p99-ms")
	b.ReportMetric(float64(median(revokes).Microseconds())/1000, "revoke-3-nodes-p50-ms")
}

// waitHealthy waits until every node is ready and back in the load
// balancer.
func (e *env) waitHealthy(tb testing.TB) {
	tb.Helper()
	if err := e.waitFor(60*time.Second, "every node healthy behind the load balancer", func() error {
		b, err := readFile(filepath.Join(e.dir, "lb", "down"))
		if err != nil {
			return err
		}
		if down := strings.TrimSpace(b); down != "" {
			return errors.New("down: " + down)
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 0.5) }

// percentile is the nearest-rank percentile of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
