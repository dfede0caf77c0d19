// Package profiles holds what people may reach and the WireGuard identities
// they reach it with: access profiles (allow rules by CIDR, protocol and
// port; DNS; split or full tunnel; session length; device limits; the IdP
// groups and users they are assigned to), and peers — one per device —
// issued after sign-in with an address allocated atomically through the
// cluster, a version of the profile that allowed it, and an expiry.
//
// It renders wg-quick configurations and applies declarative profile files.
// It does not program any data plane: the tunnel package follows the peers
// and profiles this package writes.
package profiles
