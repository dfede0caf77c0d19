package authn

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/authn/devop"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/seal"
	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkSignIn measures the server-side cost of one sign-in on a
// three-node cluster, spread over the nodes: ID token verification
// (signature, issuer, audience, expiry, nonce, policy), the user record
// update, the TOTP check with its cluster-wide replay guard, and session
// creation. The IdP's own time is excluded: ID tokens are minted
// beforehand with the development OP's signing key, and its JWKS is fetched
// once before timing. Reports p50-ms and p99-ms per sign-in.
//
// Sub-benchmarks: "fsync" is the production setting; "nosync" skips the
// Raft log's fsync, to show how much of the cost is the disk.
func BenchmarkSignIn(b *testing.B) {
	b.Run("fsync", func(b *testing.B) { benchSignIn(b, false) })
	b.Run("nosync", func(b *testing.B) { benchSignIn(b, true) })
}

func benchSignIn(b *testing.B, noSync bool) {
	const users = 8
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	var op *devop.Provider
	opSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { op.Handler().ServeHTTP(w, r) }))
	defer opSrv.Close()
	opURL := opSrv.URL
	op, err = devop.New(devop.Config{
		Issuer: opURL, ClientID: "bench", ClientSecret: "bench-secret",
		RedirectURIs: []string{"https://vpn.example.com/callback"}, SigningKey: key, KeyID: "bench-key",
	})
	if err != nil {
		b.Fatal(err)
	}

	c := clustertest.Start(b, 3, clustertest.Options{Fast: true, Tune: func(cc *cluster.Config) { cc.NoSync = noSync }})
	clock := authntest.NewClock(time.Now().UTC().Truncate(30 * time.Second))
	rec := &authntest.Recorder{Now: clock.Now}
	mkey, err := seal.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	type node struct {
		rp       *relyingParty
		mfa      *MFA
		sessions *Sessions
		users    *Users
	}
	var nodes []node
	for i := 0; i < 3; i++ {
		rp, err := newRelyingParty(OIDCConfig{
			Issuer: opURL, ClientID: "bench", ClientSecret: "bench-secret",
			RedirectURL: "https://vpn.example.com/callback", RequiredGroups: []string{"engineering"},
		})
		if err != nil {
			b.Fatal(err)
		}
		m, err := NewMFA(MFAConfig{Store: c.Node(i), Key: mkey, Now: clock.Now, Recorder: rec})
		if err != nil {
			b.Fatal(err)
		}
		s, err := NewSessions(SessionConfig{Store: c.Node(i), Now: clock.Now, Recorder: rec})
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, node{rp: rp, mfa: m, sessions: s, users: NewUsers(c.Node(i), clock.Now, rec)})
	}
	ctx := b.Context()
	src := Source{Addr: "198.51.100.1", Port: 50000, UserAgent: "bench"}

	// Enroll the users, and warm every node's discovery and key cache.
	uris := make([]string, users)
	for u := range users {
		id := Identity{UserID: fmt.Sprintf("bench-%d", u), Email: fmt.Sprintf("u%d@example.com", u), Groups: []string{"engineering"}}
		enr, err := nodes[0].mfa.BeginEnroll(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		code, err := authntest.TOTPCode(enr.URI, clock.Now())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := nodes[1].mfa.ConfirmEnroll(ctx, id, code, src); err != nil {
			b.Fatal(err)
		}
		uris[u] = enr.URI
	}
	mint := func(u int, nonce string) string {
		claims := map[string]any{
			"iss": opURL, "aud": "bench", "sub": fmt.Sprintf("bench-%d", u), "nonce": nonce,
			"email": fmt.Sprintf("u%d@example.com", u), "groups": []string{"engineering"},
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
		}
		payload, _ := json.Marshal(claims)
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
			(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "bench-key"))
		if err != nil {
			b.Fatal(err)
		}
		obj, err := signer.Sign(payload)
		if err != nil {
			b.Fatal(err)
		}
		raw, _ := obj.CompactSerialize()
		return raw
	}
	for _, n := range nodes {
		if _, err := n.rp.verify(ctx, mint(0, "warm"), "", signinHash("warm")); err != nil {
			b.Fatal(err)
		}
	}
	tokens := make([]string, b.N)
	nonces := make([]string, b.N)
	for i := range b.N {
		nonces[i] = fmt.Sprintf("nonce-%d", i)
		tokens[i] = mint(i%users, nonces[i])
	}

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		// Each user signs in once per 30 s step: move the clock so the
		// replay guard accepts the next code.
		if i%users == 0 {
			clock.Advance(30 * time.Second)
		}
		n := nodes[i%len(nodes)]
		code, err := authntest.TOTPCode(uris[i%users], clock.Now())
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		id, err := n.rp.verify(ctx, tokens[i], "", signinHash(nonces[i]))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := n.users.Upsert(ctx, id); err != nil {
			b.Fatal(err)
		}
		if err := n.mfa.Verify(ctx, id, code, src); err != nil {
			b.Fatal(err)
		}
		if _, _, err := n.sessions.Create(ctx, id, MethodTOTP, src); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
