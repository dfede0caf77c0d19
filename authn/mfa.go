package authn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// Audit reasons for failed attempts: the exact cause, for the audit log
// only (clients are told little). SIEM rules may match on them.
const (
	ReasonWrongCode       = "wrong code"
	ReasonReplayed        = "replayed"
	ReasonLocked          = "locked"
	ReasonNotEnrolled     = "not enrolled"
	ReasonAlreadyEnrolled = "already enrolled"
	ReasonTooManyFailures = "too many failed codes"
	ReasonUserDisabled    = "user disabled"
	ReasonUnknownUser     = "unknown user"
	ReasonUnknownSession  = "unknown session"
)

// Audit actions under auth.mfa.
const (
	ActionEnrollBegin = "mfa.enroll_begin"
	ActionEnroll      = "mfa.enroll"
	ActionVerify      = "mfa.verify"
)

// DefaultIssuer is the issuer authenticator apps show when MFAConfig.Issuer
// is empty.
const DefaultIssuer = "ferry"

// MFAConfig configures an MFA.
type MFAConfig struct {
	// Store holds every MFA record. Required.
	Store *cluster.Node
	// Key is the master key. TOTP secrets are sealed under it with
	// associated data "mfa/"+userID before they are written, so the state
	// file and snapshots hold ciphertext only; recovery codes are stored as
	// HMACs under a key derived from it. Required.
	Key seal.Key
	// Issuer is shown in authenticator apps; default DefaultIssuer. It must
	// not contain ':' (the otpauth label separator).
	Issuer string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Recorder receives an audit event for every attempt. Required.
	Recorder audit.Recorder
	// Logger; default discards.
	Logger *slog.Logger
}

// Validate checks the configuration, naming the first bad field.
func (c *MFAConfig) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("mfa config: store: required")
	case c.Key.IsZero():
		return errors.New("mfa config: key: the master key is required")
	case c.Recorder == nil:
		return errors.New("mfa config: recorder: required")
	case strings.Contains(c.Issuer, ":"):
		return fmt.Errorf("mfa config: issuer %q: must not contain ':'", c.Issuer)
	}
	return nil
}

// MFA enrolls and verifies second factors: TOTP with a cluster-wide replay
// guard and lockout, and single-use recovery codes. It is safe for
// concurrent use, and any number of MFAs on any nodes may serve the same
// users: every decision is a compare-and-swap in the cluster store.
type MFA struct {
	store       *cluster.Node
	key         seal.Key
	recoveryKey []byte // HMAC key for recovery code hashes, derived from key
	issuer      string
	now         func() time.Time
	rec         audit.Recorder
	log         *slog.Logger
}

