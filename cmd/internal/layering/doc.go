// Package layering holds the test that keeps the package table of
// STYLE.md true: lower layers never import higher ones, and the client
// binaries never link the cluster store.
//
// The rules live in layering_test.go; the package has no other code.
package layering
