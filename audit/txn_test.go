package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/audit/auditfile"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// Commit stores a change and its audit record in one transaction: both
// when the compares hold, neither when they fail or the Log cannot take
// the record. The record is exactly what Record would have appended.
func TestCommitBothOrNeither(t *testing.T) {
	c := startCluster(t, 1)
	node := c.Node(0)
	l := newLog(t, node)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	journal := func() []cluster.Record {
		t.Helper()
		head, _, err := node.JournalHead()
		if err != nil {
			t.Fatal(err)
		}
		recs, err := node.JournalRange(1, head, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	change := audit.Event{Type: audit.TypeProfileChange, Action: "profile.put", Outcome: audit.Success,
		Target: audit.Target{Profile: "eng"}, PolicyVersion: audit.TxnRevision,
		// A control character takes the canonical form's slow path.
		Details: map[string]string{"note": "a\x01b <c>"}}

	res, err := audit.Commit(ctx, node, l, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent("p/eng")},
		Ops:      []cluster.Op{cluster.Put("p/eng", []byte("v1"))},
	}, change)
	if err != nil || !res.Succeeded || res.Journal.First == 0 || res.Journal.First != res.Journal.Last {
		t.Fatalf("commit: %+v, %v", res, err)
	}
	recs := journal()
	if len(recs) != 1 {
		t.Fatalf("journal holds %d records, want 1", len(recs))
	}
	var got audit.Event
	if err := json.Unmarshal(recs[0].Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.PolicyVersion != res.Revision || got.ID == "" || got.Time.IsZero() || got.Node == "" || got.Details["note"] != "a\x01b <c>" {
		t.Fatalf("recorded %+v, want policy version %d and ID, time, node filled in", got, res.Revision)
	}
	if canon, err := auditfile.Canonical(recs[0].Data); err != nil || !bytes.Equal(canon, recs[0].Data) {
		t.Fatalf("record not in canonical form:\n%s\n%s (%v)", recs[0].Data, canon, err)
	}

	// Prepare encodes exactly as Record appends.
	same := got
	same.ID = "0123456789abcdef0123456789abcdef"
	rc, err := l.Append(ctx, same)
	if err != nil {
		t.Fatal(err)
	}
	prep, err := l.Prepare(ctx, same)
	if err != nil {
		t.Fatal(err)
	}
	if recs = journal(); !bytes.Equal(recs[rc.Seq-1].Data, prep.Data) || string(prep.Key) != same.ID || prep.RevisionAt != 0 {
		t.Fatalf("Prepare differs from Record:\n%s\n%s", prep.Data, recs[rc.Seq-1].Data)
	}

	// Compares fail: neither.
	before := len(journal())
	res, err = audit.Commit(ctx, node, l, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent("p/eng")},
		Ops:      []cluster.Op{cluster.Put("p/eng", []byte("v2"))},
	}, change)
	if err != nil || res.Succeeded || len(journal()) != before {
		t.Fatalf("failed compare: %+v, %v, journal %d records (was %d)", res, err, len(journal()), before)
	}

	// The Log is gone: neither, and an error.
	l.Close()
	_, err = audit.Commit(ctx, node, l, cluster.Txn{Ops: []cluster.Op{cluster.Put("p/ops", []byte("v"))}}, change)
	if !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("commit with a closed log: %v, want ErrClosed", err)
	}
	if _, ok, _ := node.Get(ctx, "p/ops", cluster.Linearizable); ok || len(journal()) != before {
		t.Fatal("a change committed without its record")
	}
	if _, err := node.VerifyJournal(); err != nil {
		t.Fatal(err)
	}
}

// An administrator's sink change commits with its record, or neither
// happens.
func TestSinkChangeBothOrNeither(t *testing.T) {
	c := startCluster(t, 1)
	node := c.Node(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	admin := audit.Actor{UserID: "admin"}
	spec := audit.SinkSpec{Name: "siem", Type: "syslog", Addr: "192.0.2.1:6514"}
	records := func(action string) int {
		t.Helper()
		head, _, _ := node.JournalHead()
		recs, err := node.JournalRange(1, head, int(head)+1)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range recs {
			var e audit.Event
			if json.Unmarshal(r.Data, &e) == nil && e.Action == action && e.Details["sink"] == "siem" {
				n++
			}
		}
		return n
	}
	exists := func() bool {
		_, err := (&audit.SinkStore{Node: node, Key: key}).Get(ctx, "siem")
		return err == nil
	}

	down := newLog(t, node)
	down.Close()
	if err := (&audit.SinkStore{Node: node, Key: key, Recorder: down}).AddBy(ctx, spec, admin); !errors.Is(err, audit.ErrClosed) || exists() || records("audit.sink.add") != 0 {
		t.Fatalf("add with the journal down: %v, exists %v, %d records: want neither", err, exists(), records("audit.sink.add"))
	}
	store := &audit.SinkStore{Node: node, Key: key, Recorder: newLog(t, node)}
	if err := store.AddBy(ctx, spec, admin); err != nil || !exists() || records("audit.sink.add") != 1 {
		t.Fatalf("add: %v, exists %v, %d records: want both", err, exists(), records("audit.sink.add"))
	}
	if err := (&audit.SinkStore{Node: node, Key: key, Recorder: down}).RemoveBy(ctx, "siem", admin); err == nil || !exists() || records("audit.sink.remove") != 0 {
		t.Fatalf("remove with the journal down: %v, exists %v: want neither", err, exists())
	}
	if err := store.RemoveBy(ctx, "siem", admin); err != nil || exists() || records("audit.sink.remove") != 1 {
		t.Fatalf("remove: %v, exists %v, %d records: want both", err, exists(), records("audit.sink.remove"))
	}
}
