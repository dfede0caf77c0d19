// Package capture records a node's decrypted tunnel traffic for one
// administrator's troubleshooting: which packets (a filter in a small
// subset of tcpdump's language, compiled to classic BPF and always
// restricted to the selected clients' tunnel addresses), how much of each
// (a snap length), for how long and how many bytes (Limits), and merges
// what every node captured into one pcapng file with one interface block
// per node, in time order.
//
// Two sources, one filter program:
//
//   - Tap, on the TUN path of the embedded wireguard-go device. While no
//     capture runs it costs one atomic pointer load per batch of packets.
//     A running capture compares each packet's addresses with its
//     clients' first, so another client's packet costs a few comparisons
//     (no BPF, no clock, no allocation); the captured clients' packets go
//     through the BPF program in golang.org/x/net/bpf's VM and copies are
//     queued, dropping (and counting) rather than blocking.
//   - OpenInterface, an AF_PACKET socket on any interface (the kernel
//     WireGuard device) with the program attached in the kernel.
//
// Stream turns a source into a record stream that can cross the cluster;
// Merge runs every node's stream and writes the pcapng file (with
// github.com/google/gopacket's pcapgo).
//
// Service runs a capture on every node of the cluster at once and decides
// whether it may run: administrator, fresh TOTP, a reason, the cluster's
// caps, and at most MaxConcurrent captures in the whole cluster, counted
// by replicated leases it keeps under capture/ in the cluster store
// (slots.go). Start, refusal and stop are audit events. It does not
// resolve names.
package capture
