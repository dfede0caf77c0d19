package tunneltest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// WGClient is an embedded WireGuard client: wireguard-go in the agent,
// configured through wgctrl like the server.
type WGClient struct {
	Interface  string   `json:"interface"`
	PrivateKey string   `json:"private_key"`
	Address    string   `json:"address"` // client address, e.g. 100.64.0.9
	ServerKey  string   `json:"server_key"`
	Endpoint   string   `json:"endpoint"`
	AllowedIPs []string `json:"allowed_ips"`
}

type client struct {
	mu    sync.Mutex // guards conns, next and wg
	conns map[int]net.Conn
	next  int
	dev   *device.Device
	uapi  net.Listener
}

func (c *client) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cn := range c.conns {
		cn.Close()
	}
	if c.uapi != nil {
		c.uapi.Close()
	}
	if c.dev != nil {
		c.dev.Close()
	}
}

func (c *client) handle(ctx context.Context, req Request) (Response, bool, error) {
	timeout := req.Timeout
	if timeout == 0 {
		timeout = time.Second
	}
	switch req.Op {
	case "probe":
		return Response{}, true, probe(req.Proto, req.Src, req.Addr, timeout)
	case "ping":
		return Response{}, true, ping(req.Src, req.Addr, timeout)
	case "transfer":
		start := time.Now()
		err := transfer(req.Addr, req.Bytes, 30*time.Second)
		return Response{Elapsed: time.Since(start)}, true, err
	case "hold":
		cn, err := dialEcho(req.Src, req.Addr, timeout)
		if err != nil {
			return Response{}, true, err
		}
		c.mu.Lock()
		c.next++
		id := c.next
		c.conns[id] = cn
		c.mu.Unlock()
		return Response{Conn: id}, true, nil
	case "watchcut":
		c.mu.Lock()
		cn := c.conns[req.Conn]
		c.mu.Unlock()
		if cn == nil {
			return Response{}, true, errors.New("no such connection")
		}
		return watchCut(ctx, cn, timeout)
	case "wgup":
		return Response{}, true, c.wgUp(req.WG)
	case "resolve":
		resp, err := resolve(req, timeout)
		return resp, true, err
	case "echo":
		c.mu.Lock()
		cn := c.conns[req.Conn]
		c.mu.Unlock()
		return Response{}, true, echoHeld(cn, timeout)
	}
	return Response{}, false, nil
}

func dialEcho(src, addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d.Dial("tcp", addr)
}

// echo sends one line on cn and waits for it to come back.
func echo(cn net.Conn, timeout time.Duration) error {
	cn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(cn, "ping\n"); err != nil {
		return err
	}
	buf := make([]byte, 5)
	_, err := io.ReadFull(cn, buf)
	return err
}

func probe(proto, src, addr string, timeout time.Duration) error {
	switch proto {
	case "tcp", "":
		cn, err := dialEcho(src, addr, timeout)
		if err != nil {
			return err
		}
		defer cn.Close()
		return echo(cn, timeout)
	case "udp":
		var laddr *net.UDPAddr
		if src != "" {
			laddr = &net.UDPAddr{IP: net.ParseIP(src)}
		}
		raddr, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		cn, err := net.DialUDP("udp", laddr, raddr)
		if err != nil {
			return err
		}
		defer cn.Close()
		cn.SetDeadline(time.Now().Add(timeout))
		if _, err := cn.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 64)
		_, err = cn.Read(buf)
		return err
	}
	return fmt.Errorf("unknown protocol %q", proto)
}