// NewMFA returns an MFA for cfg.
func NewMFA(cfg MFAConfig) (*MFA, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &MFA{
		store:       cfg.Store,
		key:         cfg.Key,
		recoveryKey: seal.DeriveKey(cfg.Key, "mfa-recovery"),
		issuer:      cfg.Issuer,
		now:         cfg.Now,
		rec:         cfg.Recorder,
		log:         cfg.Logger,
	}
	if m.issuer == "" {
		m.issuer = DefaultIssuer
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return m, nil
}

// mfaState is everything stored about one user's MFA, read at once.
type mfaState struct {
	totp     totpRecord
	totpVer  uint64 // 0: no enrollment
	usedStep uint64
	usedVer  uint64 // 0: no code accepted yet
	lock     lockRecord
	lockVer  uint64                   // 0: no failures
	recovery map[string]recoveryEntry // unused codes by HMAC
	spent    map[string]recoveryEntry // used codes by HMAC
}

type recoveryEntry struct {
	rec recoveryRecord
	ver uint64
}

// enrolled reports whether the user has a confirmed TOTP.
func (st *mfaState) enrolled() bool { return st.totpVer != 0 && st.totp.Confirmed }

// load reads a user's MFA records with one listing.
func (m *MFA) load(ctx context.Context, userID string, c cluster.Consistency) (*mfaState, error) {
	prefix := mfaPrefix(userID)
	kvs, _, err := m.store.List(ctx, prefix, c)
	if err != nil {
		return nil, fmt.Errorf("reading MFA state: %w", err)
	}
	st := &mfaState{recovery: map[string]recoveryEntry{}, spent: map[string]recoveryEntry{}}
	for _, kv := range kvs {
		name := strings.TrimPrefix(kv.Key, prefix)
		switch {
		case name == "totp":
			if st.totp, err = decodeRecord[totpRecord](kv.Key, kv.Value); err != nil {
				return nil, err
			}
			st.totpVer = kv.Version
		case name == "used":
			u, err := decodeRecord[usedRecord](kv.Key, kv.Value)
			if err != nil {
				return nil, err
			}
			st.usedStep, st.usedVer = u.Step, kv.Version
		case name == "lock":
			if st.lock, err = decodeRecord[lockRecord](kv.Key, kv.Value); err != nil {
				return nil, err
			}
			st.lockVer = kv.Version
		case strings.HasPrefix(name, "recovery/"), strings.HasPrefix(name, "recovery-used/"):
			r, err := decodeRecord[recoveryRecord](kv.Key, kv.Value)
			if err != nil {
				return nil, err
			}
			h, dst := strings.TrimPrefix(name, "recovery/"), st.recovery
			if strings.HasPrefix(name, "recovery-used/") {
				h, dst = strings.TrimPrefix(name, "recovery-used/"), st.spent
			}
			dst[h] = recoveryEntry{rec: r, ver: kv.Version}
		}
		// Other names are left alone: a newer ferry may add records.
	}
	return st, nil
}

// openSecret unseals the user's TOTP secret.
func (m *MFA) openSecret(userID string, r *totpRecord) (totpSecret, error) {
	s, err := seal.Open(m.key, r.Secret, []byte("mfa/"+userID))
	if err != nil {
		return nil, fmt.Errorf("opening TOTP secret of %q: %w", userID, err)
	}
	return totpSecret(s), nil
}

// event records an auth.mfa event about id.
func (m *MFA) event(ctx context.Context, id Identity, src Source, action, method string, outcome audit.Outcome, reason string, details map[string]string) error {
	if details == nil {
		details = map[string]string{}
	}
	return recordEvent(ctx, m.rec, mfaEvent(id, src, action, method, outcome, reason, details))
}

// mfaEvent returns an auth.mfa event.
func mfaEvent(id Identity, src Source, action, method string, outcome audit.Outcome, reason string, details map[string]string) audit.Event {
	if details == nil {
		details = map[string]string{}
	}
	details["method"] = method
	return audit.Event{
		Type:    audit.TypeMFA,
		Action:  action,
		Actor:   identityActor(id),
		Source:  auditSource(src),
		Target:  audit.Target{User: id.UserID},
		Outcome: outcome,
		Reason:  reason,
		Details: details,
	}
}

// Enrolled reports whether userID has a confirmed TOTP, reading
// linearizably.
func (m *MFA) Enrolled(ctx context.Context, userID string) (bool, error) {
	if err := checkUserID(userID); err != nil {
		return false, err
	}
	rec, _, ok, err := getRecord[totpRecord](ctx, m.store, totpKey(userID), cluster.Linearizable)
	if err != nil {
		return false, fmt.Errorf("reading enrollment: %w", err)
	}
	return ok && rec.Confirmed, nil
}

// BeginEnroll makes a new TOTP secret for id, stores it sealed as a pending
// enrollment (replacing an unconfirmed one) and returns what the person
// needs to add it to an authenticator app. It returns ErrAlreadyEnrolled if
// the user has a confirmed TOTP.
func (m *MFA) BeginEnroll(ctx context.Context, id Identity) (Enrollment, error) {
	if err := checkUserID(id.UserID); err != nil {
		return Enrollment{}, err
	}
	account := id.Email
	if account == "" {
		account = id.UserID
	}
	key := totpKey(id.UserID)
	var r rounds
	for range maxCASAttempts {
		cur, ver, ok, err := getRecord[totpRecord](ctx, m.store, key, r.consistency())
		if err != nil {
			return Enrollment{}, fmt.Errorf("reading enrollment: %w", err)
		}
		if ok && cur.Confirmed {
			if !r.final() {
				continue
			}
			return Enrollment{}, ErrAlreadyEnrolled
		}
		secret, err := newTOTPSecret()
		if err != nil {
			return Enrollment{}, err
		}
		enr, err := newEnrollment(secret, m.issuer, account)
		if err != nil {
			return Enrollment{}, err
		}
		sealed, err := seal.Seal(m.key, secret, []byte("mfa/"+id.UserID))
		if err != nil {
			return Enrollment{}, fmt.Errorf("sealing TOTP secret: %w", err)
		}
		rec := totpRecord{V: recordVersion, Secret: sealed, Created: utcNow(m.now)}
		res, err := m.store.Txn(ctx, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(key, ver)},
			Ops:      []cluster.Op{cluster.Put(key, encodeRecord(&rec))},
		})
		if err != nil {
			return Enrollment{}, fmt.Errorf("storing pending enrollment: %w", err)
		}
		if !res.Succeeded {
			r.conflict()
			continue
		}
		if err := m.event(ctx, id, Source{}, ActionEnrollBegin, MethodTOTP, audit.Success, "", nil); err != nil {
			return Enrollment{}, err
		}
		return enr, nil
	}
	return Enrollment{}, fmt.Errorf("beginning enrollment for %q: %w", id.UserID, ErrContended)
}

