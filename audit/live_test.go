package audit_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster/seal"
	bolt "go.etcd.io/bbolt"
)

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// TestVerifyLiveDetectsTampering edits a stopped node's state file the way
// an attacker with disk access would, restarts it and verifies its journal
// live. It relies on cluster's storage layout (bucket "journal", big-endian
// seq keys, prev||hash||data values; bucket "meta" with "jseq"/"jhash").
func TestVerifyLiveDetectsTampering(t *testing.T) {
	type journal struct{ j, meta *bolt.Bucket }
	setHead := func(b journal, seq uint64) error {
		v := b.j.Get(seqKey(seq))
		if err := b.meta.Put([]byte("jseq"), seqKey(seq)); err != nil {
			return err
		}
		return b.meta.Put([]byte("jhash"), append([]byte(nil), v[32:64]...))
	}
	tests := []struct {
		name   string
		tamper func(b journal, head uint64) error
		kind   audit.Tamper
		want   string
	}{
		{"untouched", func(journal, uint64) error { return nil }, 0, ""},
		{"edit", func(b journal, _ uint64) error {
			v := append([]byte(nil), b.j.Get(seqKey(25))...)
			i := strings.Index(string(v), `"user_id":"u`)
			v[i+12] = 'x'
			return b.j.Put(seqKey(25), v)
		}, audit.Edited, "record 25 edited"},
		{"delete", func(b journal, _ uint64) error { return b.j.Delete(seqKey(25)) }, audit.Missing, "record 25 missing"},
		{"reorder", func(b journal, _ uint64) error {
			a, c := append([]byte(nil), b.j.Get(seqKey(25))...), append([]byte(nil), b.j.Get(seqKey(26))...)
			if err := b.j.Put(seqKey(25), c); err != nil {
				return err
			}
			return b.j.Put(seqKey(26), a)
		}, audit.Reordered, "records out of order at 25: record 26 is in its place"},
		{"truncate", func(b journal, head uint64) error {
			return b.j.Delete(seqKey(head))
		}, audit.Truncated, "journal truncated after record"},
		{"truncate and rewrite the head", func(b journal, head uint64) error {
			for s := head - 5; s <= head; s++ {
				if err := b.j.Delete(seqKey(s)); err != nil {
					return err
				}
			}
			return setHead(b, head-6)
		}, audit.Truncated, "the last checkpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startCluster(t, 1)
			s := newSigner(t)
			cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Store: c.Node(0), Signer: s, Poll: time.Hour, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			l := newLog(t, c.Node(0))
			for i := 0; i < 40; i++ {
				if err := l.Record(context.Background(), loginEvent(i)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := cp.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			cp.Close()
			l.Close()
			head, _, _ := c.Node(0).JournalHead()
			c.Stop(0)
			db, err := bolt.Open(filepath.Join(c.Dir(0), "state.db"), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				return tt.tamper(journal{tx.Bucket([]byte("journal")), tx.Bucket([]byte("meta"))}, head)
			})
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			c.StartNode(0)
			c.Leader(10 * time.Second)
			rep, err := audit.VerifyLive(context.Background(), c.Node(0), audit.VerifyOptions{Keys: s.Keys()})
			if tt.kind == 0 {
				if err != nil || rep.Last != head || rep.Signed != head-1 {
					t.Fatalf("untouched journal: %+v, %v; want records to %d signed to %d", rep, err, head, head-1)
				}
				return
			}
			var te *audit.TamperError
			if !errors.As(err, &te) || te.Kind != tt.kind || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %s naming %q", err, tt.kind, tt.want)
			}
		})
	}
}

func TestCheckpointsEveryNRecordsOrInterval(t *testing.T) {
	c := startCluster(t, 3)
	li := c.Leader(5 * time.Second)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := newSigner(t)
	for i := 0; i < 3; i++ { // one per node: only the leader acts
		cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Store: c.Node(i), Signer: s, Every: 50, Interval: 5 * time.Minute, Poll: 5 * time.Millisecond, Now: clock, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cp.Close() })
	}
	l := newLog(t, c.Node((li+1)%3))
	checkpoints := func() []audit.Checkpoint {
		var out []audit.Checkpoint
		audit.Scan(context.Background(), c.Node(li), audit.Filter{}, func(e *audit.Entry) error {
			if e.Checkpoint != nil {
				out = append(out, *e.Checkpoint)
			}
			return nil
		})
		return out
	}
	record := func(n int) {
		for i := 0; i < n; i++ {
			if err := l.Record(context.Background(), loginEvent(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// 60 records: one checkpoint, due by count, covering at least 50.
	record(60)
	waitFor(t, 5*time.Second, func() (bool, string) {
		cps := checkpoints()
		return len(cps) == 1 && cps[0].Seq >= 50, fmt.Sprintf("checkpoints %+v", cps)
	})
	// A few more records: nothing until five minutes pass.
	record(3)
	head, _, _ := c.Node(li).JournalHead()
	advance(4 * time.Minute)
	waitFor(t, time.Second, func() (bool, string) { h, _, _ := c.Node(li).JournalHead(); return h == head, "" })
	if n := len(checkpoints()); n != 1 {
		t.Fatalf("%d checkpoints before the interval passed, want 1", n)
	}
	advance(time.Minute + time.Second)
	waitFor(t, 5*time.Second, func() (bool, string) {
		cps := checkpoints()
		return len(cps) == 2 && cps[1].Seq == head, fmt.Sprintf("checkpoints %+v, head %d", cps, head)
	})
	// Idle: no checkpoint of a checkpoint.
	advance(time.Hour)
	h1, _, _ := c.Node(li).JournalHead()
	advance(time.Hour)
	if h2, _, _ := c.Node(li).JournalHead(); h2 != h1 || len(checkpoints()) != 2 {
		t.Fatalf("idle journal grew from %d to %d with %d checkpoints", h1, h2, len(checkpoints()))
	}
	rep, err := audit.VerifyLive(context.Background(), c.Node(li), audit.VerifyOptions{Keys: s.Keys()})
	if err != nil || rep.Signed != head {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// Every node loading the audit key at once ends with the same key, sealed
// in the store; the public key verifies what it signs.
func TestLoadSignerAgreesAcrossNodes(t *testing.T) {
	c := startCluster(t, 3)
	master, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signers := make([]*audit.Signer, 3)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range signers {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			signers[i], errs[i] = audit.LoadSigner(context.Background(), c.Node(i), master)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	for i := 1; i < 3; i++ {
		if signers[i].KeyID() != signers[0].KeyID() {
			t.Fatalf("node %d loaded key %s, node 0 %s", i, signers[i].KeyID(), signers[0].KeyID())
		}
	}
	keys, err := audit.LoadKeys(context.Background(), c.Node(2))
	if err != nil || keys[signers[0].KeyID()] == nil {
		t.Fatalf("public key: %v, %v", keys, err)
	}
	kv, _, _ := c.Node(0).Get(context.Background(), "sys/audit/key", 0)
	if strings.Contains(string(kv.Value), string(signers[0].Public())) || len(kv.Value) != 32+seal.Overhead {
		t.Fatalf("stored key is not a sealed seed (%d bytes)", len(kv.Value))
	}
	other, _ := seal.GenerateKey()
	if _, err := audit.LoadSigner(context.Background(), c.Node(0), other); err == nil {
		t.Fatal("the audit key opened under another master key")
	}
}
