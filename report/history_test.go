package report

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// A profile changed before profile events carried its rules is named as
// unknown at a time it was in force, not silently left out; deleted, it
// is gone.
func TestEntitlementsAtUnknownProfile(t *testing.T) {
	j := &memJournal{}
	j.add(t, audit.Event{ID: "p1", Time: t0, Type: audit.TypeProfileChange, Action: "profile.put", Outcome: audit.Success,
		Target: audit.Target{Profile: "legacy"}, PolicyVersion: 3})
	j.add(t, audit.Event{ID: "p2", Time: t0.Add(2 * time.Hour), Type: audit.TypeProfileChange, Action: "profile.delete", Outcome: audit.Success,
		Target: audit.Target{Profile: "legacy"}, PolicyVersion: 4})
	r := openRollup(t, j, filepath.Join(t.TempDir(), "r.db"))
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	entitle := func(authn.User, *profiles.Profile) (bool, string, string) { return true, "user", "" }
	for _, tc := range []struct {
		at   time.Time
		want []string
	}{{t0.Add(time.Hour), []string{"legacy"}}, {t0.Add(3 * time.Hour), []string{}}} {
		rep, err := r.EntitlementsAt(context.Background(), tc.at, entitle, time.Time{}, time.Time{}, false)
		if err != nil || !reflect.DeepEqual(rep.Unknown, tc.want) {
			t.Errorf("at %s: unknown %q, %v; want %q", tc.at, rep.Unknown, err, tc.want)
		}
	}
}