// ConfirmEnroll confirms id's pending enrollment with the first valid code,
// which also counts as that code's use, and returns the user's new
// recovery codes, to be shown once. Wrong codes count towards the lockout.
// It returns ErrNotEnrolled when nothing is pending, ErrAlreadyEnrolled
// when already confirmed, and ErrBadCode, ErrReplayed or ErrLocked as
// Verify does.
func (m *MFA) ConfirmEnroll(ctx context.Context, id Identity, code string, src Source) (recoveryCodes []string, err error) {
	if err := checkUserID(id.UserID); err != nil {
		return nil, err
	}
	var r rounds
	for range maxCASAttempts {
		st, err := m.load(ctx, id.UserID, r.consistency())
		if err != nil {
			return nil, err
		}
		now := utcNow(m.now)
		refuse := func(err error, reason string) error {
			return failWith(err, m.event(ctx, id, src, ActionEnroll, MethodTOTP, audit.Failure, reason, nil))
		}
		switch {
		case st.lock.locked(now):
			if r.final() {
				return nil, m.refuseLocked(ctx, id, src, st, ActionEnroll, MethodTOTP)
			}
			continue
		case st.totpVer == 0:
			if r.final() {
				return nil, refuse(ErrNotEnrolled, ReasonNotEnrolled)
			}
			continue
		case st.totp.Confirmed:
			if r.final() {
				return nil, refuse(ErrAlreadyEnrolled, ReasonAlreadyEnrolled)
			}
			continue
		}
		secret, err := m.openSecret(id.UserID, &st.totp)
		if err != nil {
			return nil, err
		}
		step, ok := matchStep(secret, code, now)
		if !ok {
			if r.final() {
				return nil, m.fail(ctx, id, src, st, now, ActionEnroll, MethodTOTP)
			}
			continue
		}
		if st.usedVer != 0 && step <= st.usedStep {
			if r.final() {
				return nil, refuse(ErrReplayed, ReasonReplayed)
			}
			continue
		}
		codes, hashes, err := newRecoveryCodes(m.recoveryKey, id.UserID)
		if err != nil {
			return nil, err
		}
		confirmed := st.totp
		confirmed.Confirmed, confirmed.ConfirmedAt = true, now
		ops := []cluster.Op{
			cluster.Put(totpKey(id.UserID), encodeRecord(&confirmed)),
			cluster.Put(usedKey(id.UserID), encodeRecord(&usedRecord{V: recordVersion, Step: step})),
			cluster.DeletePrefix(recoveryPrefix(id.UserID)),
			cluster.DeletePrefix(recoveryUsedPfx(id.UserID)),
		}
		if st.lockVer != 0 {
			ops = append(ops, cluster.Delete(lockKey(id.UserID)))
		}
		for _, h := range hashes {
			ops = append(ops, cluster.Put(recoveryPrefix(id.UserID)+h, encodeRecord(&recoveryRecord{V: recordVersion, Created: now})))
		}
		// The enrollment and its record commit together or not at all.
		res, err := audit.Commit(ctx, m.store, m.rec, cluster.Txn{Compares: st.guards(id.UserID), Ops: ops},
			mfaEvent(id, src, ActionEnroll, MethodTOTP, audit.Success, "", nil))
		if err != nil {
			return nil, fmt.Errorf("confirming enrollment: %w", err)
		}
		if !res.Succeeded {
			r.conflict()
			continue
		}
		return codes, nil
	}
	return nil, fmt.Errorf("confirming enrollment for %q: %w", id.UserID, ErrContended)
}

