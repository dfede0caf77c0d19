package authn

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// Key layout in the cluster store. User IDs are path-escaped in keys, so an
// ID holding "/" cannot reach into another user's keys, and a user's prefix
// (ending in "/") never matches another user's.
//
//	users/<user>                      userRecord
//	mfa/<user>/totp                   totpRecord (secret sealed under the master key)
//	mfa/<user>/used                   usedRecord: the last accepted TOTP time step
//	mfa/<user>/lock                   lockRecord: consecutive failures, lock end
//	mfa/<user>/recovery/<hmac>        recoveryRecord: an unused recovery code
//	mfa/<user>/recovery-used/<hmac>   recoveryRecord: a used one (so reuse reads as a replay)
//	sessions/<sha256(token)>          sessionRecord
//	sessionidx/id/<session ID>        sessionRef: from the public ID to the token hash
//	sessionidx/user/<user>/<ID>       sessionRef: a user's sessions
//	sessionidx/gen/<user>             rewritten by every session creation for the user
//	oidc/refresh/<user>               refreshRecord: the sign-in's refresh token, sealed
const (
	prefixUsers       = "users/"
	prefixMFA         = "mfa/"
	prefixSessions    = "sessions/"
	prefixSessionID   = "sessionidx/id/"
	prefixSessionUser = "sessionidx/user/"
	prefixSessionGen  = "sessionidx/gen/"
)

func escapeID(id string) string { return url.PathEscape(id) }

func userKey(id string) string         { return prefixUsers + escapeID(id) }
func mfaPrefix(id string) string       { return prefixMFA + escapeID(id) + "/" }
func totpKey(id string) string         { return mfaPrefix(id) + "totp" }
func usedKey(id string) string         { return mfaPrefix(id) + "used" }
func lockKey(id string) string         { return mfaPrefix(id) + "lock" }
func recoveryPrefix(id string) string  { return mfaPrefix(id) + "recovery/" }
func recoveryUsedPfx(id string) string { return mfaPrefix(id) + "recovery-used/" }
func sessionKey(hash string) string    { return prefixSessions + hash }
func sessionIDKey(sid string) string   { return prefixSessionID + sid }
func userSessionsPrefix(u string) string {
	return prefixSessionUser + escapeID(u) + "/"
}
func userSessionKey(u, sid string) string { return userSessionsPrefix(u) + sid }

// sessionGenKey is rewritten by every session creation for a user; ending
// all of a user's sessions compares its version, so a session created
// meanwhile makes that transaction retry and end it too.
func sessionGenKey(u string) string { return prefixSessionGen + escapeID(u) }

// maxCASAttempts bounds compare-and-swap retries. Every attempt is a round
// trip to the leader, so losing this many times in a row means heavy
// contention on one user's keys, which is itself suspicious.
const maxCASAttempts = 32

// rounds drives the read-decide-swap loops. The first round reads this
// node's local state, which may lag the leader by a few tens of
// milliseconds (a follower learns of commits with the leader's next
// append); every later round reads linearizably. That is safe because
// nothing is accepted on a read alone: an acceptance commits only through
// a transaction comparing the versions of every record the decision rested
// on, at the leader, so a stale read can only make it fail and retry. A
// refusal writes nothing to compare, so it stands only when decided on a
// linearizable read: a refusal on the first round is decided again.
type rounds struct {
	fresh bool
}

// consistency returns how this round reads.
func (r *rounds) consistency() cluster.Consistency {
	if r.fresh {
		return cluster.Linearizable
	}
	return cluster.Local
}

// final reports whether a refusal decided on this round's read may stand;
// if not, the next round reads linearizably.
func (r *rounds) final() bool {
	if r.fresh {
		return true
	}
	r.fresh = true
	return false
}

// conflict notes a failed compare: the next round reads linearizably.
func (r *rounds) conflict() { r.fresh = true }

// recordVersion is the format version of every stored record. A reader
// refuses versions it does not know rather than guess.
const recordVersion = 1

// maxUserIDLen bounds user IDs: they become keys (cluster.MaxKeyLen) and
// audit fields. A user key is an issuer URL and a subject of up to 255
// characters (see UserKey).
const maxUserIDLen = 512

// maxEscapedIDLen bounds a user ID as it appears, path-escaped, inside
// store keys, leaving room for the longest prefix and suffix under
// cluster.MaxKeyLen.
const maxEscapedIDLen = 900

