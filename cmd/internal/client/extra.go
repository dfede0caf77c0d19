package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// maxCAFile bounds the CA bundle TLSConfig reads.
const maxCAFile = 1 << 20

// TLSConfig returns a TLS configuration that trusts the CA certificates of
// the PEM file caFile, or the system roots when caFile is empty. ferry's
// API is usually served under the cluster's own CA, which `ferryd init`
// writes as ca.pem.
func TLSConfig(caFile string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return conf, nil
	}
	fi, err := os.Stat(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading CA file: %w", err)
	}
	if fi.Size() > maxCAFile {
		return nil, fmt.Errorf("CA file %s: larger than %d bytes", caFile, maxCAFile)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

// StatusOf returns the HTTP status of an API error answer anywhere in
// err's chain, or 0 when err is not one (a network error, say).
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}
