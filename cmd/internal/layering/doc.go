// Package layering holds the one dependency rulebook of the module: the
// test that keeps the package table of STYLE.md true (lower layers never
// import higher ones), the package-specific rules (the client binaries and
// what they are built from never link the cluster store, raft or the data
// plane; audit/auditfile is standard library only; authn/devop stands
// alone; the service assembly reads no configuration file), the rule that
// ferryd and the test harnesses build a node's services only through
// cmd/internal/assembly, and a loud failure when `go list` cannot load the
// packages.
//
// The rules live in layering_test.go and assembly_test.go; the package has
// no other code.
package layering
