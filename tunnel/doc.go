// Package tunnel is a node's data plane: the WireGuard device, the
// enforcement of every client's profile in the kernel, and the session and
// flow monitors that turn what the device and conntrack see into audit
// events.
//
// A Gateway follows the replicated peers and profiles (cluster watches on
// profiles.RecordPrefixes, decoded into typed values by
// profiles.DecodeRecord and DecodeEvent: the keys and JSON are the
// profiles package's) and converges incrementally:
//
//   - The device, driven through wgctrl only: a kernel WireGuard interface
//     where the kernel has one, otherwise wireguard-go in this process on a
//     TUN device serving its UAPI socket. Each valid peer is its public key
//     with AllowedIPs = its address/32, so cryptokey routing drops packets
//     whose inner source is not the sender's address. The interface key is
//     the cluster's, so a client whose traffic lands on another node only
//     handshakes again.
//   - ferry's own nftables table (family ip), programmed over netlink in
//     one batch per change: a hash vmap from client address to a jump into
//     its profile's chain, and per profile one small concatenated interval
//     set (destination . protocol . port; port 0 for protocols without
//     ports) that changes only when the profile is edited. Established and
//     related traffic passes; a new connection passes only if the client's
//     profile allows it; everything else, client-to-client traffic and
//     traffic to the node itself are dropped and counted by reason. An
//     accepted connection's conntrack mark is its client's address, so a
//     revoked or expired peer's connections are cut in one operation.
//     Traffic leaving toward the VPC is masqueraded to the node's address.
//   - Expiry by the local clock: a timer fires at the earliest expiry, no
//     cleanup needed.
//
// Sessions (session.start, session.end) are derived from handshake times,
// endpoints and byte counters. Flows are recorded in the NetFlow/IPFIX
// manner: accepted connections (conntrack DESTROY events, plus interim
// reports of connections open past the active timeout, default 5 minutes)
// and denied attempts (a dynamic set with counters) are aggregated per
// interval (default 1 minute) into one tuple per (client, destination,
// protocol, port, verdict) with flows, packets and bytes each way, first
// and last seen and the rule that admitted it; a client's tuples of one
// interval and verdict travel as one flow.accept or flow.deny event
// (audit.Flow, at most 32 per event) that names the user, device, profile
// and version once, which keeps the journal's cost per tuple small. Memory is bounded: past FlowMaxRecords distinct
// tuples an interval folds the rest to (client, destination) and then
// per-client records that carry the count of what was folded, and the
// metric ferry_tunnel_flow_folded_total counts them; nothing is dropped
// silently. Bytes are counted from the client's side: BytesOut is what the
// client sent, BytesIn what it got.
//
// The package does not issue peers or decide who may sign in (see
// profiles and authn), and it does not store audit events (see audit).
package tunnel
