package scim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/scim"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// switchLog is an audit.Journaler whose Log the test replaces: a closed
// Log fails every append, as a journal does when the leader is lost
// between two proposals or the journal is full.
type switchLog struct{ p atomic.Pointer[audit.Log] }

func (s *switchLog) Record(ctx context.Context, e audit.Event) error {
	return s.p.Load().Record(ctx, e)
}
func (s *switchLog) Prepare(ctx context.Context, e audit.Event) (cluster.TxnRecord, error) {
	return s.p.Load().Prepare(ctx, e)
}
func (s *switchLog) Committed(n int, err error) { s.p.Load().Committed(n, err) }

func newLog(t *testing.T, node *cluster.Node) *audit.Log {
	t.Helper()
	l, err := audit.New(audit.Config{Store: node, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RetryFor: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// A SCIM push that deactivates a user while the journal cannot take its
// record fails (500) and disables no one; the identity provider's retry
// then disables the user and records it. Before, the first push left the
// user disabled with no user.disable record, and the retry, finding
// nothing to change, recorded nothing: the change never reached the
// journal.
func TestSCIMDisableRetriedAfterJournalFailureIsRecorded(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	node := c.Node(0)
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	rec := &switchLog{}
	rec.p.Store(newLog(t, node))
	users := authn.NewUsers(node, nil, rec)
	svc, err := scim.New(scim.Config{Store: node, Key: key, Users: users, Recorder: rec, Issuer: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := svc.RotateToken(t.Context(), audit.Actor{UserID: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(scim.PathPrefix+"/", svc)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &env{svc: svc, users: users, srv: srv, token: tok}

	status, got := e.do(t, http.MethodPost, "/Users", []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"d@example.com","externalId":"d","active":true}`), tok.Reveal())
	if status != 201 {
		t.Fatalf("create: %d %s", status, got)
	}
	var res struct{ ID string }
	json.Unmarshal(got, &res)
	deactivate := func() (int, []byte) {
		return e.do(t, http.MethodPatch, "/Users/"+res.ID,
			[]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`), tok.Reveal())
	}
	state := func() string {
		u, _, err := users.Get(t.Context(), userKey("d"))
		if err != nil {
			t.Fatal(err)
		}
		head, _, _ := node.JournalHead()
		recs, err := node.JournalRange(1, head, int(head)+1)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range recs {
			var ev audit.Event
			if json.Unmarshal(r.Data, &ev) == nil && ev.Type == audit.TypeUserDisable && ev.Target.User == userKey("d") {
				n++
			}
		}
		return fmt.Sprintf("disabled %v, %d user.disable records", u.Disabled, n)
	}

	rec.p.Load().Close()
	if status, got := deactivate(); status != http.StatusInternalServerError {
		t.Errorf("push with the journal down: %d %s, want 500", status, got)
	}
	if s := state(); s != "disabled false, 0 user.disable records" {
		t.Fatalf("after the failed push: %s; want neither", s)
	}
	rec.p.Store(newLog(t, node))
	if status, got := deactivate(); status != 200 {
		t.Fatalf("retried push: %d %s", status, got)
	}
	if s := state(); s != "disabled true, 1 user.disable records" {
		t.Fatalf("after the retried push: %s; want both", s)
	}
}
