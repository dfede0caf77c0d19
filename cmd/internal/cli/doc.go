// Package cli is what the client binaries ferry and ferryctl share: one
// vocabulary for the people who use both. It checks and canonicalizes
// server URLs, prints tables and JSON, formats times and durations for
// people, reports the version, and turns API errors into what to do.
//
// It is linked into the clients: of the project it imports only
// cmd/internal/client and cmd/internal/wire, never a domain package, raft
// or bbolt (the layering test keeps it so). It holds no state and no
// flags: each binary keeps its own commands and files.
package cli
