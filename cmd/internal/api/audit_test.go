package api_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
)

func TestAuditAPI(t *testing.T) {
	s := apitest.Start(t)
	admin := clientFor(t, s, s.Admin(t))
	alice := clientFor(t, s, s.Token(t, authn.Identity{UserID: "alice", Groups: []string{"engineering"}}))
	if _, err := admin.CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	// Non-admins get nothing.
	if err := alice.AuditRecords(bg(t), client.AuditQuery{}, &bytes.Buffer{}); status(err) != http.StatusForbidden {
		t.Fatalf("non-admin export: %v", err)
	}
	if _, err := alice.AuditVerify(bg(t)); status(err) != http.StatusForbidden {
		t.Fatalf("non-admin verify: %v", err)
	}
	if err := admin.AuditRecords(bg(t), client.AuditQuery{Since: "yesterday"}, &bytes.Buffer{}); status(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "since") {
		t.Fatalf("bad filter: %v", err)
	}

	// An export verifies offline with the published key; an edited one does not.
	var export bytes.Buffer
	if err := admin.AuditRecords(bg(t), client.AuditQuery{}, &export); err != nil {
		t.Fatal(err)
	}
	keyJSON, err := admin.AuditKey(bg(t))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := audit.ParseKeys(keyJSON)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyFile(bytes.NewReader(export.Bytes()), audit.VerifyOptions{Keys: keys, RequireTrailer: true})
	if err != nil || rep.Events < 3 {
		t.Fatalf("export verification: %+v %v\n%s", rep, err, export.String())
	}
	if !strings.Contains(export.String(), "profile.change") && !strings.Contains(export.String(), "profile.put") {
		t.Fatalf("export lacks the profile change:\n%s", export.String())
	}
	edited := strings.Replace(export.String(), "alice", "mallory", 1)
	if _, err := audit.VerifyFile(strings.NewReader(edited), audit.VerifyOptions{Keys: keys, RequireTrailer: true}); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("edited export: %v", err)
	}
	// Filters: only auth events.
	var logins bytes.Buffer
	if err := admin.AuditRecords(bg(t), client.AuditQuery{Types: []string{"auth.*"}, Format: "cef"}, &logins); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(logins.String(), "CEF:0|") || strings.Contains(logins.String(), "profile") {
		t.Fatalf("auth.* as CEF:\n%s", logins.String())
	}

	// Following sees a new event as it commits.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pr := &lineWaiter{want: "bob", found: make(chan struct{})}
	done := make(chan error, 1)
	head, _, _ := s.Cluster.Node(0).JournalHead()
	go func() { done <- admin.AuditRecords(ctx, client.AuditQuery{FromSeq: head + 1, Follow: true}, pr) }()
	s.Token(t, authn.Identity{UserID: "bob"})
	select {
	case <-pr.found:
	case err := <-done:
		t.Fatalf("follow ended: %v", err)
	case <-ctx.Done():
		t.Fatal("followed stream never showed bob's sign-in")
	}
	cancel()
	<-done

	v, err := admin.AuditVerify(bg(t))
	if err != nil || !v.OK || v.Records == 0 {
		t.Fatalf("live verify: %+v %v", v, err)
	}
}

// lineWaiter signals once the stream contains want.
type lineWaiter struct {
	buf   bytes.Buffer
	want  string
	found chan struct{}
	done  bool
}

func (l *lineWaiter) Write(p []byte) (int, error) {
	l.buf.Write(p)
	if !l.done && strings.Contains(l.buf.String(), l.want) {
		l.done = true
		close(l.found)
	}
	return len(p), nil
}
