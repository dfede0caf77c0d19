package authn

import (
	"fmt"
	"strings"
)

// userKeySep separates the issuer from the subject in a user key. An OIDC
// issuer is an https URL with no query or fragment (OpenID Connect
// Discovery 1.0, section 3), so it never holds '#', and the first '#' of a
// key always ends the issuer.
const userKeySep = "#"

// UserKey returns ferry's user ID for the person the identity provider
// issuer names subject: issuer + "#" + subject, e.g.
// "https://idp.example.com#00u1abcd". Subjects are unique and never
// reassigned within one issuer (OpenID Connect Core 1.0, section 2), so
// the pair names one person for good, whatever their email becomes.
//
// Every path that learns of a person from an identity provider keys them
// this way: OIDC sign-in (iss and the configured user ID claim, "sub" by
// default), refresh-token revalidation, and provisioning or events that
// name the same subject (SCIM externalId, back-channel logout, Shared
// Signals), so they all reach the same record.
func UserKey(issuer, subject string) string {
	return issuer + userKeySep + subject
}

// SplitUserKey returns the issuer and subject of a key made by UserKey; ok
// is false for other IDs (users stored before keys named the issuer, whose
// ID is the bare subject).
func SplitUserKey(id string) (issuer, subject string, ok bool) {
	iss, sub, ok := strings.Cut(id, userKeySep)
	if !ok || iss == "" || sub == "" || !strings.Contains(iss, "://") {
		return "", "", false
	}
	return iss, sub, true
}

// checkIssuerSubject checks an identity's issuer and subject before they
// become a key.
func checkIssuerSubject(iss, sub string) error {
	switch {
	case iss == "" || sub == "":
		return fmt.Errorf("%w: issuer and subject: both required", ErrInvalidInput)
	case strings.Contains(iss, userKeySep):
		return fmt.Errorf("%w: issuer %q: contains %q", ErrInvalidInput, iss, userKeySep)
	}
	return checkUserID(UserKey(iss, sub))
}
