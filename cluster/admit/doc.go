// Package admit decides who joins a ferry cluster and with which
// certificates: join tokens (their format, lifetime and single use), the
// certificate policy (node certificates short-lived and renewed by members,
// API certificates only for the cluster's configured names), and the admit
// step that redeems a token, issues the node's certificates and adds it as
// a non-voter at once.
//
// What it does:
//   - Tokens: [MintToken] makes a token valid for at most [MaxTokenTTL]
//     (default [DefaultTokenTTL]), optionally bound to one node ID. A token
//     is redeemed at most once: [Admitter.Join] consumes it with a
//     compare-and-swap in the replicated store in the same transaction that
//     records the node's certificate, so two nodes presenting the same token
//     at once cannot both join.
//   - Admission: [Admitter.Join] checks the token, the node ID (not a
//     current member), the certificate requests and the API names; issues
//     the node certificate (valid [DefaultNodeCertTTL], and never before the
//     node's last revocation) and the API certificate; consumes the token;
//     and adds the node as a non-voter (cluster.Node.AddNonvoter). The node
//     promotes itself to voter once it has caught up; a node that never
//     starts is removed by the leader after cluster.Config.NonvoterTimeout.
//   - Renewal: [Admitter.Renew] is cluster.Config.Renew: a member asks, over
//     the authenticated cluster channel, for a new certificate for itself.
//   - The CA in the store: [PublishCA], [CACert], [LoadCA].
//   - Every token use, refusal and certificate issued is reported through
//     Config.Record for the audit log (this package may not import audit).
//
// What it does not do: HTTP (cmd/internal/api translates), the files of a
// node directory (cmd/ferryd), Raft membership itself (package cluster).
package admit
