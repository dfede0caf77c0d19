package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// version1 is the first byte of a value sealed with AES-256-GCM and a random
// 96-bit nonce: version1 || nonce || ciphertext || tag.
const version1 byte = 0x01

const (
	nonceSize = 12 // the GCM standard nonce size
	tagSize   = 16 // the GCM standard tag size

	// Overhead is how many bytes Seal adds to a plaintext: the version byte,
	// the nonce and the authentication tag.
	Overhead = 1 + nonceSize + tagSize
)

// ErrDecrypt is returned when Open cannot authenticate a sealed value: it
// was modified or truncated, or it was sealed under another key or with
// other associated data. The causes are deliberately not told apart.
var ErrDecrypt = errors.New("seal: message authentication failed")

// ErrVersion is returned when Open is given a sealed value whose version
// byte it does not know, such as one written by a newer ferry.
var ErrVersion = errors.New("seal: unknown sealed format version")

// Seal encrypts and authenticates plaintext under k with AES-256-GCM and
// returns version || nonce || ciphertext || tag, which is Overhead bytes
// longer than plaintext. The nonce is random.
//
// associatedData is authenticated but not encrypted or included in the
// output; Open must be given the same bytes. Pass the name of the record the
// value is stored under (for example "totp/alice"), so that a sealed value
// moved to another record fails to open. The version byte is authenticated
// as well.
func Seal(k Key, plaintext, associatedData []byte) ([]byte, error) {
	aead, err := newAEAD(k)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+nonceSize, Overhead+len(plaintext))
	out[0] = version1
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, fmt.Errorf("seal: reading nonce: %w", err)
	}
	return aead.Seal(out, out[1:], plaintext, additional(version1, associatedData)), nil
}

// Open authenticates and decrypts a value made by Seal with the same key and
// associated data. It returns ErrVersion if the version byte is unknown and
// ErrDecrypt for any other bad input, including input too short to hold a
// version, nonce and tag. Open never panics on malformed input.
func Open(k Key, sealed, associatedData []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, ErrDecrypt
	}
	if sealed[0] != version1 {
		return nil, ErrVersion
	}
	if len(sealed) < Overhead {
		return nil, ErrDecrypt
	}
	aead, err := newAEAD(k)
	if err != nil {
		return nil, err
	}
	nonce, box := sealed[1:1+nonceSize], sealed[1+nonceSize:]
	plaintext, err := aead.Open(nil, nonce, box, additional(sealed[0], associatedData))
	if err != nil {
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

// newAEAD returns AES-256-GCM keyed with k.
func newAEAD(k Key) (cipher.AEAD, error) {
	if k.IsZero() {
		return nil, ErrZeroKey
	}
	block, err := aes.NewCipher(k.k[:])
	if err != nil {
		return nil, fmt.Errorf("seal: creating AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: creating GCM: %w", err)
	}
	return aead, nil
}

// additional returns the GCM additional data: the version byte followed by
// the caller's associated data. The version byte has a fixed length, so the
// concatenation is unambiguous.
func additional(version byte, associatedData []byte) []byte {
	ad := make([]byte, 0, 1+len(associatedData))
	ad = append(ad, version)
	return append(ad, associatedData...)
}
