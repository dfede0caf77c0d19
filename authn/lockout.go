package authn

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// The lockout counts consecutive failed codes per user in one record,
// mfa/<user>/lock, updated only by compare-and-swap on its version, so
// failures spread over every node add up and exactly one failure (the
// MaxFailures-th) starts the lock. A success deletes the record in the same
// transaction that accepts the code. While the lock holds, attempts are
// refused without looking at the code: a locked account gives an attacker
// no oracle.

// locked reports whether the lock holds at now.
func (r lockRecord) locked(now time.Time) bool {
	return !r.LockedUntil.IsZero() && now.Before(r.LockedUntil)
}

// afterFailure returns the record after one more failure at now, and
// whether this failure starts the lock. A lock that has run out starts a
// fresh count. Failures recorded while locked (an attempt that checked the
// code just before another node started the lock) extend the count but not
// the lock.
func (r lockRecord) afterFailure(now time.Time) (next lockRecord, starts bool) {
	if !r.LockedUntil.IsZero() && !now.Before(r.LockedUntil) {
		r = lockRecord{}
	}
	r.V = recordVersion
	r.Failures++
	r.LastFailure = now
	if r.Failures >= MaxFailures && r.LockedUntil.IsZero() {
		r.LockedUntil = now.Add(LockoutDuration)
		return r, true
	}
	return r, false
}

// recordFailure adds one failure to userID's count by compare-and-swap,
// starting from the record cur at version ver as already read, with the
// audit events that events returns for the count written, in the same
// transaction. It returns the record written and whether this failure
// started the lock.
func (m *MFA) recordFailure(ctx context.Context, userID string, cur lockRecord, ver uint64, now time.Time,
	events func(next lockRecord, starts bool) []audit.Event) (lockRecord, bool, error) {
	key := lockKey(userID)
	for range maxCASAttempts {
		next, starts := cur.afterFailure(now)
		res, err := audit.Commit(ctx, m.store, m.rec, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(key, ver)},
			Ops:      []cluster.Op{cluster.Put(key, encodeRecord(&next))},
		}, events(next, starts)...)
		if err != nil {
			return lockRecord{}, false, fmt.Errorf("recording failed code: %w", err)
		}
		if res.Succeeded {
			return next, starts, nil
		}
		var ok bool
		cur, ver, ok, err = getRecord[lockRecord](ctx, m.store, key, cluster.Linearizable)
		if err != nil {
			return lockRecord{}, false, fmt.Errorf("reading lockout state: %w", err)
		}
		if !ok {
			cur = lockRecord{}
		}
	}
	return lockRecord{}, false, fmt.Errorf("recording failed code for %q: %w", userID, ErrContended)
}

// fail handles a wrong code: it counts the failure cluster-wide, records
// auth.mfa (failure, wrong code) and, if this failure starts the lock,
// auth.lockout. It returns ErrBadCode, joined with any error on the way.
func (m *MFA) fail(ctx context.Context, id Identity, src Source, st *mfaState, now time.Time, action, method string) error {
	// The count, the failure's record and a lock's record commit together.
	next, starts, err := m.recordFailure(ctx, id.UserID, st.lock, st.lockVer, now, func(next lockRecord, starts bool) []audit.Event {
		evs := []audit.Event{mfaEvent(id, src, action, method, audit.Failure, ReasonWrongCode,
			map[string]string{"failures": strconv.Itoa(next.Failures)})}
		if starts {
			evs = append(evs, audit.Event{
				Type:    audit.TypeLockout,
				Actor:   identityActor(id),
				Source:  auditSource(src),
				Target:  audit.Target{User: id.UserID},
				Outcome: audit.Failure,
				Reason:  ReasonTooManyFailures,
				Details: map[string]string{
					"failures":     strconv.Itoa(next.Failures),
					"locked_until": next.LockedUntil.Format(time.RFC3339),
				},
			})
		}
		return evs
	})
	if err != nil {
		// The code was wrong either way; the count could not be kept (nor
		// its record): the attempt is recorded on its own.
		auditErr := m.event(ctx, id, src, action, method, audit.Failure, ReasonWrongCode, nil)
		return failWith(ErrBadCode, failWith(err, auditErr))
	}
	if starts {
		m.log.Warn("mfa lockout", "user", id.UserID, "until", next.LockedUntil, "src", src.Addr)
	}
	return ErrBadCode
}

// refuseLocked records an attempt refused because the user is locked out.
func (m *MFA) refuseLocked(ctx context.Context, id Identity, src Source, st *mfaState, action, method string) error {
	auditErr := m.event(ctx, id, src, action, method, audit.Failure, ReasonLocked,
		map[string]string{"locked_until": st.lock.LockedUntil.Format(time.RFC3339)})
	return failWith(ErrLocked, auditErr)
}

// Lockout is a user's lockout state: consecutive failed codes and, while
// locked, when the lock ends.
type Lockout struct {
	Failures    int       `json:"failures"`
	LastFailure time.Time `json:"last_failure,omitzero"`
	// LockedUntil is set while the lock holds.
	LockedUntil time.Time `json:"locked_until,omitzero"`
}

// Lockout returns userID's lockout state, read linearizably.
func (m *MFA) Lockout(ctx context.Context, userID string) (Lockout, error) {
	if err := checkUserID(userID); err != nil {
		return Lockout{}, err
	}
	rec, _, _, err := getRecord[lockRecord](ctx, m.store, lockKey(userID), cluster.Linearizable)
	if err != nil {
		return Lockout{}, fmt.Errorf("reading lockout state: %w", err)
	}
	out := Lockout{Failures: rec.Failures, LastFailure: rec.LastFailure}
	if rec.locked(m.now()) {
		out.LockedUntil = rec.LockedUntil
	}
	return out, nil
}

// Unlock ends userID's lockout and clears the failure count, as actor,
// recorded as auth.lockout with action lockout.clear. The TOTP enrollment,
// replay guard and recovery codes stay: unlike Reset, the user signs in
// with the authenticator they have.
func (m *MFA) Unlock(ctx context.Context, userID string, actor audit.Actor, src Source) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	// The unlock and its record commit together or not at all.
	if _, err := audit.Commit(ctx, m.store, m.rec, cluster.Txn{Ops: []cluster.Op{cluster.Delete(lockKey(userID))}},
		audit.Event{Type: audit.TypeLockout, Action: ActionUnlock, Actor: actor,
			Source: auditSource(src), Target: audit.Target{User: userID}, Outcome: audit.Success}); err != nil {
		return fmt.Errorf("clearing lockout: %w", err)
	}
	return nil
}

// ActionUnlock marks an administrator ending a lockout.
const ActionUnlock = "lockout.clear"
