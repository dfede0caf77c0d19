package pki

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// testSecret returns a fixed 32-byte join secret; b varies it.
func testSecret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func newTestToken(t testing.TB, secret []byte, fp string, expires time.Time) string {
	t.Helper()
	tok, err := NewJoinToken(secret, fp, expires)
	if err != nil {
		t.Fatalf("NewJoinToken: %v", err)
	}
	return tok
}

func TestJoinTokenFormat(t *testing.T) {
	fp := Fingerprint(newTestCA(t, "ca", testNow).Cert)
	expires := testNow.Add(time.Hour)
	tok := newTestToken(t, testSecret(1), fp, expires)

	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != "ferry-join" || parts[1] != fp[:32] {
		t.Fatalf("token %q does not have the form ferry-join.<pin>.<payload>", tok)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(payload) != 56 {
		t.Fatalf("payload: %d bytes, %v; want 56 bytes of base64url", len(payload), err)
	}
	if got := time.Unix(int64(beUint64(payload[:8])), 0); !got.Equal(expires) {
		t.Errorf("expiry in payload = %s, want %s", got, expires)
	}
	if tok2 := newTestToken(t, testSecret(1), fp, expires); tok2 == tok {
		t.Errorf("two tokens with the same expiry are equal")
	}
}

func beUint64(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

func TestVerifyJoinToken(t *testing.T) {
	fp := Fingerprint(newTestCA(t, "ca", testNow).Cert)
	otherFP := Fingerprint(newTestCA(t, "ca", testNow).Cert)
	secret := testSecret(1)
	expires := testNow.Add(time.Hour)
	tok := newTestToken(t, secret, fp, expires)
	// The same pin prefix but another full fingerprint: the MAC covers all of it.
	samePinFP := fp[:32] + strings.Repeat("0", 32)

	tests := []struct {
		name   string
		secret []byte
		fp     string
		tok    string
		now    time.Time
		want   error
	}{
		{name: "valid", secret: secret, fp: fp, tok: tok, now: testNow},
		{name: "valid just before expiry", secret: secret, fp: fp, tok: tok, now: expires.Add(-time.Second)},
		{name: "at expiry", secret: secret, fp: fp, tok: tok, now: expires, want: ErrTokenExpired},
		{name: "after expiry", secret: secret, fp: fp, tok: tok, now: expires.Add(24 * time.Hour), want: ErrTokenExpired},
		{name: "wrong secret", secret: testSecret(2), fp: fp, tok: tok, now: testNow, want: ErrTokenInvalid},
		{name: "wrong secret after expiry", secret: testSecret(2), fp: fp, tok: tok, now: expires.Add(time.Hour), want: ErrTokenInvalid},
		{name: "wrong CA", secret: secret, fp: otherFP, tok: tok, now: testNow, want: ErrTokenInvalid},
		{name: "wrong CA with same pin", secret: secret, fp: samePinFP, tok: tok, now: testNow, want: ErrTokenInvalid},
		{name: "pin swapped to other CA", secret: secret, fp: otherFP, tok: strings.Replace(tok, fp[:32], otherFP[:32], 1), now: testNow, want: ErrTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyJoinToken(tt.secret, tt.fp, tt.tok, tt.now)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("VerifyJoinToken = %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), tt.tok[len(joinPrefix)+33:]) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

func TestVerifyJoinTokenMalformed(t *testing.T) {
	fp := Fingerprint(newTestCA(t, "ca", testNow).Cert)
	secret := testSecret(1)
	tok := newTestToken(t, secret, fp, testNow.Add(time.Hour))
	payload := tok[len(joinPrefix)+33:]
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "ferry-join." + fp[:32] + "."

	tests := []struct {
		name string
		tok  string
	}{
		{name: "empty", tok: ""},
		{name: "prefix only", tok: "ferry-join."},
		{name: "no payload", tok: "ferry-join." + fp[:32]},
		{name: "wrong prefix", tok: "ferry-joim." + tok[len(joinPrefix):]},
		{name: "uppercase prefix", tok: "FERRY-JOIN." + tok[len(joinPrefix):]},
		{name: "uppercase pin", tok: "ferry-join." + strings.ToUpper(fp[:32]) + "." + payload},
		{name: "non-hex pin", tok: "ferry-join." + "g" + fp[1:32] + "." + payload},
		{name: "short pin long payload", tok: "ferry-join." + fp[:31] + "." + payload + "A"},
		{name: "long pin short payload", tok: "ferry-join." + fp[:33] + "." + payload[1:]},
		{name: "separator moved", tok: "ferry-join." + fp[:32] + payload[:1] + "." + payload[1:]},
		{name: "padded payload", tok: prefix + base64.URLEncoding.EncodeToString(raw)},
		{name: "standard alphabet plus", tok: prefix + "+" + payload[1:]},
		{name: "standard alphabet slash", tok: prefix + payload[:40] + "/" + payload[41:]},
		{name: "payload too short", tok: prefix + base64.RawURLEncoding.EncodeToString(raw[:55])},
		{name: "payload too long", tok: prefix + base64.RawURLEncoding.EncodeToString(append(raw, 0))},
		{name: "surrounding space", tok: " " + tok[:len(tok)-1]},
		{name: "trailing newline", tok: tok + "\n"},
		{name: "extra field", tok: tok + ".x"},
		{name: "very long", tok: tok + strings.Repeat("A", 1<<20)},
		{name: "newline inside payload", tok: prefix + payload[:10] + "\n" + payload[11:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseJoinToken(tt.tok); !errors.Is(err, ErrTokenMalformed) {
				t.Errorf("ParseJoinToken = %v, want %v", err, ErrTokenMalformed)
			}
			if err := VerifyJoinToken(secret, fp, tt.tok, testNow); !errors.Is(err, ErrTokenMalformed) {
				t.Errorf("VerifyJoinToken = %v, want %v", err, ErrTokenMalformed)
			}
		})
	}
}

func TestVerifyJoinTokenTamperedCharacters(t *testing.T) {
	fp := Fingerprint(newTestCA(t, "ca", testNow).Cert)
	secret := testSecret(1)
	tok := newTestToken(t, secret, fp, testNow.Add(time.Hour))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
	for i := range len(tok) {
		for _, c := range []byte(alphabet) {
			if tok[i] == c {
				continue
			}
			tampered := tok[:i] + string(c) + tok[i+1:]
			err := VerifyJoinToken(secret, fp, tampered, testNow)
			if !errors.Is(err, ErrTokenInvalid) && !errors.Is(err, ErrTokenMalformed) {
				t.Fatalf("character %d set to %q: VerifyJoinToken = %v, want %v or %v", i, c, err, ErrTokenInvalid, ErrTokenMalformed)
			}
		}
	}
}

func TestJoinTokenBadArguments(t *testing.T) {
	fp := Fingerprint(newTestCA(t, "ca", testNow).Cert)
	tok := newTestToken(t, testSecret(1), fp, testNow.Add(time.Hour))
	tests := []struct {
		name    string
		secret  []byte
		fp      string
		expires time.Time
		wantErr string
	}{
		{name: "short secret", secret: make([]byte, 16), fp: fp, expires: testNow, wantErr: "secret is 16 bytes, want 32"},
		{name: "nil secret", secret: nil, fp: fp, expires: testNow, wantErr: "secret is 0 bytes"},
		{name: "short fingerprint", secret: testSecret(1), fp: fp[:32], expires: testNow, wantErr: "CA fingerprint"},
		{name: "uppercase fingerprint", secret: testSecret(1), fp: strings.ToUpper(fp), expires: testNow, wantErr: "CA fingerprint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewJoinToken(tt.secret, tt.fp, tt.expires); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewJoinToken error = %v, want one containing %q", err, tt.wantErr)
			}
			err := VerifyJoinToken(tt.secret, tt.fp, tok, testNow)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("VerifyJoinToken error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := NewJoinToken(testSecret(1), fp, time.Unix(0, 0)); err == nil {
		t.Errorf("NewJoinToken with expiry at 1970 succeeded")
	}
}

func TestParseJoinToken(t *testing.T) {
	fp := Fingerprint(newTestCA(t, "ca", testNow).Cert)
	tok := newTestToken(t, testSecret(1), fp, testNow.Add(time.Hour))
	jt, err := ParseJoinToken(tok)
	if err != nil {
		t.Fatalf("ParseJoinToken: %v", err)
	}
	if jt.CAPin != fp[:32] {
		t.Errorf("CAPin = %q, want %q", jt.CAPin, fp[:32])
	}
	if jt.Reveal() != tok {
		t.Errorf("Reveal = %q, want the token", jt.Reveal())
	}

	secretPart := tok[len(joinPrefix)+33:]
	var jsonBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonBuf, nil)).Info("join", "token", jt)
	type holder struct{ Token JoinToken }
	tests := []struct {
		name string
		out  string
	}{
		{name: "String", out: jt.String()},
		{name: "%v", out: fmt.Sprintf("%v", jt)},
		{name: "%+v", out: fmt.Sprintf("%+v", jt)},
		{name: "%#v", out: fmt.Sprintf("%#v", jt)},
		{name: "%s", out: fmt.Sprintf("%s", jt)},
		{name: "%q", out: fmt.Sprintf("%q", jt)},
		{name: "%x", out: fmt.Sprintf("%x", jt)},
		{name: "pointer", out: fmt.Sprintf("%v", &jt)},
		{name: "struct field", out: fmt.Sprintf("%+v", holder{jt})},
		{name: "slog JSON", out: jsonBuf.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.out, secretPart) || strings.Contains(tt.out, secretPart[:16]) {
				t.Errorf("output %q contains the token's secret part", tt.out)
			}
			if !strings.Contains(tt.out, "[redacted]") {
				t.Errorf("output %q is not marked redacted", tt.out)
			}
		})
	}
}
