package audit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ferryvpn/ferry/audit"
)

func TestRecordStampsAndStores(t *testing.T) {
	c := startCluster(t, 1)
	now := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	l := newLog(t, c.Node(0), func(cfg *audit.Config) { cfg.Now = func() time.Time { return now } })
	r, err := l.Append(context.Background(), loginEvent(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.ID) != 32 || r.Seq != 1 {
		t.Fatalf("receipt %+v: want a 32-hex-digit id at seq 1", r)
	}
	var got *audit.Event
	audit.Scan(context.Background(), c.Node(0), audit.Filter{}, func(e *audit.Entry) error { got = e.Event; return nil })
	if got == nil || got.ID != r.ID || !got.Time.Equal(now) || got.Time.Location() != time.UTC || got.Node != "n1" {
		t.Fatalf("stored %+v: want id %s, time %s in UTC, node n1", got, r.ID, now)
	}
}

// An event re-sent with the same ID (a retry after a lost answer) is
// stored once, and its receipt names where it already is.
func TestRepeatedEventStoredOnce(t *testing.T) {
	c := startCluster(t, 1)
	l := newLog(t, c.Node(0))
	e := loginEvent(1)
	e.ID = "0123456789abcdef0123456789abcdef"
	r1, err := l.Append(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), loginEvent(2)); err != nil {
		t.Fatal(err)
	}
	r2, err := l.Append(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Seq != r2.Seq || r1.ID != r2.ID {
		t.Fatalf("repeat stored apart: %+v then %+v", r1, r2)
	}
	if head, _, _ := c.Node(0).JournalHead(); head != 2 {
		t.Fatalf("journal head %d, want 2", head)
	}
}

func TestRecordRejectsInvalidEvents(t *testing.T) {
	c := startCluster(t, 1)
	l := newLog(t, c.Node(0))
	// (An oversized event is not refused: its strings are capped, see
	// TestRecordFillsSourceAndCapsStrings.)
	tests := []struct {
		name string
		e    audit.Event
	}{
		{"no type", audit.Event{Outcome: audit.Success}},
		{"no outcome", audit.Event{Type: audit.TypeLogin}},
		{"unknown outcome", audit.Event{Type: audit.TypeLogin, Outcome: "maybe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.Record(context.Background(), tt.e); !errors.Is(err, audit.ErrInvalidEvent) {
				t.Fatalf("got %v, want ErrInvalidEvent", err)
			}
		})
	}
	if head, _, _ := c.Node(0).JournalHead(); head != 0 {
		t.Fatalf("journal at %d after rejected events, want 0", head)
	}
}

// A flood of flow events must not starve a login: its record overtakes
// flows that were queued before it.
func TestSecurityLaneOvertakesFlows(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.Node(c.Leader(5 * time.Second))
	// One appender and small batches keep a deep flow queue.
	l := newLog(t, leader, func(cfg *audit.Config) { cfg.Appenders = 1; cfg.BatchSize = 64; cfg.QueueSize = 20000 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var queued atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 1000; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				queued.Add(1)
				l.Record(ctx, flowEvent(w*100000+i))
			}
		}(w)
	}
	waitFor(t, 10*time.Second, func() (bool, string) {
		h, _, _ := leader.JournalHead()
		return h > 2000, fmt.Sprintf("journal at %d", h)
	})
	// Flows enqueued before the login: the journal head now plus what is
	// waiting in the queue.
	headBefore, _, _ := leader.JournalHead()
	r, err := l.Append(context.Background(), loginEvent(1))
	if err != nil {
		t.Fatal(err)
	}
	headAfter, _, _ := leader.JournalHead()
	cancel()
	wg.Wait()
	// With 1000 writers the flow lane holds ~1000 events and one append
	// carries 64: a login queued behind them would land ~15 batches later.
	if r.Seq > headBefore+2*64 {
		t.Fatalf("login stored at %d, %d records after the head when it was recorded: it waited behind flows", r.Seq, r.Seq-headBefore)
	}
	t.Logf("login at seq %d; head %d before, %d after; %d flows offered", r.Seq, headBefore, headAfter, queued.Load())
}

