package authn

import (
	"context"
	"fmt"

	"github.com/ferryvpn/ferry/cluster"
)

// PendingEnrollment returns id's unconfirmed enrollment again, the same
// key BeginEnroll made, so that a wrong first code does not cost the
// person the QR code they just scanned. It returns ErrNotEnrolled when
// nothing is pending and ErrAlreadyEnrolled once confirmed. It records
// nothing: showing the key again to the sign-in that made it reveals
// nothing new.
func (m *MFA) PendingEnrollment(ctx context.Context, id Identity) (Enrollment, error) {
	if err := checkUserID(id.UserID); err != nil {
		return Enrollment{}, err
	}
	rec, _, ok, err := getRecord[totpRecord](ctx, m.store, totpKey(id.UserID), cluster.Linearizable)
	switch {
	case err != nil:
		return Enrollment{}, fmt.Errorf("reading enrollment: %w", err)
	case !ok:
		return Enrollment{}, ErrNotEnrolled
	case rec.Confirmed:
		return Enrollment{}, ErrAlreadyEnrolled
	}
	secret, err := m.openSecret(id.UserID, &rec)
	if err != nil {
		return Enrollment{}, err
	}
	account := id.Email
	if account == "" {
		account = id.UserID
	}
	return newEnrollment(secret, m.issuer, account)
}
