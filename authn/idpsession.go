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
	// The sessions end, and their records commit, in one transaction:
	// both or neither. A session changed meanwhile makes it read again.
	for range maxCASAttempts {
		kvs, _, err := s.store.List(ctx, prefixSessions, cluster.Linearizable)
		if err != nil {
			return nil, fmt.Errorf("listing sessions: %w", err)
		}
		var txn cluster.Txn
		ended := map[string]int{}
		for _, kv := range kvs {
			rec, err := decodeRecord[sessionRecord](kv.Key, kv.Value)
			if err != nil || rec.Identity.Issuer != issuer || rec.Identity.IdPSession != sid {
				continue
			}
			ref := sessionRef{V: recordVersion, Hash: strings.TrimPrefix(kv.Key, prefixSessions), UserID: rec.Identity.UserID}
			txn.Compares = append(txn.Compares, cluster.IfVersion(kv.Key, kv.Version))
			txn.Ops = append(txn.Ops, deleteSessionOps(ref, rec.ID)...)
			ended[ref.UserID]++
		}
		if len(ended) == 0 {
			return []string{}, nil
		}
		users := make([]string, 0, len(ended))
		for u := range ended {
			users = append(users, u)
		}
		slices.Sort(users)
		events := make([]audit.Event, 0, len(users))
		for _, u := range users {
			events = append(events, audit.Event{
				Type: audit.TypeAdmin, Action: ActionRevoke, Actor: actor, Target: audit.Target{User: u},
				Outcome: audit.Success, Reason: "identity provider session ended",
				Details: map[string]string{"sessions_ended": strconv.Itoa(ended[u])},
			})
		}
		res, err := audit.Commit(ctx, s.store, s.rec, txn, events...)
		if err != nil {
			return nil, fmt.Errorf("ending sessions: %w", err)
		}
		if res.Succeeded {
			return users, nil
		}
	}
	return nil, fmt.Errorf("ending sessions of identity provider session: %w", ErrContended)
}
