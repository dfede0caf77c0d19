// Package seal encrypts small secrets at rest under a cluster master key.
//
// ferry stores the WireGuard interface key and TOTP secrets in the replicated
// bbolt database. Before such a value is written, it is sealed with
// AES-256-GCM under a [Key] read from a file on each node, so the database
// file, raft log and snapshots hold ciphertext only.
//
// What it does:
//   - [GenerateKey], [LoadKeyFile] and [WriteKeyFile] create and store the
//     32-byte master key. Key files must not be readable by group or other.
//   - [Seal] and [Open] encrypt and authenticate one value. The associated
//     data binds a ciphertext to where it is stored (for example
//     "totp/alice"), so a ciphertext copied or swapped into another record
//     fails to open.
//   - [DeriveKey] derives independent sub-keys (for example the HMAC key for
//     join tokens) from the master key, so the master key itself is used for
//     one purpose only.
//
// What it does not do:
//   - Key rotation or re-encryption. The sealed format carries a version byte
//     so that a later format, or a key identifier, can be added.
//   - Protection against replay of an old ciphertext into the same record:
//     callers that need that must include a version or counter in the
//     associated data.
//   - Large data or streaming: a value is sealed in memory in one piece. Each
//     Seal draws a random 96-bit nonce, so one key should seal well under 2^32
//     values (NIST SP 800-38D); ferry's secrets number in the thousands.
//   - Memory hygiene: Go cannot reliably erase copies of a key from memory.
//   - KMS integration. A KMS-backed master key may replace the key file later.
package seal
