package pki

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Join token layout:
//
//	ferry-join.<pin>.<base64url-no-padding(expiry || nonce || mac)>
//
// pin is the first 32 hex characters (128 bits) of the CA fingerprint,
// expiry is the Unix time in seconds as 8 bytes big-endian, nonce is 16
// random bytes so that two tokens with the same expiry differ, and mac is
// HMAC-SHA256(secret, expiry || nonce || full CA fingerprint in hex).
const (
	joinPrefix      = "ferry-join."
	joinPinLen      = 32 // hex characters; 128 bits resist second preimages
	joinExpiryLen   = 8
	joinNonceLen    = 16
	joinMACLen      = sha256.Size
	joinSignedLen   = joinExpiryLen + joinNonceLen
	joinPayloadLen  = joinSignedLen + joinMACLen
	fingerprintLen  = 2 * sha256.Size
	joinSecretLen   = 32
	joinTokenLength = len(joinPrefix) + joinPinLen + 1 + (joinPayloadLen*8+5)/6
)

// joinEncoding returns the encoding of the token payload: base64url
// without padding, decoded strictly. Strict decoding rejects non-zero
// padding bits, so each payload has exactly one text form and no character
// of a token can be changed without changing the bytes it stands for.
func joinEncoding() *base64.Encoding { return base64.RawURLEncoding.Strict() }

// ErrTokenMalformed is returned when a join token does not have the shape
// of a ferry join token: wrong prefix, length, pin or encoding.
var ErrTokenMalformed = errors.New("pki: malformed join token")

// ErrTokenInvalid is returned when a well-formed join token was not made
// by this cluster: its MAC does not verify under the cluster's secret, or
// its pin names another CA.
var ErrTokenInvalid = errors.New("pki: invalid join token")

// ErrTokenExpired is returned when an authentic join token's expiry time
// has passed.
var ErrTokenExpired = errors.New("pki: join token expired")

// JoinToken is a join token split into its parts, without verification.
// It is a secret: String, GoString, Format and LogValue show the pin only.
type JoinToken struct {
	// CAPin is the first 32 lowercase hex characters of the SHA-256
	// fingerprint of the cluster CA certificate. A joining node passes it to
	// VerifyPin to authenticate the cluster before sending the token.
	CAPin string

	// raw is the whole token text.
	raw string
}

// ParseJoinToken checks the shape of tok and extracts its CA pin. It does
// not verify the MAC or the expiry: only the cluster, which holds the
// secret, can do that with VerifyJoinToken. Errors wrap ErrTokenMalformed
// and never contain the token.
func ParseJoinToken(tok string) (JoinToken, error) {
	pin, _, err := splitJoinToken(tok)
	if err != nil {
		return JoinToken{}, err
	}
	return JoinToken{CAPin: pin, raw: tok}, nil
}

// Reveal returns the whole token text, to send to the cluster. Never log it.
func (t JoinToken) Reveal() string { return t.raw }

// String returns the token with everything but the pin redacted.
func (t JoinToken) String() string {
	return joinPrefix + t.CAPin + ".[redacted]"
}

// GoString returns the same as String, so %#v does not print the token.
func (t JoinToken) GoString() string { return t.String() }

// Format writes the same as String for every verb.
func (t JoinToken) Format(f fmt.State, verb rune) { io.WriteString(f, t.String()) }

// LogValue returns the same as String, so slog handlers never log the token.
func (t JoinToken) LogValue() slog.Value { return slog.StringValue(t.String()) }

// NewJoinToken returns a join token for the CA with fingerprint
// caFingerprint (as returned by Fingerprint) that expires at expires.
// secret is a 32-byte HMAC key that only the cluster knows; derive it from
// the master key (seal.DeriveKey) so every node can verify tokens.
func NewJoinToken(secret []byte, caFingerprint string, expires time.Time) (string, error) {
	if err := checkJoinArgs(secret, caFingerprint); err != nil {
		return "", err
	}
	exp := expires.Unix()
	if exp <= 0 {
		return "", fmt.Errorf("pki: join token expiry %s is not after 1970", expires.UTC().Format(time.RFC3339))
	}
	payload := make([]byte, joinPayloadLen)
	binary.BigEndian.PutUint64(payload[:joinExpiryLen], uint64(exp))
	if _, err := io.ReadFull(rand.Reader, payload[joinExpiryLen:joinSignedLen]); err != nil {
		return "", fmt.Errorf("pki: generating join token nonce: %w", err)
	}
	copy(payload[joinSignedLen:], joinMAC(secret, payload[:joinSignedLen], caFingerprint))
	return joinPrefix + caFingerprint[:joinPinLen] + "." + joinEncoding().EncodeToString(payload), nil
}