// guards returns the compares that make a transaction built on st commit
// only if the enrollment, the replay guard and the lockout count are still
// as read.
func (st *mfaState) guards(userID string) []cluster.Compare {
	return []cluster.Compare{
		cluster.IfVersion(totpKey(userID), st.totpVer),
		cluster.IfVersion(usedKey(userID), st.usedVer),
		cluster.IfVersion(lockKey(userID), st.lockVer),
	}
}

// Verify checks a TOTP code for id, accepting the codes of the current
// 30-second step and the steps either side. A code is accepted once only,
// cluster wide: at time step s, and only by a transaction that finds the
// user's last accepted step (below s), enrollment and failure count
// unchanged since they were read, so of two nodes verifying the same code
// at once exactly one accepts and the other returns ErrReplayed. A success
// resets the failure count.
//
// It returns ErrBadCode, ErrReplayed, ErrLocked or ErrNotEnrolled, each
// decided on a linearizable read (see rounds), and records every attempt as
// an auth.mfa event. While a user is locked the answer is ErrLocked whatever
// the code: a node that sees the lock does not check the code at all, and
// one that has not yet applied the lock still cannot accept, because the
// accepting transaction compares the failure count's version.
func (m *MFA) Verify(ctx context.Context, id Identity, code string, src Source) error {
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
		refuse := func(err error, reason string) error {
			return failWith(err, m.event(ctx, id, src, ActionVerify, MethodTOTP, audit.Failure, reason, nil))
		}
		switch {
		case st.lock.locked(now):
			if r.final() {
				return m.refuseLocked(ctx, id, src, st, ActionVerify, MethodTOTP)
			}
			continue
		case !st.enrolled():
			if r.final() {
				return refuse(ErrNotEnrolled, ReasonNotEnrolled)
			}
			continue
		}
		secret, err := m.openSecret(id.UserID, &st.totp)
		if err != nil {
			return err
		}
		step, ok := matchStep(secret, code, now)
		if !ok {
			if r.final() {
				return m.fail(ctx, id, src, st, now, ActionVerify, MethodTOTP)
			}
			continue
		}
		if st.usedVer != 0 && step <= st.usedStep {
			if r.final() {
				return refuse(ErrReplayed, ReasonReplayed)
			}
			continue
		}
		ops := []cluster.Op{cluster.Put(usedKey(id.UserID), encodeRecord(&usedRecord{V: recordVersion, Step: step}))}
		if st.lockVer != 0 {
			ops = append(ops, cluster.Delete(lockKey(id.UserID)))
		}
		// The spent step and its record commit together or not at all.
		res, err := audit.Commit(ctx, m.store, m.rec, cluster.Txn{Compares: st.guards(id.UserID), Ops: ops},
			mfaEvent(id, src, ActionVerify, MethodTOTP, audit.Success, "", nil))
		if err != nil {
			return fmt.Errorf("accepting code: %w", err)
		}
		if !res.Succeeded {
			// Another attempt for this user committed first, or the read
			// was stale; read again. If another node accepted this code,
			// the next round says ErrReplayed.
			r.conflict()
			continue
		}
		return nil
	}
	return fmt.Errorf("verifying code for %q: %w", id.UserID, ErrContended)
}

// Reset removes userID's TOTP enrollment, recovery codes, replay guard and
// lockout, so the user enrolls again at the next sign-in. It is an
// administrator's action, recorded as user.mfa_reset with actor. It returns
// ErrNotEnrolled if the user has no MFA state at all.
func (m *MFA) Reset(ctx context.Context, userID string, actor audit.Actor, src Source) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	e := audit.Event{Type: audit.TypeMFAReset, Actor: actor, Source: auditSource(src), Target: audit.Target{User: userID}}
	kvs, _, err := m.store.List(ctx, mfaPrefix(userID), cluster.Linearizable)
	if err != nil {
		return fmt.Errorf("reading MFA state: %w", err)
	}
	if len(kvs) == 0 {
		e.Outcome, e.Reason = audit.Failure, ReasonNotEnrolled
		return failWith(ErrNotEnrolled, recordEvent(ctx, m.rec, e))
	}
	// The reset and its record commit together or not at all.
	e.Outcome = audit.Success
	if _, err := audit.Commit(ctx, m.store, m.rec, cluster.Txn{Ops: []cluster.Op{cluster.DeletePrefix(mfaPrefix(userID))}}, e); err != nil {
		return fmt.Errorf("resetting MFA: %w", err)
	}
	m.log.Info("mfa reset", "user", userID, "actor", actor.UserID)
	return nil
}
