// Package profiles holds what people may reach and the WireGuard identities
// they reach it with: access profiles (allow rules by CIDR, protocol and
// port; DNS; split or full tunnel; session length; device limits; the IdP
// groups and users they are assigned to), and peers — one per device —
// issued after sign-in with an address allocated atomically through the
// cluster, a version of the profile that allowed it, and an expiry.
//
// Access is re-decided whenever its inputs change: Store.Entitle is the one
// entitlement decision (authn's admission policy plus the profile's
// assignment), and RunEntitlements, the entitlement watcher, applies it to
// every live peer a change of users, profiles or peers touches, revoking
// with the change and its author as the reason. Disabling a user is one
// operation (SetUserDisabled). Devices an administrator revoked stay
// revoked until an administrator clears them, and max_devices holds on
// every issuance path.
//
// Benchmarks: BenchmarkReevaluate here (one group change, 10,000 users);
// end to end on three netns nodes, BenchmarkIdPGroupRemoval in
// cmd/internal/continuous, whose measureRemoval(b, addrs, take) times any
// deprovisioning path (take(i) acts for user i, e.g. a SCIM active=false
// PATCH) to the user's client map entry gone on all three nodes.
//
// It renders wg-quick configurations and applies declarative profile files.
// It does not program any data plane: the tunnel package follows the peers
// and profiles this package writes.
package profiles
