package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
)

// minRSABits is the smallest RSA key accepted in a certificate request.
// Smaller keys are within reach of factoring.
const minRSABits = 2048

// NewKey generates an ECDSA P-256 private key for a node or server.
func NewKey() (crypto.Signer, error) {
	k, err := newP256()
	if err != nil {
		return nil, fmt.Errorf("pki: generating key: %w", err)
	}
	return k, nil
}

// KeyPEM encodes key as unencrypted PKCS #8 in a "PRIVATE KEY" PEM block.
// The result is secret: write it with mode 0600.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	if key == nil {
		return nil, errors.New("pki: key is nil")
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// ParseKeyPEM parses the first PEM block of data, which must be an
// unencrypted PKCS #8 "PRIVATE KEY" holding an ECDSA, Ed25519 or RSA key.
// Errors never contain key material.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("pki: no PEM block found")
	}
	if block.Type != pemPrivateKey {
		return nil, fmt.Errorf("pki: PEM block is %q, want %q (PKCS #8)", block.Type, pemPrivateKey)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		// The x509 error describes the structure only, not key bytes.
		return nil, fmt.Errorf("pki: parsing PKCS #8 private key: %w", err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("pki: private key of type %T cannot sign", key)
	}
}

// NewCSR returns a DER certificate signing request for a node, signed with
// key, whose subject common name is nodeID. nodeID must satisfy ValidNodeID.
func NewCSR(key crypto.Signer, nodeID string) ([]byte, error) {
	if key == nil {
		return nil, errors.New("pki: key is nil")
	}
	if err := ValidNodeID(nodeID); err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: nodeID}}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("pki: creating certificate request: %w", err)
	}
	return der, nil
}

// ErrInvalidNodeID is returned, wrapped with the reason, when a node ID does
// not match ^[a-z0-9][a-z0-9-]{0,62}$.
var ErrInvalidNodeID = errors.New("pki: invalid node ID")

// maxNodeIDLen is the longest node ID: a DNS label.
const maxNodeIDLen = 63

// ValidNodeID returns nil if id is a valid node ID, and otherwise an error
// wrapping ErrInvalidNodeID that says why. A node ID is 1 to 63 characters
// from a-z, 0-9 and '-', and does not start with '-'. So it is safe as a
// DNS label, a file name and a key in the cluster store.
func ValidNodeID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidNodeID)
	case len(id) > maxNodeIDLen:
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrInvalidNodeID, len(id), maxNodeIDLen)
	case id[0] == '-':
		return fmt.Errorf("%w: %q starts with '-'", ErrInvalidNodeID, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '-' {
			continue
		}
		return fmt.Errorf("%w: %q has character %q at offset %d; only a-z, 0-9 and '-' are allowed", ErrInvalidNodeID, id, c, i)
	}
	return nil
}

// checkPublicKey returns an error unless pub is a key type and size this
// CA certifies.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return errors.New("pki: unsupported ECDSA curve")
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("pki: RSA key of %d bits is too small, want at least %d", k.N.BitLen(), minRSABits)
		}
		return nil
	case nil:
		return errors.New("pki: public key is nil")
	default:
		return fmt.Errorf("pki: unsupported public key type %T", pub)
	}
}
