package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"slices"
	"time"
)

// IssueNode signs a node certificate for the DER certificate request
// csrDER and returns it in PEM.
//
// The request must carry a valid self-signature, and its subject common
// name must equal nodeID, which must satisfy ValidNodeID. The certificate's
// common name is nodeID; its subject alternative names are dnsNames and ips
// (any names in the request are ignored). It is valid for both server and
// client authentication, because nodes use it for mutual TLS with each
// other. It is valid from now-1m for validity, but not beyond the CA's own
// expiry. IssueNode fails if the CA is not valid at now.
func (ca *CA) IssueNode(csrDER []byte, nodeID string, dnsNames []string, ips []net.IP, validity time.Duration, now time.Time) ([]byte, error) {
	if err := ValidNodeID(nodeID); err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: certificate request signature is invalid: %w", err)
	}
	if csr.Subject.CommonName != nodeID {
		return nil, fmt.Errorf("pki: certificate request is for common name %.80q, want node ID %q", csr.Subject.CommonName, nodeID)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: nodeID},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	return ca.issue(tmpl, csr.PublicKey, dnsNames, ips, validity, now)
}

// IssueServer signs a certificate for the HTTPS API server holding the
// private key of pub and returns it in PEM. The certificate is valid for
// server authentication only, so it can never pass as a node's client
// certificate. It needs at least one DNS name or IP address; its common name
// is the first DNS name, if any. Validity is as for IssueNode.
func (ca *CA) IssueServer(pub crypto.PublicKey, dnsNames []string, ips []net.IP, validity time.Duration, now time.Time) ([]byte, error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, fmt.Errorf("pki: server certificate needs at least one DNS name or IP address")
	}
	tmpl := &x509.Certificate{
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if len(dnsNames) > 0 {
		tmpl.Subject.CommonName = dnsNames[0]
	}
	return ca.issue(tmpl, pub, dnsNames, ips, validity, now)
}

// issue completes tmpl with a serial number, validity period and names,
// signs it for pub and returns the certificate in PEM.
func (ca *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey, dnsNames []string, ips []net.IP, validity time.Duration, now time.Time) ([]byte, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("pki: validity %s is not positive", validity)
	}
	if now.Before(ca.Cert.NotBefore) || now.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("pki: CA certificate is not valid at %s (valid %s to %s)",
			now.UTC().Format(time.RFC3339), ca.Cert.NotBefore.UTC().Format(time.RFC3339), ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	for i, name := range dnsNames {
		if name == "" {
			return nil, fmt.Errorf("pki: DNS name %d is empty", i)
		}
	}
	for i, ip := range ips {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return nil, fmt.Errorf("pki: IP address %d is not a valid IP address", i)
		}
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = now.Add(validity)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	tmpl.DNSNames = slices.Clone(dnsNames)
	tmpl.IPAddresses = slices.Clone(ips)

	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: signing certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), nil
}
