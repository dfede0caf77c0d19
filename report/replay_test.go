package report

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/profiles"
)

// TestReplayRemovedPort: a proposed change that removes a port names
// exactly the users who used it as "would be denied", and a denied attempt
// the change admits as "would be allowed".
func TestReplayRemovedPort(t *testing.T) {
	j := &memJournal{}
	for h := range 30 {
		at := t0.Add(time.Duration(h) * time.Hour)
		j.add(t, flowEv(at, "alice", "laptop", "eng", "10.0.4.17", 5432, false, 2, 100, 1000))
		j.add(t, flowEv(at, "alice", "laptop", "eng", "10.0.4.17", 443, false, 1, 100, 1000))
		j.add(t, flowEv(at, "bob", "phone", "eng", "10.0.4.17", 443, false, 1, 10, 20))
		if h%3 == 0 {
			j.add(t, flowEv(at, "carol", "desk", "eng", "10.0.4.18", 5432, false, 1, 10, 20))
		}
		j.add(t, flowEv(at, "dave", "pc", "ops", "10.0.4.17", 5432, false, 1, 10, 20)) // another profile
		j.add(t, flowEv(at, "bob", "phone", "eng", "10.0.9.1", 22, true, 2, 0, 0))
	}
	r := openRollup(t, j, filepath.Join(t.TempDir(), "r.db"))
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Today: tcp 10.0.4.0/24 443 and 5432. Proposed: 443 only, and ssh to
	// 10.0.9.1.
	proposed := profiles.Profile{Name: "eng", Rules: []profiles.Rule{
		{CIDR: netip.MustParsePrefix("10.0.4.0/24"), Protocol: profiles.ProtoTCP, Ports: []profiles.PortRange{{From: 443, To: 443}}},
		{CIDR: netip.MustParsePrefix("10.0.9.1/32"), Protocol: profiles.ProtoTCP, Ports: []profiles.PortRange{{From: 22, To: 22}}},
	}}
	rep, err := r.Replay(context.Background(), proposed, t0.Add(-time.Hour), t0.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var deny, allow []string
	for _, row := range rep.WouldDeny {
		deny = append(deny, fmt.Sprintf("%s %s:%d flows=%d", row.User, row.Dst, row.Port, row.Flows))
	}
	for _, row := range rep.WouldAllow {
		allow = append(allow, fmt.Sprintf("%s %s:%d denied=%d", row.User, row.Dst, row.Port, row.Denied))
	}
	if want := []string{"alice 10.0.4.17:5432 flows=60", "carol 10.0.4.18:5432 flows=10"}; !reflect.DeepEqual(deny, want) {
		t.Errorf("would be denied:\n got %q\nwant %q", deny, want)
	}
	if want := []string{"bob 10.0.9.1:22 denied=60"}; !reflect.DeepEqual(allow, want) {
		t.Errorf("would be allowed:\n got %q\nwant %q", allow, want)
	}
	// The unchanged profile changes nothing.
	same := proposed
	same.Rules = []profiles.Rule{{CIDR: netip.MustParsePrefix("10.0.4.0/24"), Protocol: profiles.ProtoTCP,
		Ports: []profiles.PortRange{{From: 443, To: 443}, {From: 5432, To: 5432}}}}
	rep, err = r.Replay(context.Background(), same, time.Time{}, time.Time{})
	if err != nil || len(rep.WouldDeny) != 0 || len(rep.WouldAllow) != 0 {
		t.Errorf("today's rules: %+v, %v", rep, err)
	}
}
