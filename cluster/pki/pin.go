package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// Bounds on the pin VerifyPin accepts. A pin shorter than 128 bits could be
// matched by a certificate an attacker grinds for; an empty pin would match
// every certificate.
const (
	minPinLen = joinPinLen
	maxPinLen = fingerprintLen
)

// ErrPinMismatch is returned when the certificates a server presents do not
// include a CA certificate matching the pin, or the server's certificate
// was not issued by that CA.
var ErrPinMismatch = errors.New("pki: server certificate does not match the CA pin")

// VerifyPin authenticates a cluster to a joining node that does not yet
// have the cluster CA certificate, only a pin of it from a join token.
// Use it as tls.Config.VerifyPeerCertificate with InsecureSkipVerify set:
//
//	VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
//		return pki.VerifyPin(raw, tok.CAPin)
//	}
//
// rawCerts are the DER certificates the server presented, leaf first. Some
// certificate after the leaf must be a CA certificate whose Fingerprint
// starts with pin, and the leaf must verify against that CA alone, for
// server authentication, at the current system time. The server therefore
// has to send its CA certificate after its leaf. Host names are not checked:
// the pin replaces them. pin must be 32 to 64 lowercase hex characters.
// Errors other than a bad pin wrap ErrPinMismatch.
func VerifyPin(rawCerts [][]byte, pin string) error {
	if len(pin) < minPinLen || len(pin) > maxPinLen || !isLowerHex(pin) {
		return fmt.Errorf("pki: pin is not %d to %d lowercase hex characters", minPinLen, maxPinLen)
	}
	if len(rawCerts) < 2 {
		return fmt.Errorf("%w: server sent %d certificates, want its certificate followed by the CA", ErrPinMismatch, len(rawCerts))
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("%w: parsing server certificate: %w", ErrPinMismatch, err)
	}
	var ca *x509.Certificate
	for _, raw := range rawCerts[1:] {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			continue // an unparsable extra certificate cannot be the pinned one
		}
		if c.IsCA && c.BasicConstraintsValid && strings.HasPrefix(Fingerprint(c), pin) {
			ca = c
			break
		}
	}
	if ca == nil {
		return fmt.Errorf("%w: no CA certificate whose fingerprint starts with %s", ErrPinMismatch, pin)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:     roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPinMismatch, err)
	}
	return nil
}
