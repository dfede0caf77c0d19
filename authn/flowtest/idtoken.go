package flowtest

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Rewrite edits the ID token the OP returns before the relying party sees
// it, as a forger or a broken IdP would: it gets the claims and returns
// the claims to sign, and the key and key ID to sign them with; nil claims
// drop the ID token from the response.
type Rewrite func(claims map[string]any) (out map[string]any, key *rsa.PrivateKey, kid string)

// errOPDown is what the relying party gets while SetOPDown(true).
var errOPDown = errors.New("flowtest: identity provider unreachable (SetOPDown)")

// SetOPDown makes the identity provider unreachable for the relying party
// (its connections fail), or reachable again.
func (e *Env) SetOPDown(down bool) { e.opDown.Store(down) }

// SetRewrite makes every later token response carry an ID token made by
// rw (nil: pass them through).
func (e *Env) SetRewrite(rw Rewrite) {
	if rw == nil {
		e.rewrite.Store(nil)
		return
	}
	e.rewrite.Store(&rw)
}

// Resign returns a Rewrite that applies edit and signs with the OP's own
// key: the signature is good, the claims are not.
func (e *Env) Resign(edit func(map[string]any)) Rewrite {
	return func(c map[string]any) (map[string]any, *rsa.PrivateKey, string) {
		edit(c)
		return c, e.OPKey, e.OPKeyID
	}
}

// SignIDToken signs claims as a JWT with key (RS256) under kid.
func SignIDToken(claims map[string]any, key *rsa.PrivateKey, kid string) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		return "", err
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// rewriter is the relying party's transport to the OP: it applies the
// Env's Rewrite to token responses.
type rewriter struct {
	env  *Env
	next http.RoundTripper
}

func (rt *rewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	if rt.env.opDown.Load() {
		return nil, errOPDown
	}
	resp, err := rt.next.RoundTrip(r)
	rw := rt.env.rewrite.Load()
	if err != nil || rw == nil || r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/token") || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var tr map[string]any
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("flowtest: token response: %w", err)
	}
	raw, _ := tr["id_token"].(string)
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("flowtest: token response has no JWT id_token")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	out, key, kid := (*rw)(claims)
	if out == nil {
		// No ID token at all, as some providers answer a refresh.
		delete(tr, "id_token")
	} else if tr["id_token"], err = SignIDToken(out, key, kid); err != nil {
		return nil, err
	}
	body, err = json.Marshal(tr)
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return resp, nil
}
