package authn

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"
)

// Errors callers compare with errors.Is. Their messages are for logs and
// audit; clients get generic text.
var (
	// ErrBadCode is returned when a TOTP or recovery code is wrong.
	ErrBadCode = errors.New("authn: wrong code")
	// ErrReplayed is returned when a TOTP code (or an earlier one) was
	// already accepted for the user.
	ErrReplayed = errors.New("authn: code already used")
	// ErrLocked is returned while a user is locked out after too many
	// failed codes.
	ErrLocked = errors.New("authn: account locked")
	// ErrNotEnrolled is returned when a user has no confirmed TOTP.
	ErrNotEnrolled = errors.New("authn: MFA not enrolled")
	// ErrSessionInvalid is returned for an unknown, expired, idle, revoked
	// or disabled user's session.
	ErrSessionInvalid = errors.New("authn: session invalid")
	// ErrUserDisabled is returned when a disabled user tries to sign in.
	ErrUserDisabled = errors.New("authn: user disabled")
	// ErrForbidden is returned when the identity is not allowed to sign in
	// (email domain or group policy).
	ErrForbidden = errors.New("authn: not allowed")
	// ErrAlreadyEnrolled is returned by BeginEnroll and ConfirmEnroll when
	// the user already has a confirmed TOTP; an administrator must reset it
	// first.
	ErrAlreadyEnrolled = errors.New("authn: MFA already enrolled")
	// ErrUnknownUser is returned when no user record exists for an ID.
	ErrUnknownUser = errors.New("authn: unknown user")
	// ErrUnknownSession is returned by Revoke when no session has the ID.
	ErrUnknownSession = errors.New("authn: unknown session")
	// ErrInvalidInput is returned for malformed arguments (an empty or
	// oversized user ID, an unknown MFA method); it wraps a message naming
	// the field.
	ErrInvalidInput = errors.New("authn: invalid input")
	// ErrCorrupt is returned when a stored record cannot be decoded; it
	// wraps a message naming the key. Nothing is changed.
	ErrCorrupt = errors.New("authn: malformed stored record")
	// ErrContended is returned when a compare-and-swap kept losing to
	// concurrent writers and gave up; the caller may retry.
	ErrContended = errors.New("authn: too many concurrent updates")
)

// Roles.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// MFA methods recorded on sessions.
const (
	MethodTOTP     = "totp"
	MethodRecovery = "recovery"
)

// Lockout policy: it answers online guessing of 6-digit codes, counted
// across the whole cluster so spreading guesses over nodes gains nothing.
const (
	MaxFailures     = 10
	LockoutDuration = 30 * time.Minute
)

// Identity is who the identity provider says a person is.
type Identity struct {
	// UserID is ferry's key for the person: UserKey(Issuer, Subject) for
	// identities from an identity provider (see the package doc), or a
	// record's older ID (the bare subject) kept for users stored before
	// keys named the issuer.
	UserID string `json:"user_id"`
	// Issuer and Subject are the IdP's issuer URL and its subject (or the
	// configured user ID claim) for this person; empty for identities not
	// made from an ID token.
	Issuer  string `json:"iss,omitempty"`
	Subject string `json:"sub,omitempty"`
	Email   string `json:"email,omitempty"`
	// EmailVerified reports whether the IdP said email_verified: true.
	// Only a verified email may assign profiles (and only where the
	// operator opted in).
	EmailVerified bool `json:"email_verified,omitempty"`
	// GroupsClaimMissing reports whether neither the ID token nor the
	// userinfo endpoint carried the groups claim at sign-in: the person
	// then has no groups in ferry, whatever the IdP holds (a scope not
	// requested, no mapper at the IdP).
	GroupsClaimMissing bool     `json:"groups_claim_missing,omitempty"`
	Name               string   `json:"name,omitempty"`
	Groups             []string `json:"groups,omitempty"`
	// IdPSession is the identity provider's session ID (the ID token's
	// sid claim), so a back-channel logout naming only the IdP session
	// finds the sessions it began (Sessions.EndIdPSession).
	IdPSession string `json:"idp_sid,omitempty"`
}

// Display returns how to name the person to people: "Name <email>", the
// email, the name, or "this account". It never returns the opaque subject
// or user key.
func (id Identity) Display() string { return displayPerson(id.Name, id.Email) }

func displayPerson(name, email string) string {
	switch {
	case name != "" && email != "":
		return name + " <" + email + ">"
	case email != "":
		return email
	case name != "":
		return name
	}
	return "this account"
}

// SessionToken is a bearer secret: 256 random bits, base64url. Only its
// hash is stored. It never prints.
type SessionToken string

// Hash returns the hex SHA-256 under which the token's session is stored.
func (t SessionToken) Hash() string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// Equal compares in constant time.
func (t SessionToken) Equal(o SessionToken) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(o)) == 1
}

func (t SessionToken) String() string       { return "[redacted]" }
func (t SessionToken) GoString() string     { return "[redacted]" }
func (t SessionToken) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Reveal returns the token text, for sending it to its owner only.
func (t SessionToken) Reveal() string { return string(t) }

// Session is a signed-in person's session as stored (without its token).
type Session struct {
	ID        string    `json:"id"` // public ID (not the token), for listing and revoking
	Identity  Identity  `json:"identity"`
	Role      string    `json:"role"`
	AuthTime  time.Time `json:"auth_time"`
	MFAMethod string    `json:"mfa_method"`
	Expires   time.Time `json:"expires"`
	LastSeen  time.Time `json:"last_seen"`
	SourceIP  string    `json:"source_ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
}

// Source is where a request came from, as the HTTP layer saw it. It is
// copied into audit events.
type Source struct {
	Addr      string `json:"addr,omitempty"`
	Port      int    `json:"port,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}
