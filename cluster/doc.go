// Package cluster is ferry's replicated truth: a small transactional key-value
// store and an append-only, hash-chained journal, replicated with Raft
// (hashicorp/raft) and kept in bbolt on every node.
//
// A Node offers:
//
//   - Transactions: compares (key absent, key at a version, key equals a value)
//     guarding puts and deletes, applied atomically on every node or not at all.
//     Domain code builds compare-and-swap on them. A transaction may carry
//     journal records (Txn.Journal), appended iff its compares hold, in the
//     same Raft entry and bbolt transaction as its ops: a change and the
//     record that describes it commit together or not at all.
//   - Reads: local (this node's applied state, for the data plane) or
//     linearizable (confirmed with the leader first).
//   - Watches: every committed change under a prefix, in commit order, exactly
//     once; a Reset event after a snapshot is installed.
//   - A journal: records appended in batches; the state machine assigns
//     sequence numbers and a SHA-256 hash chain, so every node holds the same
//     chain. Keyed appends (AppendKeyed) are idempotent: a record whose key
//     is among the last JournalKeyWindow records' keys is dropped, so a retry
//     after a lost answer stores nothing twice.
//   - Membership: bootstrap; nodes added as non-voters that promote
//     themselves once caught up (AddNonvoter, AddVoter after probing the
//     address); removal, which revokes the node's certificates; a node
//     removing itself (Leave, authenticated by its own certificate); status.
//   - Trust (authz.go): only current members speak for the cluster. Raft
//     RPCs and forwarded requests are served per request only for a peer
//     certificate naming a member of the latest configuration that has not
//     expired or been revoked; refusals are reported (Config.OnPeerEvent).
//     Forwarded restores and membership changes carry the caller's proof,
//     which the leader checks (Config.Authorize). Members renew their
//     short-lived certificates over the cluster port (Config.Renew).
//
// Writes, and restores of backups, on any node are forwarded to the leader
// over mutual TLS, so callers never need to know who leads. Raft traffic and
// forwarded writes share one listener.
//
// The package does not know about users, profiles, audit or HTTP; it does
// not issue certificates (see cluster/admit and cluster/pki) or seal secrets
// (see cluster/seal).
package cluster
