package tunnel_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"

	"github.com/ferryvpn/ferry/tunnel/capture"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// TestCaptureDataPlane captures one client (bob, c2) on his gateway while
// he reaches an allowed and a denied destination and another client
// (alice, c1) is busy beside him, and reads the file back in Go (the
// kernel suite's machine has no tshark): his packets only, both ways of
// the allowed flow, the denied SYNs unanswered, headers only, under the
// node's interface. It is part of the kernel suite: on the host the
// gateway runs the embedded device and the capture is the TUN tap; in
// TestKernelSuiteVM's machine the gateway runs wireguard.ko and the same
// capture is an AF_PACKET socket with the filter compiled to classic BPF
// and attached in the kernel.
func TestCaptureDataPlane(t *testing.T) {
	tp := startTopology(t)
	c1, c2 := tp.c1, tp.c2
	waitFor(t, "c2 tcp 10.99.0.1:7001 through s1", 60*time.Second, probe(c2, "tcp", "10.99.0.1:7001"))
	waitFor(t, "c1 tcp 10.99.0.1:7001", 60*time.Second, probe(c1, "tcp", "10.99.0.1:7001"))
	const bob, alice = "100.64.0.12", "100.64.0.11"
	const snaplen = 64
	tp.s1.Must(t, tunneltest.Request{Op: "capture_start", Addr: bob, Key: "tcp and not port 7002", Bytes: snaplen, Timeout: 5 * time.Minute})
	// Which path runs: on wireguard.ko a packet socket bound to the
	// device, on the embedded device none (the tap).
	if socks := packetSockets(t, tp.s1ns, tp.net.Name("fw1-")); *kernelDevice != (socks > 0) {
		t.Fatalf("%d packet sockets on the WireGuard device (kernel device: %v): the capture took the wrong path", socks, *kernelDevice)
	}
	for range 3 {
		if err := probe(c2, "tcp", "10.99.0.1:7001")(); err != nil {
			t.Fatalf("c2 allowed: %v", err)
		}
		if err := probe(c2, "tcp", "10.99.0.1:7003")(); err == nil {
			t.Fatal("c2 reached a denied port")
		}
		probe(c2, "udp", "10.99.0.1:7002")() // his, but not in the filter
		probe(c1, "tcp", "10.99.0.1:7001")() // alice's
	}
	r := tp.s1.Must(t, tunneltest.Request{Op: "capture_stop"})
	data, err := base64.StdEncoding.DecodeString(r.Text)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := capture.Merge(context.Background(), []capture.NodeStream{{Name: "n1", Open: func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}}}, "tcp", capture.Limits{Duration: time.Minute, MaxBytes: 64 << 20, Snaplen: snaplen}, &out)
	if err != nil {
		t.Fatal(err)
	}

	rd, err := pcapgo.NewNgReader(&out, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("reading the pcapng file: %v", err)
	}
	var allowedOut, allowedBack, deniedSyn, deniedAnswer, n int
	var last time.Time
	for {
		pkt, ci, err := rd.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("packet %d: %v", n, err)
		}
		n++
		if ifc, err := rd.Interface(ci.InterfaceIndex); err != nil || ifc.Name != "n1/"+tp.net.Name("fw1-") {
			t.Fatalf("packet %d on interface %+v (%v), want n1/%s", n, ifc, err, tp.net.Name("fw1-"))
		}
		if ci.Timestamp.Before(last) {
			t.Errorf("packet %d out of time order", n)
		}
		last = ci.Timestamp
		// LINKTYPE_LOOP: a 4-byte family header, then the IP packet.
		if len(pkt) > 4+snaplen || ci.Length < len(pkt) {
			t.Errorf("packet %d: %d bytes kept of %d, snap length %d", n, len(pkt), ci.Length, snaplen)
		}
		ip := pkt[4:]
		if len(ip) < 40 || ip[0]>>4 != 4 {
			t.Fatalf("packet %d: not an IPv4 TCP header: % x", n, ip)
		}
		src, dst := netip.AddrFrom4([4]byte(ip[12:16])).String(), netip.AddrFrom4([4]byte(ip[16:20])).String()
		if ip[9] != 6 {
			t.Fatalf("packet %d: protocol %d, the filter wants tcp", n, ip[9])
		}
		if src == alice || dst == alice || (src != bob && dst != bob) {
			t.Fatalf("packet %d: %s > %s is not bob's", n, src, dst)
		}
		tcp := ip[int(ip[0]&0xf)*4:]
		sport, dport, flags := binary.BigEndian.Uint16(tcp[0:]), binary.BigEndian.Uint16(tcp[2:]), tcp[13]
		switch {
		case src == bob && dport == 7001:
			allowedOut++
		case dst == bob && sport == 7001:
			allowedBack++
		case src == bob && dport == 7003 && flags&0x12 == 0x02:
			deniedSyn++
		case sport == 7003:
			deniedAnswer++
		}
	}
	t.Logf("%d packets of bob's kept (%s), %d dropped", n, res.Stopped, res.Dropped)
	if allowedOut == 0 || allowedBack == 0 || deniedSyn == 0 || deniedAnswer != 0 {
		t.Errorf("allowed flow %d out, %d back; denied SYNs %d, answered %d; want the allowed flow both ways and unanswered SYNs",
			allowedOut, allowedBack, deniedSyn, deniedAnswer)
	}
	if uint64(n) != res.Packets || r.Conn != n {
		t.Errorf("the file holds %d packets, the merge counted %d, the gateway %d", n, res.Packets, r.Conn)
	}
}

// packetSockets counts the AF_PACKET sockets bound to iface in namespace
// ns (/proc/net/packet of the namespace).
func packetSockets(t *testing.T, ns, iface string) int {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-j", "link", "show", "dev", iface).Output()
	if err != nil {
		t.Fatalf("ip link show %s: %v", iface, err)
	}
	var links []struct {
		Index int `json:"ifindex"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show %s: %v: %s", iface, err, out)
	}
	out, err = exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/packet").Output()
	if err != nil {
		t.Fatalf("/proc/net/packet in %s: %v", ns, err)
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n")[1:] {
		// sk RefCnt Type Proto Iface R Rmem User Inode
		if f := strings.Fields(l); len(f) >= 5 && f[4] == strconv.Itoa(links[0].Index) {
			n++
		}
	}
	return n
}
