package tunnel

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/conn/bindtest"
	wgdevice "golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun/tuntest"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// channelDevice is an embedded wgDevice on a channel TUN and bind (no
// kernel interface or socket), serving UAPI under a unique name like a
// gateway's device, with its wgctrl client: Peers reads it the way the
// gateway does, through UAPI.
func channelDevice(t testing.TB, name string, tn *tuntest.ChannelTUN, bind conn.Bind, key wgtypes.Key) *wgDevice {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a UAPI socket in /var/run/wireguard")
	}
	d := &wgDevice{name: name, dev: wgdevice.NewDevice(tn.TUN(), bind, wgdevice.NewLogger(wgdevice.LogLevelSilent, ""))}
	t.Cleanup(func() { d.Close() })
	f, err := ipc.UAPIOpen(name)
	if err != nil {
		t.Fatal(err)
	}
	if d.uapi, err = ipc.UAPIListen(name, f); err != nil {
		t.Fatal(err)
	}
	d.serveUAPI()
	if d.client, err = wgctrl.New(); err != nil {
		t.Fatal(err)
	}
	if err := d.dev.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=0\n", hex.EncodeToString(key[:]))); err != nil {
		t.Fatal(err)
	}
	if err := d.dev.Up(); err != nil {
		t.Fatal(err)
	}
	return d
}

// addPeers gives d n peers with an IPv4 /32 and an IPv6 /128 each, as the
// reconciler configures them, and no endpoint.
func addPeers(t testing.TB, d *wgDevice, n int) {
	t.Helper()
	var cfgs []wgtypes.PeerConfig
	for i := range n {
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		a := addrs{v4: netip.AddrFrom4([4]byte{100, 64, byte((i + 10) >> 8), byte(i + 10)}),
			v6: netip.AddrFrom16([16]byte{0xfd, 0x66, 14: byte(i >> 8), 15: byte(i)})}
		cfgs = append(cfgs, wgtypes.PeerConfig{PublicKey: k.PublicKey(), ReplaceAllowedIPs: true, AllowedIPs: a.allowedIPs()})
	}
	if err := d.ConfigurePeers(cfgs); err != nil {
		t.Fatal(err)
	}
}

