package profiles_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// A device an administrator revoked cannot be brought back by its owner
// reissuing the same device name; an administrator can clear it. A device
// its owner revoked can be reissued.
func TestReissueAfterAdminRevoke(t *testing.T) {
	e := newEnv(t, 3, "100.64.0.0/24")
	e.putProfile(t, "eng", "engineering")
	alice := session("alice", "engineering")
	peer, _, err := e.stores[0].Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	root := audit.Actor{UserID: "root", Email: "root@example.com", Role: authn.RoleAdmin}
	if err := e.stores[1].RevokePeer(ctx(t), peer.ID, "lost laptop", root); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.stores[2].Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "laptop"})
	if !errors.Is(err, profiles.ErrRevokedByAdmin) {
		t.Fatalf("reissue after an admin's revocation: %v, want ErrRevokedByAdmin", err)
	}
	got, err := e.stores[0].Peer(ctx(t), peer.ID)
	if err != nil || got.Revoked == nil || got.RevokedReason != "lost laptop" {
		t.Fatalf("revoked peer after the refused reissue: %+v, %v: revocation erased", got, err)
	}
	// Sweeping does not forget it.
	e.clock.Advance(48 * 3600e9)
	if _, err := e.stores[0].Sweep(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.stores[2].Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "laptop"}); !errors.Is(err, profiles.ErrRevokedByAdmin) {
		t.Fatalf("reissue after a sweep: %v, want ErrRevokedByAdmin", err)
	}
	if err := e.stores[1].ClearRevocation(ctx(t), peer.ID, root); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.stores[2].Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "laptop"}); err != nil {
		t.Fatalf("reissue after clearing: %v", err)
	}

	// The owner's own revocation does not stick.
	phone, _, err := e.stores[0].Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	self := audit.Actor{UserID: "alice", Role: authn.RoleUser}
	if err := e.stores[0].RevokePeer(ctx(t), phone.ID, "signed out", self); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.stores[1].Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "phone"}); err != nil {
		t.Fatalf("reissue after the owner's revocation: %v", err)
	}
}

// max_devices holds whichever way a device is issued: reissuing an
// existing device under another profile counts against that profile.
func TestMaxDevicesAcrossProfiles(t *testing.T) {
	e := newEnv(t, 1, "100.64.0.0/24")
	for _, p := range []profiles.Profile{
		{Name: "eng", MaxDevices: 5, Groups: []string{"engineering"}},
		{Name: "prod", MaxDevices: 1, Groups: []string{"engineering"}},
	} {
		p.Rules = []profiles.Rule{{CIDR: netip.MustParsePrefix("10.20.0.0/16")}}
		if _, err := e.stores[0].Put(ctx(t), p, nil, admin); err != nil {
			t.Fatal(err)
		}
	}
	alice := session("alice", "engineering")
	for _, d := range []struct{ device, profile string }{{"a", "prod"}, {"b", "eng"}, {"c", "eng"}} {
		if _, _, err := e.stores[0].Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: d.device, Profile: d.profile}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := e.stores[0].Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "d", Profile: "prod"}); !errors.Is(err, profiles.ErrTooManyDevices) {
		t.Fatalf("second new device under prod: %v, want ErrTooManyDevices", err)
	}
	if _, _, err := e.stores[0].Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "b", Profile: "prod"}); !errors.Is(err, profiles.ErrTooManyDevices) {
		t.Fatalf("reissuing device b under prod: %v, want ErrTooManyDevices", err)
	}
	ps, err := e.stores[0].Peers(ctx(t), profiles.PeerFilter{UserID: "alice", Profile: "prod"})
	if err != nil || len(ps) != 1 {
		t.Fatalf("prod devices: %d, %v", len(ps), err)
	}
	// The device already under prod signs in again: allowed.
	if _, _, err := e.stores[0].Issue(ctx(t), alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "a", Profile: "prod"}); err != nil {
		t.Fatalf("same device again: %v", err)
	}
}
