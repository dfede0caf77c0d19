package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/console"
)

// TestPeerCounters: the sessions page shows each active peer's live
// counters from every node (the latest handshake and its node, the
// endpoint, bytes summed over the nodes), asked with the administrator's
// own session token as the cluster's proof.
func TestPeerCounters(t *testing.T) {
	s := apitest.Start(t)
	tok := s.Token(t, adminID)
	if _, err := s.Profiles.Put(bg(t), engProfile(t, s), nil, audit.Actor{UserID: "setup"}); err != nil {
		t.Fatal(err)
	}
	p := issue(t, s, s.Token(t, alice), "laptop")
	now := time.Now()
	var asked string
	base, ca := serveConsole(t, s, func(c *console.Config) {
		c.PeerCounters = func(_ context.Context, sessionToken string) map[string][]console.PeerCounter {
			asked = sessionToken
			return map[string][]console.PeerCounter{p.PublicKey: {
				{Node: "n1", Endpoint: "198.51.100.7:40000", LastHandshake: now.Add(-5 * time.Minute), RxBytes: 1500, TxBytes: 2_000_000},
				{Node: "n2", Endpoint: "198.51.100.7:40001", LastHandshake: now.Add(-30 * time.Second), RxBytes: 500, TxBytes: 1_000_000},
			}}
		}
	})
	resp, page := newBrowser(t, base, ca, tok).do(http.MethodGet, "/admin/sessions", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sessions: %d", resp.StatusCode)
	}
	if asked != tok {
		t.Error("the counters were not asked with the administrator's session")
	}
	for _, want := range []string{"Last handshake", "just now on n2", "198.51.100.7:40001", "2.0 kB", "3.0 MB"} {
		if !strings.Contains(page, want) {
			t.Errorf("peers table lacks %q", want)
		}
	}
}
