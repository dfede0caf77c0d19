package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ferryvpn/ferry/audit/auditfile"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// Keys in the cluster store. The private key is sealed under the master key
// (its storage key is the associated data, so it cannot be swapped into
// another record); the public key is stored in clear for verifiers.
const (
	keyPrivate = "sys/audit/key"
	keyPublic  = "sys/audit/pubkey"
)

// Signer signs checkpoints and export trailers with the cluster audit key
// (auditfile.Signer); LoadSigner loads it. It never prints its key.
type Signer = auditfile.Signer

// NewSigner returns a Signer for priv (auditfile.NewSigner).
func NewSigner(priv ed25519.PrivateKey) *Signer { return auditfile.NewSigner(priv) }

// KeyID names a public key: the first 16 hex digits of its SHA-256
// (auditfile.KeyID).
func KeyID(pub ed25519.PublicKey) string { return auditfile.KeyID(pub) }

// Keys maps key IDs to the public keys that verify signatures
// (auditfile.Keys).
type Keys = auditfile.Keys

// PublicKeyRecord is how the public key is stored at sys/audit/pubkey, and
// how ferryctl shows it to auditors (auditfile.PublicKeyRecord).
type PublicKeyRecord = auditfile.PublicKeyRecord

// ParseKeys decodes one PublicKeyRecord (JSON) into a key set, checking
// that the key ID matches the key (auditfile.ParseKeys).
func ParseKeys(b []byte) (Keys, error) { return auditfile.ParseKeys(b) }

// LoadSigner returns the cluster audit key, generating and storing it first
// if the cluster has none. Concurrent first calls on several nodes agree:
// the key is written with an absent-key compare, so exactly one wins and
// the others read it back.
func LoadSigner(ctx context.Context, store *cluster.Node, master seal.Key) (*Signer, error) {
	for attempt := 0; attempt < 3; attempt++ {
		// The key is written once and never changes, so a local copy is
		// the key; only its absence needs the leader's word. A restarting
		// node so starts without waiting for a quorum.
		kv, found, err := store.Get(ctx, keyPrivate, cluster.Local)
		if err == nil && !found {
			kv, found, err = store.Get(ctx, keyPrivate, cluster.Linearizable)
		}
		if err != nil {
			return nil, fmt.Errorf("reading audit key: %w", err)
		}
		if found {
			seed, err := seal.Open(master, kv.Value, []byte(keyPrivate))
			if err != nil {
				return nil, fmt.Errorf("opening audit key: %w", err)
			}
			if len(seed) != ed25519.SeedSize {
				return nil, fmt.Errorf("%w: audit key: want a %d-byte seed", ErrMalformed, ed25519.SeedSize)
			}
			return NewSigner(ed25519.NewKeyFromSeed(seed)), nil
		}
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating audit key: %w", err)
		}
		sealed, err := seal.Seal(master, priv.Seed(), []byte(keyPrivate))
		if err != nil {
			return nil, fmt.Errorf("sealing audit key: %w", err)
		}
		pubRec, err := json.Marshal(PublicKeyRecord{KeyID: KeyID(pub), PublicKey: pub})
		if err != nil {
			return nil, err
		}
		res, err := store.Txn(ctx, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfAbsent(keyPrivate)},
			Ops:      []cluster.Op{cluster.Put(keyPrivate, sealed), cluster.Put(keyPublic, pubRec)},
		})
		if err != nil {
			return nil, fmt.Errorf("storing audit key: %w", err)
		}
		if res.Succeeded {
			return NewSigner(priv), nil
		}
		// Another node stored its key first: read that one.
	}
	return nil, errors.New("audit: audit key changed repeatedly while loading it")
}

// LoadKeys reads the cluster's audit public key. It returns ErrNoKey when
// none has been generated yet.
func LoadKeys(ctx context.Context, store *cluster.Node) (Keys, error) {
	kv, found, err := store.Get(ctx, keyPublic, cluster.Linearizable)
	if err != nil {
		return nil, fmt.Errorf("reading audit public key: %w", err)
	}
	if !found {
		return nil, ErrNoKey
	}
	return ParseKeys(kv.Value)
}
