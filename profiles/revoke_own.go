package profiles

import (
	"context"
	"fmt"

	"github.com/ferryvpn/ferry/audit"
)

// RevokeOwn revokes one of userID's own devices, as that person does from
// the portal: a peer of anyone else is reported as ErrNotFound, whatever
// actor's role, so the portal never reaches another person's device.
// Revoking an already revoked device is a no-op. It is audited like
// RevokePeer; being the owner's own act, it never sticks.
func (s *Store) RevokeOwn(ctx context.Context, userID, peerID, reason string, actor audit.Actor) (Peer, error) {
	p, err := s.Peer(ctx, peerID)
	if err != nil {
		return Peer{}, err
	}
	if p.UserID != userID {
		return Peer{}, fmt.Errorf("%w: peer %q", ErrNotFound, peerID)
	}
	if p.Revoked != nil {
		return p, nil
	}
	if _, err := s.RevokeWhere(ctx, func(q *Peer) bool { return q.ID == peerID && q.UserID == userID }, reason, actor); err != nil {
		return Peer{}, err
	}
	return s.Peer(ctx, peerID)
}
