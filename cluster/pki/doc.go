// Package pki runs ferry's cluster certificate authority: it issues the
// certificates that nodes use for mutual TLS with each other and for the
// HTTPS API, and it makes and checks the join tokens that admit a new node.
//
// What it does:
//   - [NewCA] creates a self-signed ECDSA P-256 CA that can sign leaf
//     certificates only (MaxPathLen 0). [ParseCA] loads one back from PEM and
//     checks that the key belongs to the certificate.
//   - [CA.IssueNode] signs a node's certificate request. A node certificate
//     is valid for both server and client authentication, because nodes dial
//     each other with mutual TLS, and its common name is the node ID.
//   - [CA.IssueServer] signs an HTTPS API certificate, valid for server
//     authentication only, so it can never pass as a node's client
//     certificate.
//   - Join tokens ([NewJoinToken], [NewJoinTokenFor], [ParseJoinToken],
//     [VerifyJoinToken], [VerifyJoinTokenFor]; optionally bound to a node ID
//     through the MAC) are
//     stateless, in the manner of kubeadm's bootstrap token and discovery
//     hash. A token carries a pin of the CA certificate's SHA-256
//     fingerprint, an expiry and an HMAC under a secret derived from the
//     cluster master key. The joining node uses the pin to authenticate the
//     cluster ([VerifyPin]) before it sends the token; the cluster uses the
//     HMAC and expiry to authenticate the joining node.
//
// What it does not do:
//   - Revocation: there are no CRLs or OCSP. Node certificates are
//     short-lived (cluster/admit), and the cluster layer refuses removed
//     and revoked nodes.
//   - Single-use join tokens: a token verifies any number of times until it
//     expires; cluster/admit consumes each once, in the replicated store.
//   - Storage or replication of the CA key, or encryption of it at rest; see
//     package seal.
//   - Name policy for DNS names and IP addresses: the caller decides which
//     names a node or server may carry.
//
// All functions that depend on the time take it as an argument, except
// [VerifyPin], which runs inside a TLS handshake and uses the system clock.
package pki
