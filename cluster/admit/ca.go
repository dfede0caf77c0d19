package admit

// The cluster CA lives in the replicated store, so that any member can sign
// the certificates of joining nodes and renewals. The CA certificate is
// stored in clear at KeyCACert; the CA private key at KeyCAKey, sealed under
// the cluster master key (package seal) with the store key as associated
// data, so the store, its snapshots and backups hold ciphertext only. The
// first node publishes the CA once; both keys are written in one
// transaction guarded by "absent" compares, so two writers cannot both win.

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// Store keys of the CA.
const (
	KeyCACert = "sys/ca/cert"
	KeyCAKey  = "sys/ca/key"
)

// ErrNoCA is returned when the store holds no CA (yet).
var ErrNoCA = errors.New("admit: the cluster store holds no CA")

// ErrCAMismatch is returned by PublishCA when the store already holds
// another CA.
var ErrCAMismatch = errors.New("admit: the cluster store holds a different CA")

// PublishCA stores ca in the cluster unless it is already there, and reports
// whether this call wrote it. It reads this node's local state first, so a
// restarted node that already holds the CA needs no quorum.
func PublishCA(ctx context.Context, n *cluster.Node, master seal.Key, ca *pki.CA) (bool, error) {
	have, err := CACert(ctx, n, cluster.Local)
	switch {
	case err == nil:
		return false, same(have, ca.Cert)
	case !errors.Is(err, ErrNoCA):
		return false, err
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return false, err
	}
	sealed, err := seal.Seal(master, keyPEM, []byte(KeyCAKey))
	clear(keyPEM)
	if err != nil {
		return false, fmt.Errorf("sealing CA key: %w", err)
	}
	res, err := n.Txn(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent(KeyCACert), cluster.IfAbsent(KeyCAKey)},
		Ops:      []cluster.Op{cluster.Put(KeyCACert, ca.CertPEM()), cluster.Put(KeyCAKey, sealed)},
	})
	if err != nil {
		return false, fmt.Errorf("storing CA: %w", err)
	}
	if res.Succeeded {
		return true, nil
	}
	// Another writer won the race: it must have written the same CA.
	have, err = CACert(ctx, n, cluster.Linearizable)
	if err != nil {
		return false, err
	}
	return false, same(have, ca.Cert)
}

func same(have, want *x509.Certificate) error {
	if !bytes.Equal(have.Raw, want.Raw) {
		return fmt.Errorf("%w: store has %s, this node has %s", ErrCAMismatch, pki.Fingerprint(have), pki.Fingerprint(want))
	}
	return nil
}

// CACert reads the CA certificate from the store.
func CACert(ctx context.Context, n *cluster.Node, c cluster.Consistency) (*x509.Certificate, error) {
	kv, ok, err := n.Get(ctx, KeyCACert, c)
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	if !ok {
		return nil, ErrNoCA
	}
	cert, err := pki.ParseCertPEM(kv.Value)
	if err != nil {
		return nil, fmt.Errorf("stored CA certificate: %w", err)
	}
	return cert, nil
}

// LoadCA reads the CA from this node's local state and unseals its key with
// master.
func LoadCA(ctx context.Context, n *cluster.Node, master seal.Key) (*pki.CA, error) {
	certKV, okCert, err := n.Get(ctx, KeyCACert, cluster.Local)
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	keyKV, okKey, err := n.Get(ctx, KeyCAKey, cluster.Local)
	if err != nil {
		return nil, fmt.Errorf("reading CA key: %w", err)
	}
	if !okCert || !okKey {
		return nil, ErrNoCA
	}
	keyPEM, err := seal.Open(master, keyKV.Value, []byte(KeyCAKey))
	if err != nil {
		return nil, fmt.Errorf("unsealing CA key (is master_key_file the cluster's master key?): %w", err)
	}
	defer clear(keyPEM)
	ca, err := pki.ParseCA(certKV.Value, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("stored CA: %w", err)
	}
	return ca, nil
}
