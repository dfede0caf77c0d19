package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/clusterca"
)

// A membership change or restore that an administrator asks of a follower
// reaches the leader forwarded over the cluster port. The leader does not
// take the follower's word for it: the request carries the administrator's
// session token as proof (cluster.WithProof), and the leader checks it
// against the replicated sessions (ClusterAuthorizer), so a member acting on
// its own can change the cluster's shape no more than the API allows.

// sessionProofPrefix marks a proof that is an administrator's session
// token.
const sessionProofPrefix = "session:"

// withAdminProof returns r with the caller's session token attached as the
// proof for forwarded cluster changes.
func withAdminProof(r *http.Request) *http.Request {
	tok := sessionToken(r)
	if tok == "" {
		return r
	}
	return r.WithContext(cluster.WithProof(r.Context(), []byte(sessionProofPrefix+tok)))
}

// ErrNoAdminProof is returned by the authorizer of ClusterAuthorizer when a
// forwarded request carries no valid administrator's session.
var ErrNoAdminProof = errors.New("api: forwarded request carries no administrator's session")

// joinProofPrefix marks a proof that is a join token: it admits the node
// it was redeemed for as a non-voter, nothing else.
const joinProofPrefix = "join:"

// ClusterAuthorizer returns the cluster.Config.Authorize of a node: it
// accepts a forwarded membership change or restore only with the proof of
// a valid administrator's session, and names that administrator; a
// non-voter may also be added with the proof of a valid join token.
// node and sessions return the node and the session store, or nil while
// the node is starting.
func ClusterAuthorizer(node func() *cluster.Node, master seal.Key, sessions func() *authn.Sessions) func(context.Context, cluster.AuthRequest) (string, error) {
	tokenKey := seal.DeriveKey(master, joinTokenPurpose)
	return func(ctx context.Context, req cluster.AuthRequest) (string, error) {
		if tok, ok := strings.CutPrefix(string(req.Proof), joinProofPrefix); ok && req.Op == "add_nonvoter" {
			n := node()
			if n == nil {
				return "", errors.New("this node is starting")
			}
			caCert, err := clusterca.Cert(ctx, n, cluster.Local)
			if err != nil {
				return "", err
			}
			if err := pki.VerifyJoinToken(tokenKey, pki.Fingerprint(caCert), tok, time.Now()); err != nil {
				return "", err
			}
			return "join-token", nil
		}
		tok, ok := strings.CutPrefix(string(req.Proof), sessionProofPrefix)
		if !ok || tok == "" {
			return "", ErrNoAdminProof
		}
		s := sessions()
		if s == nil {
			return "", fmt.Errorf("%w: this node cannot check sessions yet", ErrNoAdminProof)
		}
		sess, err := s.Validate(ctx, authn.SessionToken(tok))
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrNoAdminProof, err)
		}
		if sess.Role != authn.RoleAdmin {
			return "", fmt.Errorf("%w: the session of %q is not an administrator's", ErrNoAdminProof, sess.Identity.UserID)
		}
		return sess.Identity.UserID, nil
	}
}