// kill -9 (a stop without leaving) of any node during ingest: every
// acknowledged event is on every node afterwards.
func TestAcknowledgedEventsSurviveNodeKill(t *testing.T) {
	for _, victim := range []string{"leader", "follower"} {
		t.Run(victim, func(t *testing.T) {
			c := startCluster(t, 3)
			li := c.Leader(5 * time.Second)
			kill := li
			if victim == "follower" {
				kill = (li + 1) % 3
			}
			logs := make([]*audit.Log, 3)
			for i := range logs {
				logs[i] = newLog(t, c.Node(i))
			}
			var mu sync.Mutex
			acked := map[string]bool{}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var failures atomic.Int64
			for w := 0; w < 30; w++ {
				if w%3 == kill {
					continue // the killed node's own writers die with it
				}
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; ctx.Err() == nil; i++ {
						e := loginEvent(w*1000000 + i)
						if i%2 == 1 {
							e = flowEvent(i)
						}
						r, err := logs[w%3].Append(context.Background(), e)
						if err != nil {
							failures.Add(1)
							continue
						}
						mu.Lock()
						acked[r.ID] = true
						mu.Unlock()
					}
				}(w)
			}
			waitFor(t, 10*time.Second, func() (bool, string) {
				mu.Lock()
				defer mu.Unlock()
				return len(acked) > 500, fmt.Sprintf("%d acknowledged", len(acked))
			})
			logs[kill].Close()
			c.Stop(kill)
			before := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }()
			waitFor(t, 15*time.Second, func() (bool, string) {
				mu.Lock()
				defer mu.Unlock()
				return len(acked) > before+500, fmt.Sprintf("%d acknowledged after the kill, %d before", len(acked), before)
			})
			cancel()
			wg.Wait()
			c.StartNode(kill)
			c.WaitConverged(20 * time.Second)
			for i := 0; i < 3; i++ {
				ids := journalIDs(t, c.Node(i))
				missing := 0
				for id := range acked {
					if _, ok := ids[id]; !ok {
						missing++
					}
				}
				if missing > 0 {
					t.Errorf("node %s lacks %d of %d acknowledged events", c.ID(i), missing, len(acked))
				}
				if d := duplicateIDs(t, c.Node(i)); d > 0 {
					t.Errorf("node %s journal holds %d repeated event IDs", c.ID(i), d)
				}
				if n, err := c.Node(i).VerifyJournal(); err != nil {
					t.Errorf("node %s journal: %v (%d records)", c.ID(i), err, n)
				}
			}
			t.Logf("%d acknowledged, %d failed writes during the kill", len(acked), failures.Load())
		})
	}
}

// Events recorded under a request's context name its client, and every
// stored string is capped with a marker and the original length.
func TestRecordFillsSourceAndCapsStrings(t *testing.T) {
	c := startCluster(t, 1)
	l := newLog(t, c.Node(0))
	ctx := audit.WithSource(context.Background(), audit.Source{Addr: "198.51.100.9", Port: 4242, UserAgent: strings.Repeat("<ua>", 3000)})
	e := audit.Event{Type: audit.TypeProfileChange, Action: "profile.put", Outcome: audit.Success, Reason: strings.Repeat("é", 5000),
		Details: map[string]string{}}
	for i := 0; i < 100; i++ {
		e.Details[fmt.Sprint("k", i)] = "v"
	}
	if err := l.Record(ctx, e); err != nil {
		t.Fatal(err)
	}
	var got *audit.Event
	audit.Scan(context.Background(), c.Node(0), audit.Filter{}, func(en *audit.Entry) error { got = en.Event; return nil })
	switch {
	case got == nil:
		t.Fatal("nothing stored")
	case got.Source.Addr != "198.51.100.9" || got.Source.Port != 4242:
		t.Fatalf("source %+v: want the request's client", got.Source)
	case len(got.Source.UserAgent) > audit.MaxFieldLen || !strings.HasSuffix(got.Source.UserAgent, "…[truncated, 12000 bytes]"):
		t.Fatalf("user agent %d bytes: %q", len(got.Source.UserAgent), got.Source.UserAgent[len(got.Source.UserAgent)-40:])
	case len(got.Reason) > audit.MaxFieldLen || !utf8.ValidString(got.Reason) || !strings.Contains(got.Reason, "truncated, 10000 bytes"):
		t.Fatalf("reason %d bytes", len(got.Reason))
	case len(got.Details) > audit.MaxDetails+1 || got.Details["truncated_details"] != "100":
		t.Fatalf("%d details, marker %q", len(got.Details), got.Details["truncated_details"])
	}
}