// TestStatsMatchPeers checks that the embedded device's Stats, which the
// reconciler's poll reads (sessions, live counters), reports for every
// peer what Peers reads through UAPI and wgctrl: the same keys, byte
// counters, last handshake and endpoint, on a pair of devices that
// completed a handshake and moved a packet, beside 200 peers that never
// did.
func TestStatsMatchPeers(t *testing.T) {
	k0, _ := wgtypes.GeneratePrivateKey()
	k1, _ := wgtypes.GeneratePrivateKey()
	binds := bindtest.NewChannelBinds()
	tn0, tn1 := tuntest.NewChannelTUN(), tuntest.NewChannelTUN()
	d0 := channelDevice(t, fmt.Sprintf("fst0-%d", os.Getpid()), tn0, binds[0], k0)
	d1 := channelDevice(t, fmt.Sprintf("fst1-%d", os.Getpid()), tn1, binds[1], k1)
	a0, a1 := netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.64.0.2")
	// bindtest sends to port 1 or 3 from bind 0 and to 2 or 4 from bind 1.
	for _, c := range []struct {
		d    *wgDevice
		peer wgtypes.Key
		addr netip.Addr
		port int
	}{{d0, k1.PublicKey(), a1, 1}, {d1, k0.PublicKey(), a0, 2}} {
		ep, err := netip.ParseAddrPort(fmt.Sprintf("127.0.0.1:%d", c.port))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.d.ConfigurePeers([]wgtypes.PeerConfig{{PublicKey: c.peer, Endpoint: net.UDPAddrFromAddrPort(ep), ReplaceAllowedIPs: true,
			AllowedIPs: addrs{v4: c.addr}.allowedIPs()}}); err != nil {
			t.Fatal(err)
		}
	}
	addPeers(t, d0, 200)
	tn0.Outbound <- tuntest.Ping(a1, a0)
	select {
	case got := <-tn1.Inbound:
		if !bytes.Equal(got, tuntest.Ping(a1, a0)) {
			t.Fatalf("the packet arrived changed: %x", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no packet through the pair")
	}

	want, err := d0.Peers()
	if err != nil {
		t.Fatal(err)
	}
	got, err := d0.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(want) != 201 {
		t.Fatalf("Stats: %d peers, Peers: %d, want 201", len(got), len(want))
	}
	byKey := map[wgtypes.Key]wgtypes.Peer{}
	for _, p := range got {
		byKey[p.PublicKey] = p
	}
	moved := 0
	for _, w := range want {
		g, ok := byKey[w.PublicKey]
		switch {
		case !ok:
			t.Errorf("peer %s: missing from Stats", w.PublicKey)
			continue
		case g.ReceiveBytes != w.ReceiveBytes || g.TransmitBytes != w.TransmitBytes:
			t.Errorf("peer %s: bytes rx %d tx %d, UAPI says rx %d tx %d", w.PublicKey, g.ReceiveBytes, g.TransmitBytes, w.ReceiveBytes, w.TransmitBytes)
		case !g.LastHandshakeTime.Equal(w.LastHandshakeTime):
			t.Errorf("peer %s: last handshake %v, UAPI says %v", w.PublicKey, g.LastHandshakeTime, w.LastHandshakeTime)
		case fmt.Sprint(g.Endpoint) != fmt.Sprint(w.Endpoint):
			t.Errorf("peer %s: endpoint %v, UAPI says %v", w.PublicKey, g.Endpoint, w.Endpoint)
		case len(g.AllowedIPs) != 0:
			t.Errorf("peer %s: Stats read allowed IPs %v", w.PublicKey, g.AllowedIPs)
		}
		if w.PublicKey == k1.PublicKey() {
			if w.ReceiveBytes == 0 || w.TransmitBytes == 0 || w.LastHandshakeTime.IsZero() || w.Endpoint == nil {
				t.Errorf("the pair's peer shows no handshake or traffic: %+v", w)
			}
			moved++
		}
	}
	if moved != 1 {
		t.Errorf("the pair's peer seen %d times", moved)
	}
}

// BenchmarkDevicePoll measures one poll of the embedded device's peers,
// what the reconciler does every PollInterval (2 s) for sessions and live
// counters, with 1,000 peers of two allowed IPs each: through UAPI and
// wgctrl (Peers: wireguard-go prints every peer's keys and allowed IPs,
// wgctrl parses them) and directly (Stats). Each iteration is 100 polls;
// cpu-us/poll-* is this process's CPU time per poll (both sides of UAPI
// run in it, as in ferryd), the figure the gateway's idle cost follows.
func BenchmarkDevicePoll(b *testing.B) {
	k, _ := wgtypes.GeneratePrivateKey()
	binds := bindtest.NewChannelBinds()
	d := channelDevice(b, fmt.Sprintf("fbp-%d", os.Getpid()), tuntest.NewChannelTUN(), binds[0], k)
	addPeers(b, d, 1000)
	const polls = 100
	for _, c := range []struct {
		name string
		read func() ([]wgtypes.Peer, error)
	}{{"uapi", d.Peers}, {"direct", d.Stats}} {
		var per []float64
		for range b.N {
			c0 := cpuTime(b)
			for range polls {
				peers, err := c.read()
				if err != nil {
					b.Fatal(err)
				}
				if len(peers) != 1000 {
					b.Fatalf("%d peers", len(peers))
				}
			}
			per = append(per, (cpuTime(b)-c0).Seconds()*1e6/polls)
		}
		b.ReportMetric(medianOf(per), "cpu-us/poll-"+c.name)
	}
}