// checkUserID reports whether id is usable as a user ID: non-empty, short,
// valid UTF-8 and free of control characters.
func checkUserID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: user_id: empty", ErrInvalidInput)
	case len(id) > maxUserIDLen:
		return fmt.Errorf("%w: user_id: longer than %d bytes", ErrInvalidInput, maxUserIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: user_id: not valid UTF-8", ErrInvalidInput)
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: user_id: contains control characters", ErrInvalidInput)
	case len(escapeID(id)) > maxEscapedIDLen:
		return fmt.Errorf("%w: user_id: longer than %d bytes once escaped", ErrInvalidInput, maxEscapedIDLen)
	}
	return nil
}

// record is a stored value: it knows its format version and can check its
// own fields after decoding.
type record interface {
	check() error
}

// decodeRecord decodes a stored JSON value into T and checks it. It never
// panics; any problem is an error wrapping ErrCorrupt that names the key.
func decodeRecord[T any, PT interface {
	*T
	record
}](key string, b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, PT(&v)); err != nil {
		return v, fmt.Errorf("%w: %s: %s", ErrCorrupt, key, jsonErrText(err))
	}
	if err := PT(&v).check(); err != nil {
		return v, fmt.Errorf("%w: %s: %s", ErrCorrupt, key, err.Error())
	}
	// What was read must be writable again (a record is read, changed and
	// written back), so oddities such as out-of-range times fail here.
	if _, err := json.Marshal(PT(&v)); err != nil {
		return v, fmt.Errorf("%w: %s: cannot be re-encoded", ErrCorrupt, key)
	}
	return v, nil
}

// jsonErrText describes a JSON error without echoing stored bytes, which
// could hold sealed or hashed material.
func jsonErrText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q: wrong type %s", te.Field, te.Value)
	}
	return "invalid JSON"
}

// encodeRecord encodes a record. Records are plain structs, so this fails
// only on a programming error.
func encodeRecord(v record) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("authn: encoding %T: %v", v, err))
	}
	return b
}

func checkVersion(v int) error {
	if v != recordVersion {
		return fmt.Errorf("format version %d, want %d", v, recordVersion)
	}
	return nil
}

// userRecord is stored under users/<user>. Records written before keys
// named the issuer have no iss/sub; they stay readable, and the first
// sign-in from the configured issuer with that subject claims them (see
// Users.Upsert).
type userRecord struct {
	V             int      `json:"v"`
	ID            string   `json:"id"`
	Issuer        string   `json:"iss,omitempty"`
	Subject       string   `json:"sub,omitempty"`
	Email         string   `json:"email,omitempty"`
	EmailVerified bool     `json:"email_verified,omitempty"`
	Name          string   `json:"name,omitempty"`
	Groups        []string `json:"groups,omitempty"`
	// GroupsClaimMissing: see Identity.GroupsClaimMissing, at the last
	// sign-in.
	GroupsClaimMissing bool      `json:"groups_claim_missing,omitempty"`
	Disabled           bool      `json:"disabled"`
	Created            time.Time `json:"created"`
	LastLogin          time.Time `json:"last_login"`
	// Change is the last change to what the record grants (groups,
	// disabled, deprovisioned): the entitlement watcher quotes it as the
	// reason when it revokes.
	Change *Change `json:"change,omitempty"`
	// Suspended, when set, says why the identity provider's word took the
	// user's access away (a refused refresh token, an unreachable provider
	// past the grace); the next successful sign-in lifts it.
	Suspended string `json:"suspended,omitempty"`
}

func (r *userRecord) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if err := checkUserID(r.ID); err != nil {
		return err
	}
	return nil
}

// totpRecord is stored under mfa/<user>/totp. Secret is the raw TOTP key
// sealed with seal.Seal under the master key and AD "mfa/"+userID.
type totpRecord struct {
	V         int       `json:"v"`
	Secret    []byte    `json:"secret_sealed"`
	Confirmed bool      `json:"confirmed"`
	Created   time.Time `json:"created"`
	// ConfirmedAt is zero while the enrollment is pending.
	ConfirmedAt time.Time `json:"confirmed_at,omitzero"`
}

func (r *totpRecord) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if len(r.Secret) == 0 {
		return errors.New("secret_sealed: empty")
	}
	if r.Confirmed && r.ConfirmedAt.IsZero() {
		return errors.New("confirmed_at: missing on a confirmed enrollment")
	}
	return nil
}

