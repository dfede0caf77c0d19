package authn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// Recovery codes let a person who lost their authenticator sign in: ten
// codes of ten base32 characters (50 random bits each, far beyond online
// guessing under the lockout), shown once at enrollment as "ABCDE-FGHIJ".
// Only an HMAC-SHA256 of each code is stored, keyed by a key derived from
// the master key and bound to the user ID, so a copy of the store alone
// does not even allow an offline search. A code is spent by a transaction
// that deletes it if still present at the version read and records it as
// used, so two nodes given the same code cannot both accept it.
const (
	RecoveryCodeCount = 10
	recoveryCodeLen   = 10 // base32 characters: 50 bits
	recoveryGroup     = 5  // characters per group when shown
)

const b32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// newRecoveryCodes returns fresh codes as shown to the person and their
// HMACs as stored, in the same order.
func newRecoveryCodes(key []byte, userID string) (codes, hashes []string, err error) {
	for range RecoveryCodeCount {
		var raw [7]byte // 56 bits, of which the first 50 become ten characters
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, nil, fmt.Errorf("generating recovery codes: %w", err)
		}
		plain := b32.EncodeToString(raw[:])[:recoveryCodeLen]
		codes = append(codes, plain[:recoveryGroup]+"-"+plain[recoveryGroup:])
		hashes = append(hashes, recoveryHash(key, userID, plain))
	}
	return codes, hashes, nil
}

// normalizeRecovery uppercases code, drops dashes and spaces, and reads
// the digits 0 and 1, which the base32 alphabet lacks, as the letters O
// and I people mistake them for; it reports whether what is left has the
// shape of a recovery code.
func normalizeRecovery(code string) (string, bool) {
	code = strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ' || r == '\t':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r == '0':
			return 'O'
		case r == '1':
			return 'I'
		}
		return r
	}, code)
	if len(code) != recoveryCodeLen {
		return "", false
	}
	for i := 0; i < len(code); i++ {
		if strings.IndexByte(b32Alphabet, code[i]) < 0 {
			return "", false
		}
	}
	return code, true
}

// recoveryHash returns the hex HMAC-SHA256 under which a normalized code is
// stored for userID.
func recoveryHash(key []byte, userID, normalized string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write([]byte(normalized))
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyRecovery checks and spends one of id's recovery codes. Each code
// works once; a spent code returns ErrReplayed. Wrong codes count towards
// the lockout, a success resets it, and a locked user is refused with
// ErrLocked; each attempt is recorded as an auth.mfa event with method
// "recovery".
func (m *MFA) VerifyRecovery(ctx context.Context, id Identity, code string, src Source) error {
	if err := checkUserID(id.UserID); err != nil {
		return err
	}
	var r rounds
	for range maxCASAttempts {
		st, err := m.load(ctx, id.UserID, r.consistency())
		if err != nil {
			return err
		}
		now := utcNow(m.now)
		switch {
		case st.lock.locked(now):
			if r.final() {
				return m.refuseLocked(ctx, id, src, st, ActionVerify, MethodRecovery)
			}
			continue
		case !st.enrolled():
			if r.final() {
				return failWith(ErrNotEnrolled, m.event(ctx, id, src, ActionVerify, MethodRecovery, audit.Failure, ReasonNotEnrolled, nil))
			}
			continue
		}
		h := ""
		if norm, ok := normalizeRecovery(code); ok {
			h = recoveryHash(m.recoveryKey, id.UserID, norm)
		}
		entry, unused := st.recovery[h]
		if !unused {
			if !r.final() {
				continue
			}
			if _, spent := st.spent[h]; spent {
				return failWith(ErrReplayed, m.event(ctx, id, src, ActionVerify, MethodRecovery, audit.Failure, ReasonReplayed, nil))
			}
			return m.fail(ctx, id, src, st, now, ActionVerify, MethodRecovery)
		}
		key := recoveryPrefix(id.UserID) + h
		spent := entry.rec
		spent.Used = now
		ops := []cluster.Op{
			cluster.Delete(key),
			cluster.Put(recoveryUsedPfx(id.UserID)+h, encodeRecord(&spent)),
		}
		if st.lockVer != 0 {
			ops = append(ops, cluster.Delete(lockKey(id.UserID)))
		}
		// The spent code and its record commit together or not at all.
		res, err := audit.Commit(ctx, m.store, m.rec, cluster.Txn{
			Compares: []cluster.Compare{
				cluster.IfVersion(key, entry.ver),
				cluster.IfVersion(totpKey(id.UserID), st.totpVer),
				cluster.IfVersion(lockKey(id.UserID), st.lockVer),
			},
			Ops: ops,
		}, mfaEvent(id, src, ActionVerify, MethodRecovery, audit.Success, "", nil))
		if err != nil {
			return fmt.Errorf("spending recovery code: %w", err)
		}
		if !res.Succeeded {
			r.conflict()
			continue
		}
		m.log.Info("recovery code used", "user", id.UserID)
		return nil
	}
	return fmt.Errorf("verifying recovery code for %q: %w", id.UserID, ErrContended)
}

// RecoveryRemaining returns how many unused recovery codes userID has.
func (m *MFA) RecoveryRemaining(ctx context.Context, userID string) (int, error) {
	if err := checkUserID(userID); err != nil {
		return 0, err
	}
	st, err := m.load(ctx, userID, cluster.Linearizable)
	if err != nil {
		return 0, err
	}
	return len(st.recovery), nil
}
