package authn

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// TestMatchStepRFC6238 runs ferry's own 6-digit SHA-1 matching on the RFC
// 6238 Appendix B SHA-1 rows: a 6-digit code is the last six digits of the
// 8-digit one.
func TestMatchStepRFC6238(t *testing.T) {
	secret := totpSecret("12345678901234567890")
	for _, tc := range []struct {
		unix int64
		code string // 8 digits, from the RFC
	}{
		{59, "94287082"}, {1111111109, "07081804"}, {1111111111, "14050471"},
		{1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
	} {
		t.Run(fmt.Sprint("T=", tc.unix), func(t *testing.T) {
			at := time.Unix(tc.unix, 0)
			code := tc.code[2:]
			if got, err := totpCode(secret, at); err != nil || got != code {
				t.Errorf("totpCode = %s, %v; want %s", got, err, code)
			}
			for _, d := range []struct {
				name   string
				offset time.Duration
				ok     bool
			}{{"now", 0, true}, {"a step later", 30 * time.Second, true}, {"a step earlier", -30 * time.Second, true},
				{"two steps later", 60 * time.Second, false}, {"two steps earlier", -60 * time.Second, false}} {
				if at.Add(d.offset).Unix() < 0 {
					continue // before 1970: time steps start at 0
				}
				step, ok := matchStep(secret, code, at.Add(d.offset))
				if ok != d.ok || (ok && step != uint64(tc.unix)/30) {
					t.Errorf("%s: matchStep = %d, %v; want step %d, %v", d.name, step, ok, tc.unix/30, d.ok)
				}
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := totpSecret("12345678901234567890")
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q", "%d"} {
		if out := fmt.Sprintf(f, s); strings.Contains(out, "1234") || strings.Contains(out, s.base32()) ||
			strings.Contains(out, "31323334") {
			t.Errorf("%s printed the secret: %s", f, out)
		}
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		decode func([]byte) error
		in     string
		want   string
	}{
		{"not JSON", decodeAs[userRecord], `{`, "invalid JSON"},
		{"empty", decodeAs[userRecord], ``, "invalid JSON"},
		{"wrong version", decodeAs[userRecord], `{"v":2,"id":"a"}`, "format version 2"},
		{"no version", decodeAs[usedRecord], `{"step":5}`, "format version 0"},
		{"wrong type", decodeAs[usedRecord], `{"v":1,"step":"five"}`, `field "step"`},
		{"negative step", decodeAs[usedRecord], `{"v":1,"step":-1}`, `field "step"`},
		{"user without id", decodeAs[userRecord], `{"v":1}`, "user_id"},
		{"totp without secret", decodeAs[totpRecord], `{"v":1,"confirmed":false}`, "secret_sealed"},
		{"totp secret not base64", decodeAs[totpRecord], `{"v":1,"secret_sealed":"!!"}`, "invalid JSON"},
		{"confirmed without time", decodeAs[totpRecord], `{"v":1,"secret_sealed":"AQID","confirmed":true}`, "confirmed_at"},
		{"negative failures", decodeAs[lockRecord], `{"v":1,"failures":-3}`, "negative"},
		{"bad time", decodeAs[lockRecord], `{"v":1,"locked_until":"soon"}`, "invalid JSON"},
		{"session without expiry", decodeAs[sessionRecord], `{"v":1,"id":"x","identity":{"user_id":"a"}}`, "expires"},
		{"session without id", decodeAs[sessionRecord], `{"v":1,"identity":{"user_id":"a"},"expires":"2030-01-01T00:00:00Z"}`, "id: empty"},
		{"ref with bad hash", decodeAs[sessionRef], `{"v":1,"hash":"xyz","user_id":"a"}`, "hash"},
		{"array", decodeAs[recoveryRecord], `[1,2]`, "wrong type"},
		{"null", decodeAs[recoveryRecord], `null`, "format version 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode([]byte(tc.in))
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "test/key") {
				t.Fatalf("decode(%s) = %v, want ErrCorrupt naming the key and %q", tc.in, err, tc.want)
			}
		})
	}
}

func decodeAs[T any, PT interface {
	*T
	record
}](b []byte) error {
	_, err := decodeRecord[T, PT]("test/key", b)
	return err
}

// fuzzRecord checks that decoding never panics, that it fails only with
// ErrCorrupt, and that whatever it accepts survives a round trip.
func fuzzRecord[T any, PT interface {
	*T
	record
}](f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeRecord[T, PT]("k", b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		enc := encodeRecord(PT(&v))
		again, err := decodeRecord[T, PT]("k", enc)
		if err != nil {
			t.Fatalf("re-decoding an accepted record: %v", err)
		}
		if enc2 := encodeRecord(PT(&again)); string(enc) != string(enc2) {
			t.Fatalf("round trip changed the record:\n%s\n%s", enc, enc2)
		}
	})
}

func FuzzDecodeUser(f *testing.F) {
	fuzzRecord[userRecord](f,
		`{"v":1,"id":"alice","email":"a@example.com","groups":["eng"],"disabled":true,"created":"2030-01-01T00:00:00Z","last_login":"2030-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a%2Fb"}`, `{"v":1,"id":""}`)
}

func FuzzDecodeTOTP(f *testing.F) {
	fuzzRecord[totpRecord](f,
		`{"v":1,"secret_sealed":"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e","confirmed":true,"created":"2030-01-01T00:00:00Z","confirmed_at":"2030-01-01T00:01:00Z"}`,
		`{"v":1,"secret_sealed":"AQ==","confirmed":false}`)
}

func FuzzDecodeUsed(f *testing.F) {
	fuzzRecord[usedRecord](f, `{"v":1,"step":69000000}`, `{"v":1,"step":18446744073709551615}`)
}

func FuzzDecodeLock(f *testing.F) {
	fuzzRecord[lockRecord](f, `{"v":1,"failures":10,"last_failure":"2030-01-01T00:00:00Z","locked_until":"2030-01-01T00:30:00Z"}`, `{"v":1,"failures":3}`)
}

func FuzzDecodeRecovery(f *testing.F) {
	fuzzRecord[recoveryRecord](f, `{"v":1,"created":"2030-01-01T00:00:00Z","used":"2030-01-02T00:00:00Z"}`)
}

func FuzzDecodeSession(f *testing.F) {
	fuzzRecord[sessionRecord](f,
		`{"v":1,"id":"abc","identity":{"user_id":"alice","groups":["eng"]},"role":"user","auth_time":"2030-01-01T00:00:00Z","mfa_method":"totp","expires":"2030-01-01T12:00:00Z","last_seen":"2030-01-01T00:00:00Z","source_ip":"192.0.2.1"}`)
}

func FuzzDecodeSessionRef(f *testing.F) {
	fuzzRecord[sessionRef](f, `{"v":1,"hash":"`+strings.Repeat("ab", 32)+`","user_id":"alice"}`)
}

// FuzzNormalizeCodes checks that code normalization never panics and that
// whatever it accepts has the exact shape the matchers rely on.
func FuzzNormalizeCodes(f *testing.F) {
	for _, s := range []string{"123456", "123 456", "ABCDE-FGHIJ", "abcde fghij", "", "１２３４５６", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if c, ok := normalizeCode(s); ok && (len(c) != 6 || strings.Trim(c, "0123456789") != "") {
			t.Fatalf("normalizeCode(%q) accepted %q", s, c)
		}
		if c, ok := normalizeRecovery(s); ok && (len(c) != recoveryCodeLen || strings.Trim(c, b32Alphabet) != "") {
			t.Fatalf("normalizeRecovery(%q) accepted %q", s, c)
		}
		matchStep(totpSecret("12345678901234567890"), s, time.Unix(1111111109, 0))
	})
}

