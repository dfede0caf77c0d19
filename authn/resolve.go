package authn

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrAmbiguousUser is returned by Users.Resolve when an email address
// belongs to several users; the error names their IDs.
var ErrAmbiguousUser = errors.New("authn: several users have that email address")

// Resolve returns the user an administrator named by user ID or by email
// address: an exact user ID first, else the one user whose email matches
// case-insensitively. It returns ErrUnknownUser when no user matches,
// ErrAmbiguousUser when several share the address, and ErrInvalidInput for
// a malformed name. Every API route that takes a user goes through it, so
// that "--user EMAIL" means the same everywhere.
func (u *Users) Resolve(ctx context.Context, idOrEmail string) (User, error) {
	if err := checkUserID(idOrEmail); err != nil {
		return User{}, err
	}
	usr, ok, err := u.Get(ctx, idOrEmail)
	if err != nil {
		return User{}, err
	}
	if ok {
		return usr, nil
	}
	var found []User
	if strings.Contains(idOrEmail, "@") {
		all, err := u.List(ctx)
		if err != nil {
			return User{}, err
		}
		for _, x := range all {
			if strings.EqualFold(x.Email, idOrEmail) {
				found = append(found, x)
			}
		}
	}
	switch len(found) {
	case 0:
		return User{}, unknownUserError(idOrEmail)
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, x := range found {
		ids[i] = x.ID
	}
	return User{}, fmt.Errorf("%w: %q: give one of their IDs %s", ErrAmbiguousUser, idOrEmail, strings.Join(ids, ", "))
}

// unknownUserError is ErrUnknownUser with the name that matched nobody,
// worded for the administrator who typed it.
type unknownUserError string

func (e unknownUserError) Error() string {
	return fmt.Sprintf("no user %q (give a user ID or email address; ferryctl user list shows them)", string(e))
}

func (e unknownUserError) Unwrap() error { return ErrUnknownUser }

// HSTS is the one Strict-Transport-Security policy of every ferry page and
// API answer: an origin that sends two policies leaves the browser with
// whichever it saw last.
const HSTS = "max-age=63072000; includeSubDomains"
