package signals

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/ferryvpn/ferry/cluster"
)

// verifier checks a JWT's signature, issuer and audience with go-oidc,
// whose checks are those of an ID token.
type verifier struct {
	issuer, jwks, audience string
	client                 *http.Client
	now                    func() time.Time
	skipExpiry             bool

	mu sync.Mutex // guards v
	v  *oidc.IDTokenVerifier
}

// newDiscoveryVerifier verifies tokens of an OpenID Provider, finding its
// keys through discovery, for audience clientID; exp is required.
func newDiscoveryVerifier(issuer, clientID string, c *http.Client, now func() time.Time) *verifier {
	return &verifier{issuer: issuer, audience: clientID, client: c, now: now}
}

// newJWKSVerifier verifies tokens of issuer signed by keys at jwks;
// exp is optional (SETs rarely carry one), freshness is checked on iat.
func newJWKSVerifier(issuer, jwks, audience string, c *http.Client, now func() time.Time) *verifier {
	return &verifier{issuer: issuer, jwks: jwks, audience: audience, client: c, now: now, skipExpiry: true}
}

// algs are the signature algorithms accepted; none and HMAC never are.
var algs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}

func (v *verifier) get(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.v != nil {
		return v.v, nil
	}
	// Keys are fetched with a context of their own: the key set outlives
	// the request that first needed it.
	kctx := oidc.ClientContext(context.Background(), v.client)
	cfg := &oidc.Config{ClientID: v.audience, Now: v.now, SkipExpiryCheck: v.skipExpiry, SupportedSigningAlgs: algs}
	if v.jwks != "" {
		v.v = oidc.NewVerifier(v.issuer, oidc.NewRemoteKeySet(kctx, v.jwks), cfg)
		return v.v, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, v.client), v.issuer)
	if err != nil {
		return nil, fmt.Errorf("discovering %s: %w", v.issuer, err)
	}
	v.v = p.VerifierContext(kctx, cfg)
	return v.v, nil
}

// Why a token was refused, for the audit record.
const (
	reasonMalformed   = "malformed token"
	reasonSignature   = "bad signature"
	reasonIssuer      = "wrong issuer"
	reasonAudience    = "wrong audience"
	reasonExpired     = "expired"
	reasonStale       = "issued too long ago"
	reasonFuture      = "issued in the future"
	reasonReplayed    = "replayed jti"
	reasonUnavailable = "issuer's keys unavailable"
	reasonType        = "wrong typ header"
)

// refusal is a token refused for a reason the audit record names.
type refusal struct {
	reason string
	err    error
}

func (r *refusal) Error() string {
	if r.err != nil {
		return r.reason + ": " + r.err.Error()
	}
	return r.reason
}

func refuse(reason string, err error) error { return &refusal{reason: reason, err: err} }

// verify checks raw and returns its claims. typ, when not empty, is the
// media type the JOSE typ header must name if present.
func (v *verifier) verify(ctx context.Context, raw, typ string) (map[string]any, error) {
	jws, err := jose.ParseSignedCompact(raw, toJoseAlgs(algs))
	if err != nil || len(jws.Signatures) != 1 {
		return nil, refuse(reasonMalformed, err)
	}
	if typ != "" {
		if t, ok := jws.Signatures[0].Header.ExtraHeaders["typ"].(string); ok &&
			!strings.EqualFold(t, typ) && !strings.EqualFold(t, "application/"+typ) {
			return nil, refuse(reasonType, fmt.Errorf("typ %q, want %q", t, typ))
		}
	}
	iv, err := v.get(ctx)
	if err != nil {
		return nil, refuse(reasonUnavailable, err)
	}
	tok, err := iv.Verify(ctx, raw)
	if err != nil {
		var exp *oidc.TokenExpiredError
		msg := err.Error()
		switch {
		case errors.As(err, &exp):
			return nil, refuse(reasonExpired, err)
		case strings.Contains(msg, "issued by a different provider"):
			return nil, refuse(reasonIssuer, err)
		case strings.Contains(msg, "expected audience"):
			return nil, refuse(reasonAudience, err)
		case strings.Contains(msg, "signature"), strings.Contains(msg, "fetching keys"):
			return nil, refuse(reasonSignature, err)
		}
		return nil, refuse(reasonMalformed, err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, refuse(reasonMalformed, err)
	}
	return claims, nil
}

func toJoseAlgs(a []string) []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(a))
	for i, s := range a {
		out[i] = jose.SignatureAlgorithm(s)
	}
	return out
}

