package authn

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
)

// New recovery codes are shown on a page of their own, after a redirect
// (POST-redirect-GET, so that Back and Reload never resubmit the code
// form). Between the POST that makes them and the GET that shows them
// they wait in the sign-in step's record, sealed under a key only the
// browser holding the step cookie can derive: the store keys the step by
// SHA-256(ticket), and the codes' key is SHA-256 of a different string
// with the ticket, so a copy of the store opens nothing. The step is used
// up (and the codes dropped) when the person continues, and swept after
// loginTTL otherwise.

// codesAD binds sealed codes to their use.
const codesAD = "ferry/signin-recovery-codes"

func codesKey(ticket string) []byte {
	k := sha256.Sum256([]byte("ferry-recovery-codes\x00" + ticket))
	return k[:]
}

func codesAEAD(ticket string) (cipher.AEAD, error) {
	block, err := aes.NewCipher(codesKey(ticket))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealCodes seals codes for the browser holding ticket.
func sealCodes(ticket string, codes []string) ([]byte, error) {
	aead, err := codesAEAD(ticket)
	if err != nil {
		return nil, fmt.Errorf("sealing recovery codes: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("sealing recovery codes: %w", err)
	}
	return aead.Seal(nonce, nonce, []byte(strings.Join(codes, "\n")), []byte(codesAD)), nil
}

// openCodes opens what sealCodes sealed for ticket.
func openCodes(ticket string, sealed []byte) ([]string, error) {
	aead, err := codesAEAD(ticket)
	if err != nil {
		return nil, fmt.Errorf("opening recovery codes: %w", err)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("opening recovery codes: too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(codesAD))
	if err != nil {
		return nil, fmt.Errorf("opening recovery codes: %w", err)
	}
	return strings.Split(string(plain), "\n"), nil
}
