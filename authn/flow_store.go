package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferryvpn/ferry/cluster"
)

// Sign-in state in the cluster store, so that any node can serve any step.
// Keys hold SHA-256 hashes of the one-time values, never the values:
//
//	signin/state/<sha256(state)>   the login from /login until /callback
//	signin/step/<sha256(ticket)>   the login after OIDC, until the second factor
//	signin/code/<sha256(code)>     a desktop loopback code, until redeemed
//
// A step is used by replacing its record with a tombstone in a transaction
// that compares the version read, so of two requests using the same value
// (on any nodes) exactly one wins, and a later replay reads as a replay.
const (
	prefixSignin      = "signin/"
	prefixSigninState = prefixSignin + "state/"
	prefixSigninStep  = prefixSignin + "step/"
	prefixSigninCode  = prefixSignin + "code/"
)

// Lifetimes of sign-in state.
const (
	// loginTTL bounds a login from /login to the second factor; it answers
	// stolen or abandoned state being usable later.
	loginTTL = 10 * time.Minute
	// codeTTL bounds a loopback code: the client redeems it at once, so a
	// code seen later by anyone else is useless.
	codeTTL = 60 * time.Second
	// tombstoneTTL is how long a used value is remembered, so a replay is
	// told apart from a forgery in the audit log.
	tombstoneTTL = loginTTL
)

const signinRecordVersion = 1

// desktopRequest is what a desktop client asked for at /login (RFC 8252).
type desktopRequest struct {
	RedirectURI string `json:"redirect_uri"`
	State       string `json:"state"`
	Challenge   string `json:"code_challenge"` // S256
}

// signinRecord is one stored sign-in step.
type signinRecord struct {
	V        int       `json:"v"`
	Consumed bool      `json:"consumed,omitempty"` // a tombstone
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`

	// The OIDC step.
	BrowserHash string `json:"browser_hash,omitempty"` // of the login cookie
	NonceHash   string `json:"nonce_hash,omitempty"`
	Verifier    string `json:"verifier,omitempty"` // PKCE verifier for the IdP

	// The request, carried through every step.
	Desktop *desktopRequest `json:"desktop,omitempty"`
	Admin   bool            `json:"admin,omitempty"`
	// Return is a browser's return address (checkReturn), "" for home.
	Return string `json:"return,omitempty"`

	// After OIDC.
	Identity *Identity `json:"identity,omitempty"`
	// Method is the second factor once it passed (step records waiting
	// for the person to read their recovery codes, and loopback codes).
	Method string `json:"mfa_method,omitempty"`
	// Codes are the new recovery codes of an enrollment this step
	// confirmed, sealed for the browser (see sealCodes), until shown.
	Codes []byte `json:"codes,omitempty"`
}

func (r *signinRecord) check() error {
	switch {
	case r.V != signinRecordVersion:
		return fmt.Errorf("format version %d, want %d", r.V, signinRecordVersion)
	case r.Expires.IsZero():
		return errors.New("expires: missing")
	case r.Desktop != nil && (r.Desktop.RedirectURI == "" || r.Desktop.Challenge == ""):
		return errors.New("desktop: incomplete")
	case r.Return != "" && r.Desktop != nil:
		return errors.New("return: set for a desktop sign-in")
	}
	if r.Return != "" {
		if _, ok := checkReturn(r.Return); !ok {
			return errors.New("return: not a path on this server")
		}
	}
	return nil
}

// tombstone returns the record that replaces a used one.
func tombstone(now time.Time) *signinRecord {
	return &signinRecord{V: signinRecordVersion, Consumed: true, Created: now, Expires: now.Add(tombstoneTTL)}
}

func encodeSignin(r *signinRecord) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("authn: encoding sign-in record: %v", err))
	}
	return b
}

// loadSignin reads key linearizably: the previous step may have been
// written through another node a moment ago.
func (f *Flow) loadSignin(ctx context.Context, key string) (*signinRecord, uint64, bool, error) {
	kv, ok, err := f.store.Get(ctx, key, cluster.Linearizable)
	if err != nil {
		return nil, 0, false, fmt.Errorf("reading sign-in state: %w", err)
	}
	if !ok {
		return nil, 0, false, nil
	}
	var r signinRecord
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return nil, 0, false, fmt.Errorf("%w: %s: invalid JSON", ErrCorrupt, key)
	}
	if err := r.check(); err != nil {
		return nil, 0, false, fmt.Errorf("%w: %s: %s", ErrCorrupt, key, err.Error())
	}
	return &r, kv.Version, true, nil
}

// createSignin stores a new record at a fresh random key.
func (f *Flow) createSignin(ctx context.Context, key string, r *signinRecord) error {
	res, err := f.store.Txn(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent(key)},
		Ops:      []cluster.Op{cluster.Put(key, encodeSignin(r))},
	})
	if err != nil {
		return fmt.Errorf("storing sign-in state: %w", err)
	}
	if !res.Succeeded {
		// 256 random bits collided: the random source is broken.
		return errors.New("authn: sign-in state key already exists")
	}
	return nil
}

// swapSignin replaces key (read at version) with next, and applies
// creates (each at a fresh key), all or nothing. It reports false when
// key changed since it was read: someone else used it first.
func (f *Flow) swapSignin(ctx context.Context, key string, version uint64, next *signinRecord, creates map[string]*signinRecord) (bool, error) {
	t := cluster.Txn{
		Compares: []cluster.Compare{cluster.IfVersion(key, version)},
		Ops:      []cluster.Op{cluster.Put(key, encodeSignin(next))},
	}
	for k, r := range creates {
		t.Compares = append(t.Compares, cluster.IfAbsent(k))
		t.Ops = append(t.Ops, cluster.Put(k, encodeSignin(r)))
	}
	res, err := f.store.Txn(ctx, t)
	if err != nil {
		return false, fmt.Errorf("updating sign-in state: %w", err)
	}
	return res.Succeeded, nil
}

// sweepBatch bounds the deletes of one sweep transaction.
const sweepBatch = 512

// Sweep deletes expired sign-in state (pending logins, steps, codes and
// tombstones) and returns how many records it removed. Call it now and
// then (every few minutes) on one node, e.g. the leader; it is safe
// anywhere, as expired state is never revived. It lists linearizably, so it sees everything written before it
// started.
func (f *Flow) Sweep(ctx context.Context) (int, error) {
	now := f.now()
	kvs, _, err := f.store.List(ctx, prefixSignin, cluster.Linearizable)
	if err != nil {
		return 0, fmt.Errorf("listing sign-in state: %w", err)
	}
	var ops []cluster.Op
	n := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		if _, err := f.store.Txn(ctx, cluster.Txn{Ops: ops}); err != nil {
			return fmt.Errorf("deleting expired sign-in state: %w", err)
		}
		n += len(ops)
		ops = ops[:0]
		return nil
	}
	for _, kv := range kvs {
		var r signinRecord
		// Undecodable records are dropped too: nothing can use them.
		if err := json.Unmarshal(kv.Value, &r); err == nil && now.Before(r.Expires) {
			continue
		}
		ops = append(ops, cluster.Delete(kv.Key))
		if len(ops) == sweepBatch {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	return n, flush()
}
