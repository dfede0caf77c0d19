/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package tun

import (
	"testing"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Test_handleGROFerry checks ferry's changes to TCP coalescing (FERRY.md):
// a segment whose TCP checksum is wrong is coalesced all the same (what is
// written to the TUN device was authenticated by decryption), and the
// coalesced packet, its buffer extended by reslicing rather than appending
// zeroes, holds every segment's payload in sequence order, appended or
// prepended, with a virtio header that has the kernel checksum it.
func Test_handleGROFerry(t *testing.T) {
	const segment = 100
	tests := []struct {
		name string
		seqs []uint32
		bad  int // index of the segment whose checksum is flipped
	}{
		{"in order, a wrong checksum in the middle", []uint32{1, 101, 201}, 1},
		{"in order, a wrong checksum first", []uint32{1, 101, 201}, 0},
		{"out of order (prepended), a wrong checksum on the head", []uint32{101, 1, 201}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkts := make([][]byte, len(tt.seqs))
			for i, seq := range tt.seqs {
				p := tcp4Packet(ip4PortA, ip4PortB, header.TCPFlagAck, segment, seq)
				// The payload holds its position in the stream; the
				// checksum no longer matches it, which ferry does not check.
				for j := range segment {
					p[offset+40+j] = byte((int(seq) - 1 + j) % 251)
				}
				if i == tt.bad {
					flipTCP4Checksum(p)
				}
				pkts[i] = p
			}
			toWrite := make([]int, 0, len(pkts))
			if err := handleGRO(pkts, offset, newTCPGROTable(), newUDPGROTable(), false, &toWrite); err != nil {
				t.Fatal(err)
			}
			if len(toWrite) != 1 {
				t.Fatalf("%d packets to write, want 1 coalesced", len(toWrite))
			}
			out := pkts[toWrite[0]]
			if want := offset + 40 + len(tt.seqs)*segment; len(out) != want {
				t.Fatalf("coalesced length %d, want %d", len(out), want)
			}
			for k, b := range out[offset+40:] {
				if b != byte(k%251) {
					t.Fatalf("payload byte %d is %d, want %d", k, b, byte(k%251))
				}
			}
			var hdr virtioNetHdr
			if err := hdr.decode(out); err != nil {
				t.Fatal(err)
			}
			if hdr.flags != unix.VIRTIO_NET_HDR_F_NEEDS_CSUM || hdr.gsoType != unix.VIRTIO_NET_HDR_GSO_TCPV4 ||
				hdr.gsoSize != segment || hdr.csumStart != 20 || hdr.csumOffset != 16 {
				t.Fatalf("virtio header %+v, want the kernel to checksum TCPv4 segments of %d bytes", hdr, segment)
			}
		})
	}
}
