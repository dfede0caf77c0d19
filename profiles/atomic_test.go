package profiles_test

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/profiles"
)

// A profile change and its profile.change record commit together or not
// at all: with the journal unavailable (a closed Log fails every append)
// Put and Delete change nothing; retried, they change and record once,
// the record naming the version the change gave the profile.
func TestProfileChangeAndRecordBothOrNeither(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	node := c.Node(0)
	ctx := t.Context()
	store := func(down bool) *profiles.Store {
		t.Helper()
		l, err := audit.New(audit.Config{Store: node, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RetryFor: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if down {
			l.Close()
		}
		s, err := profiles.New(profiles.Config{Cluster: node, Pool: netip.MustParsePrefix("100.64.0.0/16"), Recorder: l})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	records := func(action string) []audit.Event {
		t.Helper()
		head, _, _ := node.JournalHead()
		recs, err := node.JournalRange(1, head, int(head)+1)
		if err != nil {
			t.Fatal(err)
		}
		var out []audit.Event
		for _, r := range recs {
			var e audit.Event
			if json.Unmarshal(r.Data, &e) == nil && e.Type == audit.TypeProfileChange && e.Action == action {
				out = append(out, e)
			}
		}
		return out
	}
	admin := audit.Actor{UserID: "admin"}
	prof := profiles.Profile{Name: "eng", Groups: []string{"eng"}, Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.0.0.0/16"), Protocol: "tcp"}}}

	if _, err := store(true).Put(ctx, prof, nil, admin); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("put with the journal down: %v, want ErrClosed", err)
	}
	if _, err := store(false).Get(ctx, "eng"); !errors.Is(err, profiles.ErrNotFound) || len(records("profile.put")) != 0 {
		t.Fatalf("put with the journal down: profile %v, %d records: want neither", err, len(records("profile.put")))
	}
	p, err := store(false).Put(ctx, prof, nil, admin)
	if err != nil {
		t.Fatal(err)
	}
	if got := records("profile.put"); len(got) != 1 || got[0].PolicyVersion != p.Version || p.Version == 0 {
		t.Fatalf("put: %d records (%+v), want 1 naming version %d", len(got), got, p.Version)
	}
	if got, err := store(false).Get(ctx, "eng"); err != nil || got.Version != p.Version {
		t.Fatalf("stored profile version %d (%v), want %d", got.Version, err, p.Version)
	}

	if err := store(true).Delete(ctx, "eng", admin); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("delete with the journal down: %v, want ErrClosed", err)
	}
	if _, err := store(false).Get(ctx, "eng"); err != nil || len(records("profile.delete")) != 0 {
		t.Fatalf("delete with the journal down: profile %v, %d records: want neither", err, len(records("profile.delete")))
	}
	if err := store(false).Delete(ctx, "eng", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := store(false).Get(ctx, "eng"); !errors.Is(err, profiles.ErrNotFound) || len(records("profile.delete")) != 1 {
		t.Fatalf("delete: profile %v, %d records: want both", err, len(records("profile.delete")))
	}
	if _, err := node.VerifyJournal(); err != nil {
		t.Fatal(err)
	}
}
