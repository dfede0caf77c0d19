package admit

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// Lifetimes of join tokens. A token is a standing invitation until it is
// used or expires: the default is the time an operator needs to start the
// new machine, the maximum a day. `ferryd token`, `ferryctl cluster join`
// and the API all take these.
const (
	DefaultTokenTTL = time.Hour
	MaxTokenTTL     = 24 * time.Hour
)

// tokenPurpose derives the join token key from the master key.
const tokenPurpose = "join-token"

// Token is a minted join token.
type Token struct {
	// Text is the token itself: a secret, never logged.
	Text string
	// ID names the token in audit records; not secret.
	ID string
	// Expires is when the token stops admitting.
	Expires time.Time
	// NodeID is the only node the token admits; empty for any.
	NodeID string
}

// CheckTokenTTL returns an error unless ttl is a valid token lifetime.
func CheckTokenTTL(ttl time.Duration) error {
	if ttl <= 0 || ttl > MaxTokenTTL {
		return fmt.Errorf("%w: token lifetime %s: want above 0 and at most %s", ErrInvalid, ttl, MaxTokenTTL)
	}
	return nil
}

// MintToken makes a join token for the cluster whose CA is caCert and
// whose master key is master, valid for ttl (0: DefaultTokenTTL) from now,
// admitting only nodeID if it is not empty. It needs no running cluster,
// so `ferryd token` uses it offline.
func MintToken(master seal.Key, caCert *x509.Certificate, ttl time.Duration, nodeID string, now time.Time) (Token, error) {
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if err := CheckTokenTTL(ttl); err != nil {
		return Token{}, err
	}
	if nodeID != "" {
		if err := pki.ValidNodeID(nodeID); err != nil {
			return Token{}, fmt.Errorf("%w: node_id: %v", ErrInvalid, err)
		}
	}
	expires := now.Add(ttl).UTC().Truncate(time.Second)
	key := seal.DeriveKey(master, tokenPurpose)
	fp := pki.Fingerprint(caCert)
	text, err := pki.NewJoinTokenFor(key, fp, expires, nodeID)
	if err != nil {
		return Token{}, err
	}
	info, err := pki.VerifyJoinTokenFor(key, fp, text, nodeID, now)
	if err != nil {
		return Token{}, err
	}
	return Token{Text: text, ID: info.ID, Expires: expires, NodeID: nodeID}, nil
}