// JoinTokenInfo is what a verified join token says.
type JoinTokenInfo struct {
	// ID names the token in audit records and in the record of its use:
	// the hex of its nonce. It is not secret; the MAC is.
	ID string
	// Expires is when the token stops admitting.
	Expires time.Time
	// NodeID is the only node the token admits, or empty for any node.
	NodeID string
}

// NewJoinTokenFor is NewJoinToken for a token that admits only the node
// nodeID (which must satisfy ValidNodeID), or any node when nodeID is empty.
// The binding is in the MAC: the token's text does not show it.
func NewJoinTokenFor(secret []byte, caFingerprint string, expires time.Time, nodeID string) (string, error) {
	if nodeID != "" {
		if err := ValidNodeID(nodeID); err != nil {
			return "", err
		}
	}
	if err := checkJoinArgs(secret, caFingerprint); err != nil {
		return "", err
	}
	exp := expires.Unix()
	if exp <= 0 {
		return "", fmt.Errorf("pki: join token expiry %s is not after 1970", expires.UTC().Format(time.RFC3339))
	}
	payload := make([]byte, joinPayloadLen)
	binary.BigEndian.PutUint64(payload[:joinExpiryLen], uint64(exp))
	if _, err := io.ReadFull(rand.Reader, payload[joinExpiryLen:joinSignedLen]); err != nil {
		return "", fmt.Errorf("pki: generating join token nonce: %w", err)
	}
	copy(payload[joinSignedLen:], joinMACFor(secret, payload[:joinSignedLen], caFingerprint, nodeID))
	return joinPrefix + caFingerprint[:joinPinLen] + "." + joinEncoding().EncodeToString(payload), nil
}

// VerifyJoinTokenFor checks tok as VerifyJoinToken does, for the node
// nodeID that presents it: a token bound to another node fails with
// ErrTokenWrongNode. It returns what the token says.
func VerifyJoinTokenFor(secret []byte, caFingerprint, tok, nodeID string, now time.Time) (JoinTokenInfo, error) {
	if err := checkJoinArgs(secret, caFingerprint); err != nil {
		return JoinTokenInfo{}, err
	}
	pin, payload, err := splitJoinToken(tok)
	if err != nil {
		return JoinTokenInfo{}, err
	}
	if subtle.ConstantTimeCompare([]byte(pin), []byte(caFingerprint[:joinPinLen])) != 1 {
		return JoinTokenInfo{}, fmt.Errorf("%w: the token was made for another cluster (its CA pin is %s)", ErrTokenInvalid, pin)
	}
	signed, mac := payload[:joinSignedLen], payload[joinSignedLen:]
	info := JoinTokenInfo{ID: fmt.Sprintf("%x", signed[joinExpiryLen:joinSignedLen])}
	switch {
	case hmac.Equal(mac, joinMAC(secret, signed, caFingerprint)):
	case nodeID != "" && hmac.Equal(mac, joinMACFor(secret, signed, caFingerprint, nodeID)):
		info.NodeID = nodeID
	default:
		return JoinTokenInfo{}, fmt.Errorf("%w: its signature does not verify (tampered with, bound to another node, or not made by this cluster)", ErrTokenInvalid)
	}
	exp := int64(binary.BigEndian.Uint64(signed[:joinExpiryLen]))
	info.Expires = time.Unix(exp, 0).UTC()
	if now.Unix() >= exp {
		return JoinTokenInfo{}, fmt.Errorf("%w at %s", ErrTokenExpired, info.Expires.Format(time.RFC3339))
	}
	return info, nil
}

