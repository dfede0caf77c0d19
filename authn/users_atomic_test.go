package authn_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

// journalEvents returns the events in node's journal that match keep.
func journalEvents(t *testing.T, node *cluster.Node, keep func(*audit.Event) bool) []audit.Event {
	t.Helper()
	head, _, err := node.JournalHead()
	if err != nil {
		t.Fatal(err)
	}
	recs, err := node.JournalRange(1, head, int(head)+1)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for _, r := range recs {
		var e audit.Event
		if json.Unmarshal(r.Data, &e) == nil && keep(&e) {
			out = append(out, e)
		}
	}
	return out
}

func newAuditLog(t *testing.T, node *cluster.Node) *audit.Log {
	t.Helper()
	l, err := audit.New(audit.Config{Store: node, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RetryFor: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// A user change and its audit record commit together or not at all. With
// the journal unavailable (the Log closed: its appends fail as they do
// when the leader is lost between two proposals or the journal is full),
// the change is refused and nothing is stored; once the journal is back,
// the retried change is made and recorded once.
func TestUserChangeAndRecordBothOrNeither(t *testing.T) {
	const iss = "https://idp.example.com"
	tests := []struct {
		name    string
		act     func(ctx context.Context, u *authn.Users) error
		changed func(u authn.User, ok bool) bool
		record  func(e *audit.Event) bool
	}{
		{"disable",
			func(ctx context.Context, u *authn.Users) error {
				return u.SetDisabled(ctx, "alice", true, audit.Actor{UserID: "admin"}, authn.Source{Addr: "192.0.2.9"})
			},
			func(u authn.User, ok bool) bool { return ok && u.Disabled },
			func(e *audit.Event) bool { return e.Type == audit.TypeUserDisable && e.Target.User == "alice" }},
		{"provision",
			func(ctx context.Context, u *authn.Users) error {
				_, err := u.Provision(ctx, authn.Identity{Issuer: iss, Subject: "bob", Email: "bob@example.com", Groups: []string{"eng"}}, "SCIM")
				return err
			},
			func(_ authn.User, ok bool) bool { return ok },
			func(e *audit.Event) bool {
				return e.Type == audit.TypeAdmin && e.Action == authn.ActionProvision && e.Target.User == authn.UserKey(iss, "bob")
			}},
		{"regroup",
			func(ctx context.Context, u *authn.Users) error {
				_, err := u.Provision(ctx, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"ops"}}, "SCIM")
				return err
			},
			func(u authn.User, ok bool) bool { return ok && len(u.Groups) == 1 && u.Groups[0] == "ops" },
			func(e *audit.Event) bool {
				return e.Type == audit.TypeAdmin && e.Action == authn.ActionProvision && e.Target.User == "alice"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
			node := c.Node(0)
			ctx := t.Context()
			setup := authn.NewUsers(node, nil, newAuditLog(t, node))
			if _, err := setup.Upsert(ctx, authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"eng"}}); err != nil {
				t.Fatal(err)
			}
			userOf := func() (authn.User, bool) {
				id := "alice"
				if tt.name == "provision" {
					id = authn.UserKey(iss, "bob")
				}
				u, ok, err := setup.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				return u, ok
			}

			down := newAuditLog(t, node)
			down.Close()
			err := tt.act(ctx, authn.NewUsers(node, nil, down))
			changed, recorded := tt.changed(userOf()), len(journalEvents(t, node, tt.record))
			if err == nil || changed || recorded != 0 {
				t.Fatalf("journal down: err %v, changed %v, %d records: want an error and neither change nor record", err, changed, recorded)
			}
			if !errors.Is(err, audit.ErrClosed) {
				t.Errorf("err %v, want one wrapping audit.ErrClosed", err)
			}

			if err := tt.act(ctx, authn.NewUsers(node, nil, newAuditLog(t, node))); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if !tt.changed(userOf()) {
				t.Fatal("retry: change not made")
			}
			if n := len(journalEvents(t, node, tt.record)); n != 1 {
				t.Fatalf("retry: %d records, want 1", n)
			}
			if _, err := node.VerifyJournal(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Suspend commits the caller's account of it with the suspension: both or
// neither.
func TestSuspendCommitsItsRecord(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	node := c.Node(0)
	ctx := t.Context()
	users := authn.NewUsers(node, nil, newAuditLog(t, node))
	if _, err := users.Upsert(ctx, authn.Identity{UserID: "carol"}); err != nil {
		t.Fatal(err)
	}
	ev := audit.Event{Type: audit.TypeLogin, Action: authn.ActionRevalidate, Outcome: audit.Failure,
		Target: audit.Target{User: "carol"}, Reason: authn.ReasonRevalidateRevoked}
	mine := func(e *audit.Event) bool { return e.Action == authn.ActionRevalidate && e.Target.User == "carol" }
	suspended := func() bool {
		u, _, err := users.Get(ctx, "carol")
		if err != nil {
			t.Fatal(err)
		}
		return u.Suspended != ""
	}

	down := newAuditLog(t, node)
	down.Close()
	if err := authn.NewUsers(node, nil, down).Suspend(ctx, "carol", "refused", "idp", ev); err == nil || suspended() || len(journalEvents(t, node, mine)) != 0 {
		t.Fatalf("journal down: err %v, suspended %v: want an error and neither", err, suspended())
	}
	if err := users.Suspend(ctx, "carol", "refused", "idp", ev); err != nil {
		t.Fatal(err)
	}
	if !suspended() || len(journalEvents(t, node, mine)) != 1 {
		t.Fatalf("suspended %v with %d records, want both", suspended(), len(journalEvents(t, node, mine)))
	}
}

// The leader is lost while administrators disable users through a
// follower. Whatever each call answered, every user is afterwards either
// disabled with a user.disable record or neither (a change and its record
// are one Raft entry: there is no moment between them to lose the leader
// in); retried, the failed calls make both.
func TestDisableAcrossLeaderLossBothOrNeither(t *testing.T) {
	// A write timeout about as long as an election, so that some calls
	// may fail; the calls around the loss retry.
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, WriteTimeout: 500 * time.Millisecond})
	leader := c.Leader(10 * time.Second)
	host := c.Node((leader + 1) % 3)
	clustertest.WaitFor(t, 10*time.Second, "atomic journal transactions", func() error {
		if !host.AtomicJournalTxn() {
			return errors.New("not every member advertises it")
		}
		return nil
	})
	users := authn.NewUsers(host, nil, newAuditLog(t, host))
	ctx := t.Context()
	const n = 12
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%02d", i)
		clustertest.WaitFor(t, 20*time.Second, "creating "+ids[i], func() error {
			_, err := users.Upsert(ctx, authn.Identity{UserID: ids[i]})
			return err
		})
	}
	check := func(when string) map[string]bool {
		t.Helper()
		both := map[string]bool{}
		for _, id := range ids {
			var u authn.User
			clustertest.WaitFor(t, 20*time.Second, "reading "+id, func() error {
				var ok bool
				var err error
				u, ok, err = users.Get(ctx, id) // linearizable: the host has applied every commit
				if err == nil && !ok {
					err = authn.ErrUnknownUser
				}
				return err
			})
			recs := len(journalEvents(t, host, func(e *audit.Event) bool { return e.Type == audit.TypeUserDisable && e.Target.User == id }))
			if u.Disabled != (recs > 0) {
				t.Errorf("%s: %s disabled %v with %d user.disable records", when, id, u.Disabled, recs)
			}
			both[id] = u.Disabled
		}
		return both
	}

	errs := make([]error, n)
	var wg sync.WaitGroup
	started := make(chan struct{}, n)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started <- struct{}{}
			errs[i] = users.SetDisabled(ctx, ids[i], true, audit.Actor{UserID: "admin"}, authn.Source{Addr: "192.0.2.9"})
		}()
	}
	for range n / 2 {
		<-started
	}
	c.Stop(leader)
	wg.Wait()
	c.Leader(15 * time.Second)
	both := check("after the leader loss")
	failed := 0
	for i, err := range errs {
		if err == nil && !both[ids[i]] {
			t.Errorf("%s: SetDisabled succeeded, user not disabled", ids[i])
		}
		if err != nil {
			failed++
		}
	}
	t.Logf("%d of %d disables failed across the leader loss", failed, n)
	for i, err := range errs {
		if err == nil {
			continue
		}
		clustertest.WaitFor(t, 20*time.Second, "retrying "+ids[i], func() error {
			return users.SetDisabled(ctx, ids[i], true, audit.Actor{UserID: "admin"}, authn.Source{Addr: "192.0.2.9"})
		})
	}
	for id, ok := range check("after the retries") {
		if !ok {
			t.Errorf("%s not disabled after the retries", id)
		}
	}
}
