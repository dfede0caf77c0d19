package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/prometheus/client_golang/prometheus"
)

// ClusterConfig returns the cluster.Config of this node. It loads the TLS
// files and checks that the node certificate is this node's and was issued
// by the cluster CA; errors name the field and the file.
func (c *Config) ClusterConfig(log *slog.Logger, reg prometheus.Registerer) (cluster.Config, error) {
	ca, err := c.LoadCACert()
	if err != nil {
		return cluster.Config{}, err
	}
	cert, err := loadKeyPair("tls", c.TLS.CertFile, c.TLS.KeyFile)
	if err != nil {
		return cluster.Config{}, err
	}
	if cn := cert.Leaf.Subject.CommonName; cn != c.NodeID {
		return cluster.Config{}, fieldErr("tls.cert_file", "%s is the certificate of node %q, but node_id is %q", c.TLS.CertFile, cn, c.NodeID)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return cluster.Config{}, fmt.Errorf("tls.cert_file: %s does not verify against tls.ca_file %s as a node certificate: %w", c.TLS.CertFile, c.TLS.CAFile, err)
	}
	return cluster.Config{
		NodeID:             c.NodeID,
		DataDir:            c.DataDir,
		BindAddr:           c.Cluster.BindAddr,
		AdvertiseAddr:      c.Cluster.AdvertiseAddr,
		Certificate:        cert,
		RootCAs:            roots,
		Bootstrap:          c.Cluster.Bootstrap,
		HeartbeatTimeout:   c.Cluster.HeartbeatTimeout.D(),
		ElectionTimeout:    c.Cluster.ElectionTimeout.D(),
		LeaderLeaseTimeout: c.Cluster.LeaderLeaseTimeout.D(),
		WriteTimeout:       c.Cluster.WriteTimeout.D(),
		Logger:             log,
		Registerer:         reg,
	}, nil
}

// LoadCACert reads the cluster CA certificate of tls.ca_file.
func (c *Config) LoadCACert() (*x509.Certificate, error) {
	ca, err := pki.LoadCertPEM(c.TLS.CAFile)
	if err != nil {
		return nil, fmt.Errorf("tls.ca_file: %w", err)
	}
	if !ca.IsCA {
		return nil, fieldErr("tls.ca_file", "%s is not a CA certificate", c.TLS.CAFile)
	}
	return ca, nil
}

// LoadCA reads the CA certificate and the CA key of tls.ca_key_file. The
// error wraps fs.ErrNotExist when the key file is missing.
func (c *Config) LoadCA() (*pki.CA, error) {
	if c.TLS.CAKeyFile == "" {
		return nil, fieldErr("tls.ca_key_file", "not set")
	}
	certPEM, err := os.ReadFile(c.TLS.CAFile)
	if err != nil {
		return nil, fmt.Errorf("tls.ca_file: %w", err)
	}
	keyPEM, err := os.ReadFile(c.TLS.CAKeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.ca_key_file: %w", err)
	}
	ca, err := pki.ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls.ca_key_file: %s with tls.ca_file %s: %w", c.TLS.CAKeyFile, c.TLS.CAFile, err)
	}
	return ca, nil
}

// APICertificate loads the HTTPS certificate. If the file holds the leaf
// only and the leaf was issued by the cluster CA, the CA certificate is
// appended: joining nodes authenticate the API by a pin of the CA, so the
// server must present it.
func (c *Config) APICertificate() (tls.Certificate, error) {
	cert, err := loadKeyPair("api", c.API.CertFile, c.API.KeyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	if len(cert.Certificate) == 1 {
		ca, err := c.LoadCACert()
		if err != nil {
			return tls.Certificate{}, err
		}
		if cert.Leaf.CheckSignatureFrom(ca) == nil {
			cert.Certificate = append(cert.Certificate, ca.Raw)
		}
	}
	return cert, nil
}

// MasterKey reads the cluster master key of master_key_file.
func (c *Config) MasterKey() (seal.Key, error) {
	k, err := seal.LoadKeyFile(c.MasterKeyFile)
	if err != nil {
		return seal.Key{}, fmt.Errorf("master_key_file: %w", err)
	}
	return k, nil
}

// NewLogger returns a logger writing to w with the configured level and
// format. c must be valid.
func (l Log) NewLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// loadKeyPair reads a certificate chain and its key; section names the
// configuration section in errors.
func loadKeyPair(section, certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s.cert_file: %w", section, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s.key_file: %w", section, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The error describes structure or a mismatch, never key bytes.
		return tls.Certificate{}, fmt.Errorf("%s.cert_file: %s with %s.key_file %s: %w", section, certFile, section, keyFile, err)
	}
	return cert, nil
}