// ping sends one ICMP (or, to an IPv6 address, ICMPv6) echo request and
// waits for the reply.
func ping(src, addr string, timeout time.Duration) error {
	network, proto := "ip4:icmp", 1
	var echoType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if ip := net.ParseIP(addr); ip != nil && ip.To4() == nil {
		network, proto = "ip6:ipv6-icmp", 58
		echoType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	if src == "" {
		src = "0.0.0.0"
		if proto == 58 {
			src = "::"
		}
	}
	pc, err := icmp.ListenPacket(network, src)
	if err != nil {
		return err
	}
	defer pc.Close()
	id := os.Getpid() & 0xffff
	msg := icmp.Message{Type: echoType, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("ferry")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	dst := &net.IPAddr{IP: net.ParseIP(addr)}
	if _, err := pc.WriteTo(b, dst); err != nil {
		return err
	}
	pc.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 1500)
	for {
		n, peer, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || peer.String() != addr {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && m.Type == replyType && e.ID == id {
			return nil
		}
	}
}

// transfer sends n bytes to a sink service and waits for it to close.
func transfer(addr string, n int, timeout time.Duration) error {
	cn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer cn.Close()
	cn.SetDeadline(time.Now().Add(timeout))
	buf := make([]byte, 32<<10)
	for left := n; left > 0; {
		k := min(left, len(buf))
		if _, err := cn.Write(buf[:k]); err != nil {
			return err
		}
		left -= k
	}
	cn.(*net.TCPConn).CloseWrite()
	_, err = io.Copy(io.Discard, cn)
	return err
}

// watchCut echoes on cn every 20ms until an echo fails, and reports the
// last success and when the first failing echo was sent.
func watchCut(ctx context.Context, cn net.Conn, timeout time.Duration) (Response, bool, error) {
	var resp Response
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		sent := time.Now()
		if err := echo(cn, 300*time.Millisecond); err != nil {
			resp.FirstFail = sent
			return resp, true, nil
		}
		resp.LastOK = time.Now()
		time.Sleep(20 * time.Millisecond)
	}
	return resp, true, errors.New("connection still works")
}

// startEcho runs one service described as "tcp:HOST:PORT", "udp:..." or
// "sink:...".
func startEcho(ctx context.Context, wg *sync.WaitGroup, spec string) error {
	kind, addr, _ := strings.Cut(spec, ":")
	switch kind {
	case "tcp", "sink":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		context.AfterFunc(ctx, func() { ln.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer cn.Close()
					if kind == "sink" {
						io.Copy(io.Discard, cn)
						return
					}
					r := bufio.NewReader(cn)
					for {
						line, err := r.ReadString('\n')
						if err != nil {
							return
						}
						if _, err := io.WriteString(cn, line); err != nil {
							return
						}
					}
				}()
			}
		}()
	case "udp":
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		context.AfterFunc(ctx, func() { pc.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], from)
			}
		}()
	default:
		return fmt.Errorf("unknown service %q", spec)
	}
	return nil
}

// wgUp starts the embedded client device and routes its allowed IPs.
func (c *client) wgUp(w *WGClient) error {
	if w == nil {
		return errors.New("wgup: missing wg")
	}
	td, err := tun.CreateTUN(w.Interface, 1420)
	if err != nil {
		return err
	}
	dev := device.NewDevice(td, conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
	f, err := ipc.UAPIOpen(w.Interface)
	if err != nil {
		dev.Close()
		return err
	}
	ln, err := ipc.UAPIListen(w.Interface, f)
	if err != nil {
		dev.Close()
		return err
	}
	go func() {
		for {
			cn, err := ln.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(cn)
		}
	}()
	c.mu.Lock()
	c.dev, c.uapi = dev, ln
	c.mu.Unlock()
	priv, err := wgtypes.ParseKey(w.PrivateKey)
	if err != nil {
		return err
	}
	srv, err := wgtypes.ParseKey(w.ServerKey)
	if err != nil {
		return err
	}
	ep, err := net.ResolveUDPAddr("udp", w.Endpoint)
	if err != nil {
		return err
	}
	var allowed []net.IPNet
	for _, a := range w.AllowedIPs {
		p := netip.MustParsePrefix(a)
		allowed = append(allowed, net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)})
	}
	keep := 25 * time.Second
	wc, err := wgctrl.New()
	if err != nil {
		return err
	}
	defer wc.Close()
	if err := wc.ConfigureDevice(w.Interface, wgtypes.Config{PrivateKey: &priv, ReplacePeers: true, Peers: []wgtypes.PeerConfig{{
		PublicKey: srv, Endpoint: ep, AllowedIPs: allowed, PersistentKeepaliveInterval: &keep}}}); err != nil {
		return err
	}
	cmds := [][]string{{"addr", "add", w.Address + "/32", "dev", w.Interface}, {"link", "set", w.Interface, "up"}}
	for _, a := range w.AllowedIPs {
		cmds = append(cmds, []string{"route", "add", a, "dev", w.Interface})
	}
	for _, args := range cmds {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}
