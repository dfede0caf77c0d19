package profiles_test

import (
	"errors"
	"testing"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/profiles"
)

// TestDecodeRecords: the records other packages follow come out typed;
// the keys and JSON stay this package's.
func TestDecodeRecords(t *testing.T) {
	r, err := profiles.DecodeRecord(profiles.PeerPrefix+"p1", []byte(`{"user_id":"alice","public_key":"k"}`), 7)
	if err != nil || r.Peer == nil || r.Peer.ID != "p1" || r.Peer.UserID != "alice" || r.Profile != nil {
		t.Errorf("peer: %+v, %v", r, err)
	}
	r, err = profiles.DecodeRecord(profiles.ProfilePrefix+"eng", []byte(`{"description":"Engineers"}`), 9)
	if err != nil || r.Profile == nil || r.Profile.Name != "eng" || r.Profile.Version != 9 {
		t.Errorf("profile: %+v, %v", r, err)
	}
	if _, err := profiles.DecodeRecord(profiles.PeerPrefix+"p2", []byte(`{`), 1); !errors.Is(err, profiles.ErrInvalid) {
		t.Errorf("undecodable peer: %v", err)
	}
	if r, err := profiles.DecodeRecord("ipam/10.0.0.1", []byte(`x`), 1); err != nil || r.Peer != nil || r.Profile != nil {
		t.Errorf("a key of neither kind: %+v, %v", r, err)
	}
	c, err := profiles.DecodeEvent(cluster.Event{Type: cluster.EventDelete, Key: profiles.PeerPrefix + "p1"})
	if err != nil || c.DeletedPeer != "p1" {
		t.Errorf("peer deletion: %+v, %v", c, err)
	}
	c, err = profiles.DecodeEvent(cluster.Event{Type: cluster.EventDelete, Key: profiles.ProfilePrefix + "eng"})
	if err != nil || c.DeletedProfile != "eng" {
		t.Errorf("profile deletion: %+v, %v", c, err)
	}
}