// usedRecord is stored under mfa/<user>/used: the replay guard. A code is
// accepted at time step s only if s > Step, by a transaction that compares
// this key's version.
type usedRecord struct {
	V    int    `json:"v"`
	Step uint64 `json:"step"`
}

func (r *usedRecord) check() error { return checkVersion(r.V) }

// lockRecord is stored under mfa/<user>/lock: consecutive failed codes and,
// once MaxFailures is reached, when the lock ends.
type lockRecord struct {
	V           int       `json:"v"`
	Failures    int       `json:"failures"`
	LastFailure time.Time `json:"last_failure"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
}

func (r *lockRecord) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if r.Failures < 0 {
		return fmt.Errorf("failures: %d is negative", r.Failures)
	}
	return nil
}

// recoveryRecord is stored under mfa/<user>/recovery/<hmac> (unused) and
// mfa/<user>/recovery-used/<hmac> (used). The code itself is not stored.
type recoveryRecord struct {
	V       int       `json:"v"`
	Created time.Time `json:"created"`
	Used    time.Time `json:"used,omitzero"`
}

func (r *recoveryRecord) check() error { return checkVersion(r.V) }

// sessionRecord is stored under sessions/<sha256(token)>.
type sessionRecord struct {
	V int `json:"v"`
	Session
}

func (r *sessionRecord) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if r.ID == "" {
		return errors.New("id: empty")
	}
	if err := checkUserID(r.Identity.UserID); err != nil {
		return err
	}
	if r.Expires.IsZero() {
		return errors.New("expires: missing")
	}
	return nil
}

// sessionRef is stored under the session indexes: it points at a session's
// token hash.
type sessionRef struct {
	V      int    `json:"v"`
	Hash   string `json:"hash"`
	UserID string `json:"user_id"`
}

func (r *sessionRef) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if len(r.Hash) != 64 || strings.Trim(r.Hash, "0123456789abcdef") != "" {
		return errors.New("hash: not a hex SHA-256")
	}
	return checkUserID(r.UserID)
}

// getRecord reads and decodes one key. ok is false when the key is absent;
// version is 0 then, which is what cluster.IfVersion expects for "absent".
func getRecord[T any, PT interface {
	*T
	record
}](ctx context.Context, n *cluster.Node, key string, c cluster.Consistency) (v T, version uint64, ok bool, err error) {
	kv, ok, err := n.Get(ctx, key, c)
	if err != nil || !ok {
		return v, 0, false, err
	}
	v, err = decodeRecord[T, PT](key, kv.Value)
	if err != nil {
		return v, 0, false, err
	}
	return v, kv.Version, true, nil
}

// randomString returns n random bytes from crypto/rand in base64url
// without padding.
func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// utcNow returns now() in UTC without a monotonic reading, as it will read
// back from JSON.
func utcNow(now func() time.Time) time.Time { return now().UTC().Round(0) }

func auditSource(s Source) audit.Source {
	return audit.Source{Addr: s.Addr, Port: s.Port, UserAgent: s.UserAgent}
}

func identityActor(id Identity) audit.Actor {
	return audit.Actor{UserID: id.UserID, Email: id.Email, Groups: append([]string(nil), id.Groups...)}
}

// record sends e to rec. Security decisions must not proceed unrecorded, so
// a failure is returned to the caller, which refuses what it was doing.
func recordEvent(ctx context.Context, rec audit.Recorder, e audit.Event) error {
	if err := rec.Record(ctx, e); err != nil {
		return fmt.Errorf("recording audit event %s: %w", e.Type, err)
	}
	return nil
}

// failWith returns the sentinel err joined with an audit error, if any, so
// errors.Is still finds the sentinel.
func failWith(err, auditErr error) error {
	if auditErr == nil {
		return err
	}
	return errors.Join(err, auditErr)
}

// noRecorder refuses every event; it stands in for a missing Recorder so
// that actions needing an audit record fail clearly instead of panicking.
type noRecorder struct{}

var errNoRecorder = errors.New("authn: no audit recorder configured")

func (noRecorder) Record(context.Context, audit.Event) error { return errNoRecorder }

// Prepare refuses too, so a change that needs a record is not made.
func (noRecorder) Prepare(context.Context, audit.Event) (cluster.TxnRecord, error) {
	return cluster.TxnRecord{}, errNoRecorder
}

func (noRecorder) Committed(int, error) {}

func pathUnescape(s string) (string, error) { return url.PathUnescape(s) }
