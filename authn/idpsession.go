package authn

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// EndIdPSession ends every session begun by a sign-in during identity
// provider issuer's session sid (the ID token's sid claim), as actor, and
// records admin session.revoke for each user touched. It returns the IDs
// of those users, sorted, so the caller can end what else they hold. It is
// what an OpenID Connect back-channel logout naming only sid does.
func (s *Sessions) EndIdPSession(ctx context.Context, issuer, sid string, actor audit.Actor) ([]string, error) {
	if issuer == "" || sid == "" || len(sid) > maxClaimLen {
		return nil, fmt.Errorf("%w: issuer and sid: both required, sid at most %d bytes", ErrInvalidInput, maxClaimLen)
	}
	kvs, _, err := s.store.List(ctx, prefixSessions, cluster.Linearizable)
	if err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	ended := map[string]int{}
	for _, kv := range kvs {
		rec, err := decodeRecord[sessionRecord](kv.Key, kv.Value)
		if err != nil || rec.Identity.Issuer != issuer || rec.Identity.IdPSession != sid {
			continue
		}
		ref := sessionRef{V: recordVersion, Hash: strings.TrimPrefix(kv.Key, prefixSessions), UserID: rec.Identity.UserID}
		res, err := s.store.Txn(ctx, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(kv.Key, kv.Version)},
			Ops:      deleteSessionOps(ref, rec.ID),
		})
		if err != nil {
			return nil, fmt.Errorf("ending session: %w", err)
		}
		if res.Succeeded {
			ended[ref.UserID]++
		}
	}
	users := make([]string, 0, len(ended))
	for u, n := range ended {
		users = append(users, u)
		if err := recordEvent(ctx, s.rec, audit.Event{
			Type: audit.TypeAdmin, Action: ActionRevoke, Actor: actor, Target: audit.Target{User: u},
			Outcome: audit.Success, Reason: "identity provider session ended",
			Details: map[string]string{"sessions_ended": strconv.Itoa(n)},
		}); err != nil {
			return nil, err
		}
	}
	slices.Sort(users)
	return users, nil
}