// TestMalformedStoredRecords plants malformed values under every kind of
// key and checks that each operation fails with a clear error naming the
// key, does not panic, and changes nothing.
func TestMalformedStoredRecords(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	n := c.Node(0)
	ctx := t.Context()
	key, _ := seal.GenerateKey()
	rec := &authntest.Recorder{}
	m, err := NewMFA(MFAConfig{Store: n, Key: key, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSessions(SessionConfig{Store: n, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	u := NewUsers(n, nil, rec)
	id := Identity{UserID: "mallory"}
	tok := SessionToken(strings.Repeat("A", 43))
	for _, tc := range []struct {
		name  string
		key   string
		value string
		op    func() error
		want  error
	}{
		{"totp record", totpKey("mallory"), `{"v":1,"secret_sealed":5}`, func() error { return m.Verify(ctx, id, "123456", Source{}) }, ErrCorrupt},
		{"sealed secret that does not open", totpKey("mallory"), `{"v":1,"secret_sealed":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","confirmed":true,"confirmed_at":"2030-01-01T00:00:00Z"}`,
			func() error { return m.Verify(ctx, id, "123456", Source{}) }, seal.ErrDecrypt},
		{"replay guard", usedKey("mallory"), `{"v":1,"step":"x"}`, func() error { return m.Verify(ctx, id, "123456", Source{}) }, ErrCorrupt},
		{"lock", lockKey("mallory"), `{"v":9}`, func() error { return m.VerifyRecovery(ctx, id, "AAAAA-AAAAA", Source{}) }, ErrCorrupt},
		{"recovery code", recoveryPrefix("mallory") + "ab", `[]`, func() error { _, err := m.ConfirmEnroll(ctx, id, "123456", Source{}); return err }, ErrCorrupt},
		{"user", userKey("mallory"), `{"v":1,"id":""}`, func() error { _, err := u.Upsert(ctx, id); return err }, ErrCorrupt},
		{"user in a listing", userKey("mallory"), `nope`, func() error { _, err := u.List(ctx); return err }, ErrCorrupt},
		{"session", sessionKey(tok.Hash()), `{"v":1}`, func() error { _, err := s.Validate(ctx, tok); return err }, ErrSessionInvalid},
		{"session index", userSessionKey("mallory", "x"), `{"v":1,"hash":"zz"}`, func() error { return s.RevokeUser(ctx, "mallory", audit.Actor{}) }, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := n.Txn(ctx, cluster.Txn{Ops: []cluster.Op{cluster.DeletePrefix(mfaPrefix("mallory")), cluster.DeletePrefix(userKey("mallory")), cluster.Put(tc.key, []byte(tc.value))}}); err != nil {
				t.Fatal(err)
			}
			_, before, _ := n.List(ctx, "", cluster.Linearizable)
			err := tc.op()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if errors.Is(err, ErrCorrupt) && !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q does not name the key %s", err, tc.key)
			}
			if _, after, _ := n.List(ctx, "", cluster.Linearizable); after != before {
				t.Errorf("the store changed (revision %d -> %d)", before, after)
			}
		})
	}
}

// TestSealedSecretBoundToUser copies one user's sealed TOTP record under
// another user's key: the associated data ("mfa/"+userID) makes it fail to
// open, so a store writer cannot give one user another's authenticator.
func TestSealedSecretBoundToUser(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	n := c.Node(0)
	ctx := t.Context()
	key, _ := seal.GenerateKey()
	clock := authntest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	m, err := NewMFA(MFAConfig{Store: n, Key: key, Recorder: &authntest.Recorder{}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	alice := Identity{UserID: "alice"}
	enr, err := m.BeginEnroll(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := authntest.TOTPCode(enr.URI, clock.Now())
	if _, err := m.ConfirmEnroll(ctx, alice, code, Source{}); err != nil {
		t.Fatal(err)
	}
	kv, _, err := n.Get(ctx, totpKey("alice"), cluster.Linearizable)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Put(ctx, totpKey("bob"), kv.Value); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	code, _ = authntest.TOTPCode(enr.URI, clock.Now())
	if err := m.Verify(ctx, Identity{UserID: "bob"}, code, Source{}); !errors.Is(err, seal.ErrDecrypt) {
		t.Fatalf("Verify with alice's sealed secret under bob: %v, want seal.ErrDecrypt", err)
	}
	if err := m.Verify(ctx, alice, code, Source{}); err != nil {
		t.Fatalf("alice's own code: %v", err)
	}
}
