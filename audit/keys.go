package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

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

// Signer signs checkpoints and export trailers with the cluster audit key,
// an ed25519 key generated once per cluster. It never prints its key.
type Signer struct {
	priv ed25519.PrivateKey
	id   string
}

// NewSigner returns a Signer for priv.
func NewSigner(priv ed25519.PrivateKey) *Signer {
	return &Signer{priv: priv, id: KeyID(priv.Public().(ed25519.PublicKey))}
}

// KeyID names a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// KeyID returns the ID of the signer's key.
func (s *Signer) KeyID() string { return s.id }

// Public returns the public key.
func (s *Signer) Public() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

// Keys returns a key set holding the signer's public key.
func (s *Signer) Keys() Keys { return Keys{s.id: s.Public()} }

// String redacts the key.
func (s *Signer) String() string { return "audit signer " + s.id }

// LogValue redacts the key.
func (s *Signer) LogValue() slog.Value { return slog.StringValue(s.String()) }

func (s *Signer) sign(msg []byte) []byte { return ed25519.Sign(s.priv, msg) }

// Keys maps key IDs to the public keys that verify signatures.
type Keys map[string]ed25519.PublicKey

// verify reports whether sig is id's signature of msg.
func (k Keys) verify(id string, msg, sig []byte) (bool, error) {
	pub, ok := k[id]
	if !ok {
		return false, fmt.Errorf("%w: key %q", ErrNoKey, id)
	}
	return ed25519.Verify(pub, msg, sig), nil
}

// PublicKeyRecord is how the public key is stored (and how ferryctl shows
// it to auditors).
type PublicKeyRecord struct {
	KeyID     string            `json:"key_id"`
	PublicKey ed25519.PublicKey `json:"public_key"`
}

// ParseKeys decodes one PublicKeyRecord (JSON) into a key set, checking
// that the key ID matches the key.
func ParseKeys(b []byte) (Keys, error) {
	var r PublicKeyRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrMalformed, err)
	}
	if len(r.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key: want %d bytes, got %d", ErrMalformed, ed25519.PublicKeySize, len(r.PublicKey))
	}
	if KeyID(r.PublicKey) != r.KeyID {
		return nil, fmt.Errorf("%w: public key: key_id %q does not match the key", ErrMalformed, r.KeyID)
	}
	return Keys{r.KeyID: r.PublicKey}, nil
}

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
