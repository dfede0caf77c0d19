/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

// PeerStats is one peer's public key and the counters IpcGet reports for
// it, read without the UAPI text protocol (ferry's addition, see
// FERRY.md).
type PeerStats struct {
	PublicKey NoisePublicKey
	// Endpoint is the peer's current endpoint as IpcGet writes it
	// (DstToString); empty when it has none.
	Endpoint string
	// LastHandshakeNano is the last completed handshake, in nanoseconds
	// since the epoch; 0 when none.
	LastHandshakeNano int64
	RxBytes, TxBytes  uint64
}

// AppendPeerStats appends every peer's key and counters to dst and
// returns it. It reads what IpcGet writes for a peer, less its allowed
// IPs, keepalive and keys other than the public one, and formats nothing
// but the endpoint: a caller polling counters of thousands of peers does
// not pay for printing and parsing their allowed IPs and hex keys.
func (device *Device) AppendPeerStats(dst []PeerStats) []PeerStats {
	device.peers.RLock()
	defer device.peers.RUnlock()
	for key, peer := range device.peers.keyMap {
		s := PeerStats{
			PublicKey:         key,
			LastHandshakeNano: peer.lastHandshakeNano.Load(),
			RxBytes:           peer.rxBytes.Load(),
			TxBytes:           peer.txBytes.Load(),
		}
		peer.endpoint.Lock()
		if peer.endpoint.val != nil {
			s.Endpoint = peer.endpoint.val.DstToString()
		}
		peer.endpoint.Unlock()
		dst = append(dst, s)
	}
	return dst
}
