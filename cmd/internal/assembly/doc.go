// Package assembly builds a node's domain services from its cluster node:
// the cluster secrets (audit signing key, WireGuard key), the audit log with
// its checkpoints, exporter and retention, the sign-in stack
// (authn.NewStack), profiles with the entitlement watcher, what the identity
// provider pushes (SCIM, back-channel logout, Shared Signals), the data
// plane, packet capture, the reports' rollup and the leader's housekeeping.
// It returns the handles and the pieces of the HTTP API built on them.
//
// ferryd and the test harnesses (cmd/internal/apitest, the continuous
// access tests) all build a node through Start, so a harness runs the
// wiring production runs and cannot drift from it.
//
// It does not read the configuration file (cmd/internal/config is
// translated into a Config by ferryd), start the cluster node, listen on
// any port or serve HTTP.
package assembly
