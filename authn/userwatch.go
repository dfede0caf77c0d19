package authn

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/ferryvpn/ferry/cluster"
)

// UserChange is one committed change to a user record.
type UserChange struct {
	// ID is the user's ID.
	ID string
	// User is the record after the change; nil when it was deleted.
	User *User
}

// UserWatch follows committed changes to user records, in commit order.
// It is for one goroutine: Close it from the goroutine that calls Next.
type UserWatch struct {
	n *cluster.Node
	w *cluster.Watcher
}

// Watch starts following user records. It returns every user at the
// revision where the watch starts; Next returns what changed after.
func (u *Users) Watch() (*UserWatch, []User, error) {
	w, kvs, _, err := u.store.Watch(prefixUsers)
	if err != nil {
		return nil, nil, fmt.Errorf("watching users: %w", err)
	}
	users, err := decodeUsers(kvs)
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	return &UserWatch{n: u.store, w: w}, users, nil
}

func decodeUsers(kvs []cluster.KV) ([]User, error) {
	out := make([]User, 0, len(kvs))
	for _, kv := range kvs {
		rec, err := decodeRecord[userRecord](kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, rec.user())
	}
	return out, nil
}

// Next blocks until users change and returns the changes. When the store
// was replaced by a snapshot, reset is true and all holds every user: the
// caller starts over from it. Records that cannot be decoded are skipped
// (they are refused wherever they are read).
func (w *UserWatch) Next(ctx context.Context) (changes []UserChange, reset bool, all []User, err error) {
	evs, err := w.w.Next(ctx)
	if err != nil {
		return nil, false, nil, err
	}
	for _, e := range evs {
		if e.Type == cluster.EventReset {
			w.w.Close()
			nw, kvs, _, err := w.n.Watch(prefixUsers)
			if err != nil {
				return nil, false, nil, fmt.Errorf("watching users: %w", err)
			}
			w.w = nw
			all, err := decodeUsers(kvs)
			return nil, true, all, err
		}
	}
	for _, e := range evs {
		id, err := url.PathUnescape(strings.TrimPrefix(e.Key, prefixUsers))
		if err != nil {
			continue
		}
		c := UserChange{ID: id}
		if e.Type == cluster.EventPut {
			rec, err := decodeRecord[userRecord](e.Key, e.Value)
			if err != nil {
				continue
			}
			u := rec.user()
			c.User = &u
		}
		changes = append(changes, c)
	}
	return changes, false, nil, nil
}

// Close stops the watch; it is idempotent. Call it from the goroutine
// that calls Next.
func (w *UserWatch) Close() { w.w.Close() }
