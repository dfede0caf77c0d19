package profiles

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ferryvpn/ferry/cluster"
)

// RecordPrefixes are the store prefixes of the records other packages
// follow (the data plane): profiles and peers. Watch them with
// cluster.Node.Watch and decode what arrives with DecodeRecord and
// DecodeEvent; the keys and JSON below them are this package's.
var RecordPrefixes = []string{ProfilePrefix, PeerPrefix}

// Record is one stored profile or peer, decoded.
type Record struct {
	// Profile is set for a profile record (Name and Version filled in
	// from the key and the store's version).
	Profile *Profile
	// Peer is set for a peer record (ID filled in from the key when the
	// stored value lacks it).
	Peer *Peer
}

// RecordChange is one committed change of a profile or peer: a new or updated
// record, or a deletion naming what went.
type RecordChange struct {
	// Record is the new value; empty for a deletion.
	Record Record
	// DeletedProfile or DeletedPeer names a deleted record.
	DeletedProfile, DeletedPeer string
}

// DecodeRecord decodes one profile or peer record as stored under key at
// version. A key outside RecordPrefixes gives an empty Record and no
// error; a value that does not decode gives an error naming the record.
func DecodeRecord(key string, value []byte, version uint64) (Record, error) {
	if id, ok := strings.CutPrefix(key, PeerPrefix); ok {
		var p Peer
		if err := json.Unmarshal(value, &p); err != nil {
			return Record{}, fmt.Errorf("%w: peer %s: %v", ErrInvalid, id, err)
		}
		if p.ID == "" {
			p.ID = id
		}
		return Record{Peer: &p}, nil
	}
	if name, ok := strings.CutPrefix(key, ProfilePrefix); ok {
		var p Profile
		if err := json.Unmarshal(value, &p); err != nil {
			return Record{}, fmt.Errorf("%w: profile %s: %v", ErrInvalid, name, err)
		}
		p.Name, p.Version = name, version
		return Record{Profile: &p}, nil
	}
	return Record{}, nil
}

// DecodeEvent decodes one committed change under RecordPrefixes.
func DecodeEvent(ev cluster.Event) (RecordChange, error) {
	switch ev.Type {
	case cluster.EventPut:
		r, err := DecodeRecord(ev.Key, ev.Value, ev.Revision)
		return RecordChange{Record: r}, err
	case cluster.EventDelete:
		if id, ok := strings.CutPrefix(ev.Key, PeerPrefix); ok {
			return RecordChange{DeletedPeer: id}, nil
		}
		if name, ok := strings.CutPrefix(ev.Key, ProfilePrefix); ok {
			return RecordChange{DeletedProfile: name}, nil
		}
	}
	return RecordChange{}, nil
}

// IsPeerPrefix and IsProfilePrefix tell the two RecordPrefixes apart.
func IsPeerPrefix(prefix string) bool { return prefix == PeerPrefix }

// IsProfilePrefix reports whether prefix is the profiles' prefix.
func IsProfilePrefix(prefix string) bool { return prefix == ProfilePrefix }
