package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// clockSkew is subtracted from NotBefore of every certificate issued, so a
// certificate is usable at once by a peer whose clock is slightly behind.
const clockSkew = time.Minute

// PEM block types written and accepted by this package.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY" // PKCS #8
	pemCSR         = "CERTIFICATE REQUEST"
)

// CA is a certificate authority: a CA certificate and its private key.
// The methods of a CA do not modify it and are safe for concurrent use.
type CA struct {
	// Cert is the self-signed CA certificate.
	Cert *x509.Certificate
	// Key is the private key for Cert.
	Key crypto.Signer
}

// NewCA creates a self-signed ECDSA P-256 CA named commonName, valid from
// now-1m until now+validity. The CA may sign certificates and CRLs, and only
// leaf certificates (MaxPathLen 0).
func NewCA(commonName string, validity time.Duration, now time.Time) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("pki: CA common name is empty")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("pki: CA validity %s is not positive", validity)
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing new CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// ParseCA parses a CA from a PEM certificate and a PEM PKCS #8 private key,
// as written by CertPEM and KeyPEM. It checks that the certificate is a CA
// certificate that may sign certificates and that the key is the
// certificate's key. It does not check the validity period.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing CA certificate: %w", err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("pki: certificate %q is not a CA certificate (basic constraints CA:false)", cert.Subject.CommonName)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("pki: CA certificate %q lacks the certificate signing key usage", cert.Subject.CommonName)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing CA key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("pki: CA key does not match the public key of CA certificate %q", cert.Subject.CommonName)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM returns the CA certificate in PEM.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: ca.Cert.Raw})
}

// KeyPEM returns the CA private key in PEM ("PRIVATE KEY", PKCS #8),
// unencrypted. Store it sealed or in a file only its owner can read.
func (ca *CA) KeyPEM() ([]byte, error) {
	return KeyPEM(ca.Key)
}

// Pool returns a new certificate pool holding only the CA certificate, for
// tls.Config RootCAs and ClientCAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// ParseCertPEM parses the first PEM block of data, which must be a
// certificate.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("pki: no PEM block found")
	}
	if block.Type != pemCertificate {
		return nil, fmt.Errorf("pki: PEM block is %q, want %q", block.Type, pemCertificate)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing certificate: %w", err)
	}
	return cert, nil
}

// randomSerial returns a random positive 128-bit certificate serial number.
// Unpredictable serials defend against chosen-prefix collisions on the
// signed data (CA/Browser Forum baseline requirements ask for 64 bits).
func randomSerial() (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("pki: generating serial number: %w", err)
		}
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n, nil
		}
	}
}

// publicKeysEqual reports whether a and b are the same public key.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// newP256 generates an ECDSA P-256 private key.
func newP256() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}
