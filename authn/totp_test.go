package authn_test

import (
	"encoding/base32"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// rfc6238Seed returns the RFC 6238 Appendix B seed for an algorithm:
// "12345678901234567890" repeated and cut to n bytes.
func rfc6238Seed(n int) []byte {
	return []byte(strings.Repeat("1234567890", 7)[:n])
}

// TestRFC6238Vectors checks pquerna/otp, which ferry's TOTP is built on,
// against every row of RFC 6238 Appendix B (8 digits, 30 s step).
func TestRFC6238Vectors(t *testing.T) {
	algs := []struct {
		name string
		alg  otp.Algorithm
		seed []byte
	}{
		{"SHA1", otp.AlgorithmSHA1, rfc6238Seed(20)},
		{"SHA256", otp.AlgorithmSHA256, rfc6238Seed(32)},
		{"SHA512", otp.AlgorithmSHA512, rfc6238Seed(64)},
	}
	for _, tc := range []struct {
		unix  int64
		codes [3]string // SHA1, SHA256, SHA512
	}{
		{59, [3]string{"94287082", "46119246", "90693936"}},
		{1111111109, [3]string{"07081804", "68084774", "25091201"}},
		{1111111111, [3]string{"14050471", "67062674", "99943326"}},
		{1234567890, [3]string{"89005924", "91819424", "93441116"}},
		{2000000000, [3]string{"69279037", "90698825", "38618901"}},
		{20000000000, [3]string{"65353130", "77737706", "47863826"}},
	} {
		for i, a := range algs {
			t.Run(fmt.Sprintf("T=%d/%s", tc.unix, a.name), func(t *testing.T) {
				secret := base32.StdEncoding.EncodeToString(a.seed)
				at := time.Unix(tc.unix, 0).UTC()
				opts := totp.ValidateOpts{Period: 30, Digits: otp.DigitsEight, Algorithm: a.alg}
				got, err := totp.GenerateCodeCustom(secret, at, opts)
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.codes[i] {
					t.Errorf("GenerateCodeCustom = %s, want %s", got, tc.codes[i])
				}
				if ok, err := totp.ValidateCustom(tc.codes[i], secret, at, opts); err != nil || !ok {
					t.Errorf("ValidateCustom(%s) = %v, %v; want true", tc.codes[i], ok, err)
				}
				// One step later, with no skew allowed, the code is refused.
				if ok, _ := totp.ValidateCustom(tc.codes[i], secret, at.Add(30*time.Second), opts); ok {
					t.Errorf("ValidateCustom accepted the code a step late without skew")
				}
			})
		}
	}
}
