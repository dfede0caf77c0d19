package pki

import (
	"strings"
	"testing"
	"time"
)

func FuzzParseJoinToken(f *testing.F) {
	ca := newTestCA(f, "ca", testNow)
	fp := Fingerprint(ca.Cert)
	f.Add(newTestToken(f, testSecret(1), fp, testNow.Add(time.Hour)))
	f.Add("")
	f.Add("ferry-join.")
	f.Add("ferry-join." + fp[:32] + ".")
	f.Add("ferry-join." + fp[:32] + "." + strings.Repeat("A", 75))
	f.Fuzz(func(t *testing.T, tok string) {
		jt, err := ParseJoinToken(tok)
		if err != nil {
			if jt != (JoinToken{}) {
				t.Fatalf("ParseJoinToken returned a token with an error")
			}
			return
		}
		if len(jt.CAPin) != joinPinLen || !isLowerHex(jt.CAPin) {
			t.Fatalf("CAPin %q is not %d lowercase hex characters", jt.CAPin, joinPinLen)
		}
		if jt.Reveal() != tok {
			t.Fatalf("Reveal does not return the token")
		}
		if strings.Contains(jt.String(), tok[len(joinPrefix)+joinPinLen+1:]) {
			t.Fatalf("String shows the token")
		}
	})
}

func FuzzVerifyJoinToken(f *testing.F) {
	ca := newTestCA(f, "ca", testNow)
	fp := Fingerprint(ca.Cert)
	secret := testSecret(1)
	valid := newTestToken(f, secret, fp, testNow.Add(time.Hour))
	f.Add(valid, testNow.Unix())
	f.Add(valid, testNow.Add(2*time.Hour).Unix())
	f.Add(newTestToken(f, testSecret(2), fp, testNow.Add(time.Hour)), testNow.Unix())
	f.Add("", int64(0))
	f.Add("ferry-join."+fp[:32]+"."+strings.Repeat("_", 75), int64(-1))
	f.Fuzz(func(t *testing.T, tok string, now int64) {
		err := VerifyJoinToken(secret, fp, tok, time.Unix(now, 0))
		if err == nil && tok != valid {
			// Only the token made with the secret may verify: anything else
			// is a forgery.
			t.Fatalf("VerifyJoinToken accepted a token it did not make")
		}
	})
}