// checkFresh refuses a token whose iat is missing, older than maxAge or
// in the future, or whose exp, when present, has passed (go-oidc checks
// exp only where it is required: logout tokens, not SETs).
func checkFresh(claims map[string]any, now time.Time, maxAge time.Duration) (time.Time, error) {
	if v, present := claims["exp"]; present {
		f, ok := v.(float64)
		if !ok {
			return time.Time{}, refuse(reasonMalformed, errors.New("exp not a number"))
		}
		if now.After(time.Unix(int64(f), 0).Add(ClockSkew)) {
			return time.Time{}, refuse(reasonExpired, nil)
		}
	}
	f, ok := claims["iat"].(float64)
	if !ok {
		return time.Time{}, refuse(reasonMalformed, errors.New("iat missing"))
	}
	iat := time.Unix(int64(f), 0)
	switch {
	case iat.After(now.Add(ClockSkew)):
		return time.Time{}, refuse(reasonFuture, nil)
	case now.Sub(iat) > maxAge:
		return time.Time{}, refuse(reasonStale, fmt.Errorf("iat %s", iat.UTC().Format(time.RFC3339)))
	}
	return iat, nil
}

// Replay guard: signals/jti/<sha256(iss, jti)>, holding when the claim may
// be swept (after the token can no longer be accepted anyway).
const prefixJTI = "signals/jti/"

type jtiRecord struct {
	Until time.Time `json:"until"`
}

func jtiKey(iss, jti string) string {
	h := sha256.Sum256([]byte(iss + "\x00" + jti))
	return prefixJTI + hex.EncodeToString(h[:])
}

// claim records (iss, jti) as used; a second claim, on any node, fails.
func (r *Receiver) claim(ctx context.Context, iss string, claims map[string]any) error {
	jti, _ := claims["jti"].(string)
	if jti == "" || len(jti) > 256 {
		return refuse(reasonMalformed, errors.New("jti missing or longer than 256 bytes"))
	}
	until := r.cfg.Now().UTC().Add(r.cfg.MaxAge + 2*ClockSkew)
	b, _ := json.Marshal(jtiRecord{Until: until})
	key := jtiKey(iss, jti)
	res, err := r.cfg.Store.Txn(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent(key)},
		Ops:      []cluster.Op{cluster.Put(key, b)},
	})
	if err != nil {
		return fmt.Errorf("claiming jti: %w", err)
	}
	if !res.Succeeded {
		return refuse(reasonReplayed, nil)
	}
	return nil
}

// Sweep deletes replay-guard claims of tokens that can no longer be
// accepted, and returns how many. Run it now and then on the leader.
func (r *Receiver) Sweep(ctx context.Context) (int, error) {
	kvs, _, err := r.cfg.Store.List(ctx, prefixJTI, cluster.Linearizable)
	if err != nil {
		return 0, fmt.Errorf("listing jti claims: %w", err)
	}
	now := r.cfg.Now()
	n := 0
	for _, kv := range kvs {
		var rec jtiRecord
		if json.Unmarshal(kv.Value, &rec) == nil && now.Before(rec.Until) {
			continue
		}
		res, err := r.cfg.Store.Txn(ctx, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(kv.Key, kv.Version)},
			Ops:      []cluster.Op{cluster.Delete(kv.Key)},
		})
		if err != nil {
			return n, err
		}
		if res.Succeeded {
			n++
		}
	}
	return n, nil
}
