package api_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
)

func TestClusterAPI(t *testing.T) {
	s := apitest.Start(t)
	admin := clientFor(t, s, s.Admin(t))
	alice := clientFor(t, s, s.Token(t, authn.Identity{UserID: "alice"}))
	if _, err := alice.ClusterStatus(bg(t)); status(err) != http.StatusForbidden {
		t.Fatalf("non-admin status: %v", err)
	}
	if err := alice.Backup(bg(t), &bytes.Buffer{}); status(err) != http.StatusForbidden {
		t.Fatalf("non-admin backup: %v", err)
	}
	st, err := admin.ClusterStatus(bg(t))
	if err != nil || !st.Ready || len(st.Members) != 1 || !st.Members[0].Leader {
		t.Fatalf("status: %+v %v", st, err)
	}
	if err := admin.RemoveMember(bg(t), "nobody"); status(err) != http.StatusNotFound {
		t.Fatalf("removing a stranger: %v", err)
	}
	// A backup, then changes, then the backup restored: the changes are gone.
	if _, err := admin.CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if err := admin.Backup(bg(t), &backup); err != nil || backup.Len() == 0 {
		t.Fatalf("backup: %d bytes, %v", backup.Len(), err)
	}
	if err := admin.DeleteProfile(bg(t), "eng"); err != nil {
		t.Fatal(err)
	}
	damaged := append([]byte(nil), backup.Bytes()...)
	damaged[len(damaged)/2] ^= 1
	if err := admin.Restore(bg(t), bytes.NewReader(damaged)); status(err) != http.StatusBadRequest {
		t.Fatalf("damaged backup: %v", err)
	}
	if _, err := admin.Profile(bg(t), "eng"); status(err) != http.StatusNotFound {
		t.Fatalf("a damaged backup changed state: %v", err)
	}
	if err := admin.Restore(bg(t), bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatal(err)
	}
	if p, err := admin.Profile(bg(t), "eng"); err != nil || p.Name != "eng" {
		t.Fatalf("after restore: %+v %v", p, err)
	}
}
