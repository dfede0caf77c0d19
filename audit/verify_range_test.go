package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

// TestVerifyRange: a range of the live journal verifies from its first
// record on: the records after the last checkpoint are chained but not
// yet signed, those before it are signed.
func TestVerifyRange(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t, 1)
	s := newSigner(t)
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Store: c.Node(0), Signer: s, Poll: time.Hour, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	l := newLog(t, c.Node(0))
	defer l.Close()
	for i := 0; i < 40; i++ {
		if err := l.Record(ctx, loginEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	signed, err := cp.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 40; i < 45; i++ {
		if err := l.Record(ctx, loginEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	head, _, _ := c.Node(0).JournalHead()
	keys := audit.Keys{audit.KeyID(s.Public()): s.Public()}
	rep, err := audit.VerifyRange(ctx, c.Node(0), 30, audit.VerifyOptions{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if rep.First != 30 || rep.Last != head || rep.Signed < signed.Seq || rep.Signed >= head {
		t.Errorf("report %+v: want records 30 to %d, signed up to the checkpoint %d", rep, head, signed.Seq)
	}
	if _, err := audit.VerifyRange(ctx, c.Node(0), 30, audit.VerifyOptions{Keys: audit.Keys{}}); err == nil {
		t.Error("verified a signed range without its key")
	}
}
