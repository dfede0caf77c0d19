package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/admit"
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
	return r.WithContext(WithSessionProof(r.Context(), tok))
}

// WithSessionProof returns ctx carrying an administrator's session token
// as the proof for forwarded cluster calls (ClusterAuthorizer checks it),
// for callers outside this package that act for a signed-in
// administrator (the admin console asking every node for its counters).
func WithSessionProof(ctx context.Context, tok string) context.Context {
	return cluster.WithProof(ctx, []byte(sessionProofPrefix+tok))
}

// ErrNoAdminProof is returned by the authorizer of ClusterAuthorizer when a
// forwarded request carries no valid administrator's session.
var ErrNoAdminProof = errors.New("api: forwarded request carries no administrator's session")

// ClusterAuthorizer returns the cluster.Config.Authorize of a node: it
// accepts a forwarded membership change or restore only with the proof of
// a valid administrator's session, and names that administrator; a
// non-voter may also be added with the join token that admitted it
// (admit.Admitter.Authorize). admitter and sessions return the admitter
// and the session store, or nil while the node is starting.
func ClusterAuthorizer(admitter func() *admit.Admitter, sessions func() *authn.Sessions) func(context.Context, cluster.AuthRequest) (string, error) {
	return func(ctx context.Context, req cluster.AuthRequest) (string, error) {
		if a := admitter(); a != nil {
			if actor, handled, err := a.Authorize(ctx, req); handled {
				return actor, err
			}
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

// errNoRecorder is returned by AdmitRecorder's function while there is no
// audit log to record into.
var errNoRecorder = errors.New("api: no audit log to record into yet")
