package authn

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
	qrcode "github.com/skip2/go-qrcode"
)

// TOTP parameters: RFC 6238 defaults, which every authenticator app
// supports. Skew accepts the step before and after the current one, for
// clock drift and typing time; the replay guard makes the wider window
// harmless.
const (
	totpPeriod     = 30 // seconds per time step
	totpSkew       = 1  // steps accepted either side of now
	totpDigits     = otp.DigitsSix
	totpSecretSize = 20 // bytes: 160 bits, the RFC 4226 recommendation for SHA-1
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// totpSecret is a raw TOTP key. It never prints.
type totpSecret []byte

func newTOTPSecret() (totpSecret, error) {
	s := make(totpSecret, totpSecretSize)
	if _, err := io.ReadFull(rand.Reader, s); err != nil {
		return nil, fmt.Errorf("generating TOTP secret: %w", err)
	}
	return s, nil
}

// Equal reports whether s and o are the same secret, in constant time.
func (s totpSecret) Equal(o totpSecret) bool { return subtle.ConstantTimeCompare(s, o) == 1 }

func (s totpSecret) String() string                { return "[redacted]" }
func (s totpSecret) GoString() string              { return "[redacted]" }
func (s totpSecret) Format(f fmt.State, verb rune) { io.WriteString(f, "[redacted]") }
func (s totpSecret) LogValue() slog.Value          { return slog.StringValue("[redacted]") }

// base32 returns the secret as authenticator apps and pquerna/otp take it.
func (s totpSecret) base32() string { return b32.EncodeToString(s) }

// timeStep returns the RFC 6238 time step counter of t.
func timeStep(t time.Time) uint64 {
	u := t.Unix()
	if u < 0 {
		return 0
	}
	return uint64(u) / totpPeriod
}

// normalizeCode strips the spaces people type inside codes ("123 456") and
// reports whether what is left is exactly six ASCII digits.
func normalizeCode(code string) (string, bool) {
	code = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, code)
	if len(code) != totpDigits.Length() {
		return "", false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return "", false
		}
	}
	return code, true
}

// matchStep returns the time step, within the skew window around now, at
// which code is the TOTP code of s. If the code matches several steps (a
// one-in-a-million collision) the latest wins. Every step in the window is
// checked, with pquerna/otp's constant-time comparison, so timing tells
// nothing about which step matched.
func matchStep(s totpSecret, code string, now time.Time) (step uint64, ok bool) {
	code, valid := normalizeCode(code)
	if !valid {
		return 0, false
	}
	secret := s.base32()
	cur := timeStep(now)
	opts := hotp.ValidateOpts{Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}
	for d := -totpSkew; d <= totpSkew; d++ {
		if d < 0 && cur < uint64(-d) {
			continue
		}
		c := uint64(int64(cur) + int64(d))
		hit, err := hotp.ValidateCustom(code, c, secret, opts)
		if err == nil && hit && (!ok || c > step) {
			step, ok = c, true
		}
	}
	return step, ok
}

// totpCode returns the code of s at time t (for tests and the dev
// provider's demo user, through authntest).
func totpCode(s totpSecret, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(s.base32(), t, totp.ValidateOpts{
		Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1,
	})
}

// Enrollment is what a person needs to add ferry to an authenticator app.
// Every field holds the TOTP secret, so an Enrollment never prints: show it
// to its owner once and drop it.
type Enrollment struct {
	// URI is the otpauth:// key URI.
	URI string
	// QRPNG is the URI as a QR code, a PNG image.
	QRPNG []byte
	// QRText is the URI as a QR code drawn with Unicode half blocks, for a
	// terminal.
	QRText string
}

func (e Enrollment) String() string                { return "[enrollment redacted]" }
func (e Enrollment) GoString() string              { return "[enrollment redacted]" }
func (e Enrollment) Format(f fmt.State, verb rune) { io.WriteString(f, "[enrollment redacted]") }
func (e Enrollment) LogValue() slog.Value          { return slog.StringValue("[enrollment redacted]") }

// qrPNGSize is the side of the enrollment QR image in pixels.
const qrPNGSize = 256

// newEnrollment renders the key URI and QR codes for s.
func newEnrollment(s totpSecret, issuer, account string) (Enrollment, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      totpPeriod,
		Secret:      s,
		Digits:      totpDigits,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return Enrollment{}, fmt.Errorf("building otpauth URI: %w", err)
	}
	uri := key.URL()
	q, err := qrcode.New(uri, qrcode.Medium)
	if err != nil {
		return Enrollment{}, fmt.Errorf("encoding QR code: %w", err)
	}
	png, err := q.PNG(qrPNGSize)
	if err != nil {
		return Enrollment{}, fmt.Errorf("rendering QR code: %w", err)
	}
	return Enrollment{URI: uri, QRPNG: png, QRText: q.ToSmallString(false)}, nil
}
