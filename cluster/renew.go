package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Node certificates are short-lived: a member renews its own when a third
// of its lifetime is left, by sending a certificate request for a fresh key
// to the leader over the authenticated cluster channel (fwdRenew), which
// signs it with Config.Renew. The node then presents the new certificate on
// every new connection and hands it to Config.OnRenewed to keep. No
// operator acts; a stolen certificate ages out.

// renewRetry is how long a node waits after a failed renewal.
const renewRetry = 10 * time.Second

// certificate returns the node's current certificate.
func (n *Node) certificate() *tls.Certificate { return n.cert.Load() }

// CertNotAfter returns when this node's current certificate expires.
func (n *Node) CertNotAfter() time.Time {
	if c := n.certificate(); c != nil && c.Leaf != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}

// renewDue reports whether the current certificate has less than a third
// of its lifetime left at now.
func renewDue(leaf *x509.Certificate, now time.Time) bool {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return now.After(leaf.NotAfter.Add(-life / 3))
}

// maybeRenew renews the node's certificate when it is due, at most once per
// renewRetry after a failure.
func (n *Node) maybeRenew() {
	leaf := n.certificate().Leaf
	now := n.cfg.Now()
	if leaf == nil || !renewDue(leaf, now) || now.Before(n.renewAfter) {
		return
	}
	if _, err := n.renew(); err != nil {
		n.renewAfter = now.Add(renewRetry)
		n.log.Warn("renewing the node certificate failed; will retry", "not_after", leaf.NotAfter, "err", err)
	}
}

// renew asks the leader for a new certificate for a fresh key and swaps it
// in.
func (n *Node) renew() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: n.cfg.NodeID}}, key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := n.writeCtx(n.ctx)
	defer cancel()
	var certPEM []byte
	if n.raft.State() == raft.Leader {
		certPEM, err = n.renewFor(ctx, forwardRequest{kind: fwdRenew, payload: csr, peer: n.cfg.NodeID, cert: n.certificate().Leaf})
	} else if _, addr := n.Leader(); addr != "" {
		certPEM, err = n.fwd.call(ctx, addr, fwdRenew, csr)
	} else {
		err = ErrNotLeader
	}
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("renewed certificate: %w", err)
	}
	if c.Leaf.Subject.CommonName != n.cfg.NodeID {
		return nil, fmt.Errorf("renewed certificate is for %q", c.Leaf.Subject.CommonName)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: n.cfg.RootCAs, CurrentTime: n.cfg.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("renewed certificate: %w", err)
	}
	if n.cfg.OnRenewed != nil {
		if err := n.cfg.OnRenewed(certPEM, keyPEM); err != nil {
			return nil, fmt.Errorf("keeping the renewed certificate: %w", err)
		}
	}
	n.cert.Store(&c)
	n.log.Info("renewed the node certificate", "serial", c.Leaf.SerialNumber.Text(16), "not_after", c.Leaf.NotAfter)
	return &c, nil
}

// RenewCertificate renews this node's certificate now, whether due or not,
// and returns when the new one expires.
func (n *Node) RenewCertificate(ctx context.Context) (time.Time, error) {
	c, err := n.renew()
	if err != nil {
		return time.Time{}, err
	}
	return c.Leaf.NotAfter, nil
}

// errNoLeaf is returned by New when the certificate cannot be parsed.
var errNoLeaf = errors.New("cluster config: certificate: cannot parse the node certificate")
