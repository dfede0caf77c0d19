package auditfile

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
)

// Signer signs checkpoints and export trailers with the cluster audit key,
// an ed25519 key generated once per cluster (package audit loads it). It
// never prints its key.
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

// SignCheckpoint sets c's KeyID to the signer's and signs c, setting Sig.
func (s *Signer) SignCheckpoint(c *Checkpoint) {
	c.KeyID = s.id
	c.Sig = ed25519.Sign(s.priv, c.signedBytes())
}

// SignTrailer sets t's KeyID to the signer's and signs t, setting Sig.
func (s *Signer) SignTrailer(t *Trailer) {
	t.KeyID = s.id
	t.Sig = ed25519.Sign(s.priv, t.signedBytes())
}

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

// PublicKeyRecord is how the public key is stored in the cluster, and how
// `ferryctl audit key` hands it to auditors.
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

// ReadKeysFile reads a key set from a file holding one PublicKeyRecord, as
// `ferryctl audit key` writes it.
func ReadKeysFile(path string) (Keys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	keys, err := ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}
