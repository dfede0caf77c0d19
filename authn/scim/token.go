package scim

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// Token is the SCIM bearer token. It never prints; Reveal gives its text to
// the administrator who rotated it, once.
type Token string

// tokenPrefix makes a leaked token recognisable to secret scanners.
const tokenPrefix = "ferry-scim-"

// tokenBytes of randomness: 256 bits answer online guessing for good.
const tokenBytes = 32

// Equal compares in constant time.
func (t Token) Equal(o Token) bool { return subtle.ConstantTimeCompare([]byte(t), []byte(o)) == 1 }

func (t Token) String() string       { return "[redacted]" }
func (t Token) GoString() string     { return "[redacted]" }
func (t Token) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Reveal returns the token's text.
func (t Token) Reveal() string { return string(t) }

// TokenInfo describes the current token without revealing it.
type TokenInfo struct {
	// Set reports whether a token was ever minted; without one every SCIM
	// request is refused.
	Set       bool
	Rotated   time.Time
	RotatedBy string
}

const tokenKey = "scim/token"

// tokenAD binds the sealed token to its key, so a ciphertext copied from
// another record does not open here.
var tokenAD = []byte(tokenKey)

type tokenRecord struct {
	V         int       `json:"v"`
	Sealed    []byte    `json:"token_sealed"`
	Rotated   time.Time `json:"rotated"`
	RotatedBy string    `json:"rotated_by,omitempty"`
}

// ActionRotateToken marks the admin event of a SCIM token rotation.
const ActionRotateToken = "scim.token_rotate"

// RotateToken mints a new bearer token, replacing the old one at once on
// every node, as actor, and records admin scim.token_rotate. The token is
// returned to be shown once; ferry keeps it sealed.
func (s *Service) RotateToken(ctx context.Context, actor audit.Actor) (Token, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	tok := Token(tokenPrefix + base64.RawURLEncoding.EncodeToString(b))
	sealed, err := seal.Seal(s.key, []byte(tok), tokenAD)
	if err != nil {
		return "", fmt.Errorf("sealing the SCIM token: %w", err)
	}
	rec := tokenRecord{V: recordVersion, Sealed: sealed, Rotated: s.now().UTC().Round(0), RotatedBy: actor.UserID}
	data, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	// The new token and its record commit together or not at all.
	if _, err := audit.Commit(ctx, s.store, s.rec, cluster.Txn{Ops: []cluster.Op{cluster.Put(tokenKey, data)}},
		audit.Event{Type: audit.TypeAdmin, Action: ActionRotateToken, Actor: actor, Outcome: audit.Success}); err != nil {
		return "", fmt.Errorf("storing the SCIM token: %w", err)
	}
	return tok, nil
}

// TokenInfo returns when the token was last rotated, and by whom.
func (s *Service) TokenInfo(ctx context.Context) (TokenInfo, error) {
	rec, ok, err := s.readToken(ctx)
	if err != nil || !ok {
		return TokenInfo{}, err
	}
	return TokenInfo{Set: true, Rotated: rec.Rotated, RotatedBy: rec.RotatedBy}, nil
}

func (s *Service) readToken(ctx context.Context) (tokenRecord, bool, error) {
	kv, ok, err := s.store.Get(ctx, tokenKey, cluster.Local)
	if err != nil || !ok {
		return tokenRecord{}, false, err
	}
	var rec tokenRecord
	if err := json.Unmarshal(kv.Value, &rec); err != nil || rec.V != recordVersion || len(rec.Sealed) == 0 {
		return tokenRecord{}, false, fmt.Errorf("%w: %s", ErrCorrupt, tokenKey)
	}
	return rec, true, nil
}

// Why a request was refused, for the audit record.
const (
	reasonNoToken      = "no SCIM token configured"
	reasonMissing      = "no bearer token"
	reasonWrongToken   = "wrong bearer token"
	reasonTokenUnknown = "stored token unreadable"
)

// authenticate checks the Authorization header against the stored token.
// It returns "" when the request may proceed, otherwise why not.
func (s *Service) authenticate(ctx context.Context, header string) (string, error) {
	scheme, presented, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || presented == "" {
		return reasonMissing, nil
	}
	rec, ok, err := s.readToken(ctx)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return reasonTokenUnknown, nil
		}
		return "", err
	}
	if !ok {
		return reasonNoToken, nil
	}
	plain, err := seal.Open(s.key, rec.Sealed, tokenAD)
	if err != nil {
		return reasonTokenUnknown, nil
	}
	if !Token(plain).Equal(Token(strings.TrimSpace(presented))) {
		return reasonWrongToken, nil
	}
	return "", nil
}
