package capture

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// streamFrom returns a NodeStream.Open that runs Stream over a source.
func streamFrom(t *testing.T, wg *sync.WaitGroup, open func() (Source, error), lim Limits) func(context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		src, err := open()
		if err != nil {
			return nil, err
		}
		pr, pw := io.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Stream(ctx, src, "", lim, pw)
			pw.CloseWithError(err)
		}()
		return pr, nil
	}
}

// tsharkFields reads a capture file with tshark and returns one line of
// tab-separated fields per packet.
func tsharkFields(t *testing.T, file string, fields ...string) []string {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark is not installed (apt-get install tshark)")
	}
	args := []string{"-r", file, "-T", "fields"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && !strings.HasPrefix(l, "Running as") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestTapMergeTshark captures from the embedded device's tap on two
// "nodes" at once and checks, with tshark and tcpdump, that the merged
// pcapng holds the client's packets from both, in time order, under each
// node's interface name, snapped, and nothing of the other client.
func TestTapMergeTshark(t *testing.T) {
	client := netip.MustParseAddr("10.99.0.2")
	other := netip.MustParseAddr("10.99.0.3")
	// The capture ends by its duration, so every node sends its end
	// record after the packets it kept.
	lim := Limits{Duration: time.Second, MaxBytes: 1 << 20, Snaplen: 40}
	f, err := CompileFilter("udp or icmp", []netip.Addr{client})
	if err != nil {
		t.Fatal(err)
	}
	var taps [2]*Tap
	var devs [2]*tuntest.ChannelTUN
	for i := range taps {
		taps[i] = NewTap(nil)
		devs[i] = tuntest.NewChannelTUN()
	}
	wrapped := [2]interface {
		Write([][]byte, int) (int, error)
	}{taps[0].Wrap(devs[0].TUN()), taps[1].Wrap(devs[1].TUN())}
	var wg sync.WaitGroup
	opened := make(chan struct{}, 2)
	nodes := make([]NodeStream, 2)
	for i, name := range []string{"node-a/wg0", "node-b/wg0"} {
		nodes[i] = NodeStream{Name: name, Open: streamFrom(t, &wg, func() (Source, error) {
			defer func() { opened <- struct{}{} }()
			return taps[i].Open(f, lim.Snaplen), nil
		}, lim)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	done := make(chan Result, 1)
	go func() {
		res, err := Merge(ctx, nodes, "udp or icmp", lim, &out)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	<-opened
	<-opened
	// The client's flow moves from node A to node B: three packets on A,
	// then three on B; the other client's packets on both are not kept.
	drain := func(d *tuntest.ChannelTUN) {
		go func() {
			for range d.Inbound {
			}
		}()
	}
	drain(devs[0])
	drain(devs[1])
	payload := bytes.Repeat([]byte{0xab}, 200)
	send := func(node int, src netip.Addr, dport uint16) {
		p := append(pkt4(src.String(), "10.1.0.5", 17, 40000, dport, 0), payload...)
		if _, err := wrapped[node].Write([][]byte{p}, 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		send(0, client, uint16(1000+i))
		send(0, other, 9)
	}
	for i := range 3 {
		send(1, client, uint16(2000+i))
		send(1, other, 9)
	}
	res := <-done
	wg.Wait()
	if res.Packets != 6 {
		t.Fatalf("captured %d packets, want 6: %+v", res.Packets, res)
	}
	if taps[0].Active() || taps[1].Active() {
		t.Fatal("a tap still runs a capture after the capture ended")
	}
	file := filepath.Join(t.TempDir(), "c.pcapng")
	if err := os.WriteFile(file, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	lines := tsharkFields(t, file, "frame.interface_name", "ip.src", "udp.dstport", "frame.len", "frame.cap_len")
	want := []string{
		"node-a/wg0\t10.99.0.2\t1000\t232\t44", "node-a/wg0\t10.99.0.2\t1001\t232\t44", "node-a/wg0\t10.99.0.2\t1002\t232\t44",
		"node-b/wg0\t10.99.0.2\t2000\t232\t44", "node-b/wg0\t10.99.0.2\t2001\t232\t44", "node-b/wg0\t10.99.0.2\t2002\t232\t44",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("tshark read\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if _, err := exec.LookPath("tcpdump"); err == nil {
		out, err := exec.Command("tcpdump", "-nr", file).CombinedOutput()
		if err != nil || strings.Count(string(out), "10.99.0.2") != 6 || strings.Contains(string(out), "10.99.0.3") {
			t.Fatalf("tcpdump -r: %v\n%s", err, out)
		}
	}
}

// TestByteCapStopsEveryNode: the merged byte cap ends the capture on
// every node, not only where it was reached.
func TestByteCapStopsEveryNode(t *testing.T) {
	client := netip.MustParseAddr("10.99.0.2")
	lim := Limits{Duration: time.Minute, MaxBytes: 100, Snaplen: 40}
	f, _ := CompileFilter("", []netip.Addr{client})
	taps := []*Tap{NewTap(nil), NewTap(nil)}
	devs := []*tuntest.ChannelTUN{tuntest.NewChannelTUN(), tuntest.NewChannelTUN()}
	var wg sync.WaitGroup
	opened := make(chan struct{}, 2)
	var nodes []NodeStream
	for i := range taps {
		go func() {
			for range devs[i].Inbound {
			}
		}()
		nodes = append(nodes, NodeStream{Name: "n", Open: streamFrom(t, &wg, func() (Source, error) {
			defer func() { opened <- struct{}{} }()
			return taps[i].Open(f, lim.Snaplen), nil
		}, lim)})
	}
	done := make(chan Result, 1)
	go func() {
		res, _ := Merge(context.Background(), nodes, "", lim, io.Discard)
		done <- res
	}()
	<-opened
	<-opened
	dev := taps[0].Wrap(devs[0].TUN())
	var res Result
	for i := 0; ; i++ {
		dev.Write([][]byte{pkt4("10.99.0.2", "10.1.0.5", 17, 1, uint16(i), 0)}, 0)
		select {
		case res = <-done:
		default:
			continue
		}
		break
	}
	wg.Wait()
	if res.Stopped != StopBytes || res.Bytes > 100 {
		t.Fatalf("result %+v, want stopped by max_bytes at most 100 bytes", res)
	}
	if taps[0].Active() || taps[1].Active() {
		t.Fatal("a node still captures after the byte cap")
	}
}

// TestInterfaceCapture runs the AF_PACKET path with its BPF filter in the
// kernel on a veth pair, and checks tshark reads what it kept.
func TestInterfaceCapture(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a veth pair and a packet socket")
	}
	ns := "fcap-test"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	exec.Command("ip", "netns", "del", ns).Run()
	exec.Command("ip", "link", "del", "fcapA").Run()
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run(); exec.Command("ip", "link", "del", "fcapA").Run() })
	run("ip", "link", "add", "fcapA", "type", "veth", "peer", "name", "fcapB", "netns", ns)
	run("ip", "addr", "add", "10.231.0.1/24", "dev", "fcapA")
	run("ip", "link", "set", "fcapA", "up")
	run("ip", "-n", ns, "addr", "add", "10.231.0.2/24", "dev", "fcapB")
	run("ip", "-n", ns, "link", "set", "fcapB", "up")

	lim := Limits{Duration: 2 * time.Second, MaxBytes: 1 << 20, Snaplen: 60}
	// The "client" is 10.231.0.2; only UDP port 7001 is asked for.
	f, err := CompileFilter("udp and dst port 7001", []netip.Addr{netip.MustParseAddr("10.231.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	opened := make(chan struct{}, 1)
	nodes := []NodeStream{{Name: "node-k/fcapA", Open: streamFrom(t, &wg, func() (Source, error) {
		defer func() { opened <- struct{}{} }()
		return OpenInterface("fcapA", f, lim.Snaplen, nil)
	}, lim)}}
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan Result, 1)
	go func() {
		res, err := Merge(ctx, nodes, "udp and dst port 7001", lim, &out)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	<-opened
	// Unconnected, so the port-unreachable answers fail no later send.
	c, err := net.ListenPacket("udp", "10.231.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{1}, 500)
	for range 5 {
		for _, port := range []int{7001, 7002} {
			if _, err := c.WriteTo(big, &net.UDPAddr{IP: net.IPv4(10, 231, 0, 2), Port: port}); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.Close()
	res := <-done
	cancel()
	wg.Wait()
	file := filepath.Join(t.TempDir(), "k.pcapng")
	os.WriteFile(file, out.Bytes(), 0o600)
	lines := tsharkFields(t, file, "frame.interface_name", "udp.dstport", "frame.len", "frame.cap_len")
	if len(lines) != 5 || res.Packets != 5 {
		t.Fatalf("kept %d packets (%+v), want 5:\n%s", len(lines), res, strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		if l != "node-k/fcapA\t7001\t532\t64" {
			t.Fatalf("packet %q, want node-k/fcapA, port 7001, 528 bytes (and the 4-byte loopback header) snapped to 60", l)
		}
	}
}

// TestStoppedByDurationWhenANodeLeaves: a node that leaves during a
// capture (its part ends cancelled: a graceful stop) does not make the
// capture as a whole "cancelled" when the others ran their full duration.
func TestStoppedByDurationWhenANodeLeaves(t *testing.T) {
	lim := Limits{Duration: 300 * time.Millisecond, MaxBytes: 1 << 20, Snaplen: 96}
	part := func(cancelled bool) NodeStream {
		return NodeStream{Name: "n", Open: func(ctx context.Context) (io.ReadCloser, error) {
			pr, pw := io.Pipe()
			sctx, cancel := context.WithCancel(ctx)
			if cancelled {
				cancel() // the node is shutting down
			}
			go func() {
				defer cancel()
				_, err := Stream(sctx, &emptySource{newQueue()}, "wg0", lim, pw)
				pw.CloseWithError(err)
			}()
			return pr, nil
		}}
	}
	res, err := Merge(context.Background(), []NodeStream{part(false), part(true), part(false)}, "", lim, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopped != StopDuration || res.Nodes[1].Stopped != StopCancelled {
		t.Fatalf("result %+v: want the capture stopped by duration, the leaving node's part cancelled", res)
	}
}