// joinMACFor binds the MAC to a node ID; the unbound MAC (joinMAC) stays
// what it was, so tokens made before binding existed still verify.
func joinMACFor(secret, signed []byte, caFingerprint, nodeID string) []byte {
	if nodeID == "" {
		return joinMAC(secret, signed, caFingerprint)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(signed)
	io.WriteString(m, caFingerprint)
	io.WriteString(m, "\x00node:")
	io.WriteString(m, nodeID)
	return m.Sum(nil)
}

// VerifyJoinToken checks that tok was made by NewJoinToken with secret for
// the CA with fingerprint caFingerprint, and that it has not expired at now.
// It returns nil or an error wrapping ErrTokenMalformed, ErrTokenInvalid or
// ErrTokenExpired; the expiry is trusted only after the MAC verifies.
// Errors never contain the token. The same token verifies any number of
// times until it expires.
func VerifyJoinToken(secret []byte, caFingerprint, tok string, now time.Time) error {
	if err := checkJoinArgs(secret, caFingerprint); err != nil {
		return err
	}
	pin, payload, err := splitJoinToken(tok)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(pin), []byte(caFingerprint[:joinPinLen])) != 1 {
		return fmt.Errorf("%w: token is for another CA", ErrTokenInvalid)
	}
	signed, mac := payload[:joinSignedLen], payload[joinSignedLen:]
	if !hmac.Equal(mac, joinMAC(secret, signed, caFingerprint)) {
		return ErrTokenInvalid
	}
	// The MAC verified, so NewJoinToken wrote the expiry: it is positive and
	// fits in an int64.
	exp := int64(binary.BigEndian.Uint64(signed[:joinExpiryLen]))
	if now.Unix() >= exp {
		return fmt.Errorf("%w at %s", ErrTokenExpired, time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// splitJoinToken checks the shape of tok and returns its pin and decoded
// payload. It looks at the length first, so that no long input is copied
// or decoded.
func splitJoinToken(tok string) (pin string, payload []byte, err error) {
	if len(tok) != joinTokenLength {
		return "", nil, fmt.Errorf("%w: %d characters, want %d", ErrTokenMalformed, len(tok), joinTokenLength)
	}
	rest, ok := strings.CutPrefix(tok, joinPrefix)
	if !ok {
		return "", nil, fmt.Errorf("%w: does not start with %q", ErrTokenMalformed, joinPrefix)
	}
	pin, enc, ok := strings.Cut(rest, ".")
	if !ok || len(pin) != joinPinLen {
		return "", nil, fmt.Errorf("%w: want %q, a %d-character pin, '.' and the payload", ErrTokenMalformed, joinPrefix, joinPinLen)
	}
	if !isLowerHex(pin) {
		return "", nil, fmt.Errorf("%w: pin is not lowercase hex", ErrTokenMalformed)
	}
	payload, err = joinEncoding().DecodeString(enc)
	if err != nil || len(payload) != joinPayloadLen {
		// The base64 error would echo an offset into the secret part; it
		// adds nothing a caller can act on.
		return "", nil, fmt.Errorf("%w: payload is not %d bytes of unpadded base64url", ErrTokenMalformed, joinPayloadLen)
	}
	return pin, payload, nil
}

// checkJoinArgs validates the cluster's own inputs to NewJoinToken and
// VerifyJoinToken. These are programming or configuration errors, not bad
// tokens, so they do not wrap the token sentinels.
func checkJoinArgs(secret []byte, caFingerprint string) error {
	if len(secret) != joinSecretLen {
		return fmt.Errorf("pki: join token secret is %d bytes, want %d", len(secret), joinSecretLen)
	}
	if len(caFingerprint) != fingerprintLen || !isLowerHex(caFingerprint) {
		return fmt.Errorf("pki: CA fingerprint is not %d lowercase hex characters", fingerprintLen)
	}
	return nil
}

// joinMAC returns HMAC-SHA256(secret, signed || caFingerprint).
func joinMAC(secret, signed []byte, caFingerprint string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(signed)
	io.WriteString(m, caFingerprint)
	return m.Sum(nil)
}

// isLowerHex reports whether s is non-empty and consists of 0-9 and a-f.
func isLowerHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9') && !('a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
