package audit_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

func TestPlanTrim(t *testing.T) {
	c := startCluster(t, 1)
	node := c.Node(0)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock time.Time
	s := newSigner(t)
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Store: node, Signer: s, Poll: time.Hour, Now: func() time.Time { return clock }, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	l := newLog(t, node)
	batch := func(at time.Time, n int) audit.Checkpoint {
		for i := 0; i < n; i++ {
			e := loginEvent(i)
			e.Time = at
			if err := l.Record(context.Background(), e); err != nil {
				t.Fatal(err)
			}
		}
		clock = at
		c, err := cp.Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := batch(t0, 30)                   // covers 30
	b := batch(t0.Add(48*time.Hour), 30) // covers 61
	batch(t0.Add(400*24*time.Hour), 30)  // recent
	now := t0.Add(401 * 24 * time.Hour)  // default retention cuts at t0+1d
	setCursor := func(sink string, seq uint64) {
		if _, err := node.Put(context.Background(), audit.CursorKey(sink), []byte(strconv.FormatUint(seq, 10))); err != nil {
			t.Fatal(err)
		}
	}
	setCursor("siem", 45)
	setCursor("archive", 200)
	tests := []struct {
		name      string
		policy    audit.RetentionPolicy
		through   uint64
		anchorSeq uint64
	}{
		{"no sinks: nothing leaves", audit.RetentionPolicy{}, 0, 0},
		{"a sink that exported nothing holds everything", audit.RetentionPolicy{Sinks: []string{"archive", "new"}}, 0, 0},
		{"the slowest sink bounds the trim", audit.RetentionPolicy{Sinks: []string{"siem", "archive"}}, a.Seq, a.Seq + 1},
		{"retention bounds the trim", audit.RetentionPolicy{Sinks: []string{"archive"}}, a.Seq, a.Seq + 1},
		{"shorter retention, everything exported", audit.RetentionPolicy{Sinks: []string{"archive"}, Retention: 300 * 24 * time.Hour}, b.Seq, b.Seq + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := audit.PlanTrim(context.Background(), node, tt.policy, now)
			if err != nil {
				t.Fatal(err)
			}
			if p.Through != tt.through || p.AnchorSeq != tt.anchorSeq {
				t.Fatalf("plan through %d anchored at %d, want %d at %d", p.Through, p.AnchorSeq, tt.through, tt.anchorSeq)
			}
			if p.Through > 0 && (p.Anchor == nil || p.Anchor.Seq != p.Through) {
				t.Fatalf("anchor %+v does not sign record %d", p.Anchor, p.Through)
			}
		})
	}
}
