package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferryvpn/ferry/tunnel/capture"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	wgdevice "golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/profiles"
)

// device is the WireGuard device as the reconciler sees it. Its methods
// are called from the reconciler's goroutine only.
type device interface {
	// Peers returns every configured peer with its statistics.
	Peers() ([]wgtypes.Peer, error)
	// Stats returns every configured peer's public key, last handshake,
	// byte counters and endpoint, without its allowed IPs and other
	// settings: what the periodic poll needs, cheaper to read. The slice
	// may be reused by the next call.
	Stats() ([]wgtypes.Peer, error)
	// ConfigurePeers applies peer additions, updates and removals.
	ConfigurePeers(peers []wgtypes.PeerConfig) error
}

// wgDevice is a WireGuard interface driven through wgctrl: a kernel
// interface, or wireguard-go running in this process on a TUN device and
// serving its UAPI socket, which wgctrl finds like any other.
type wgDevice struct {
	name   string
	client *wgctrl.Client
	kernel bool

	// Embedded device only.
	tap   *capture.Tap // on the TUN path; idle (one atomic load) unless a capture runs
	dev   *wgdevice.Device
	uapi  net.Listener
	wg    sync.WaitGroup       // the UAPI accept loop and its handlers
	stats []wgdevice.PeerStats // Stats' buffer, reused
	peers []wgtypes.Peer       // Stats' answer, reused

	closeOnce sync.Once
	closeErr  error
}

var _ device = (*wgDevice)(nil)

// openDevice creates the interface, configures its key, port and address,
// and brings it up.
func openDevice(cfg *Config, log *slog.Logger) (*wgDevice, error) {
	d := &wgDevice{name: cfg.Interface, tap: capture.NewTap(cfg.Now)}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	if !cfg.Userspace {
		err := addWireGuardLink(cfg.Interface)
		if err != nil && errors.Is(err, unix.EEXIST) {
			// A stale interface of ours from an unclean stop.
			if derr := deleteLink(cfg.Interface); derr == nil {
				err = addWireGuardLink(cfg.Interface)
			}
		}
		if err == nil {
			d.kernel = true
		} else {
			log.Info("kernel wireguard unavailable; running wireguard-go in process", "err", err)
		}
	}
	if !d.kernel {
		if err := d.startEmbedded(cfg, log); err != nil {
			return nil, err
		}
	}
	addrs := []netip.Prefix{cfg.Address}
	if cfg.Pool6.IsValid() {
		addrs = append(addrs, netip.PrefixFrom(profiles.Address6(cfg.Pool6, cfg.Address.Addr()), cfg.Pool6.Bits()))
	}
	if err := configureLink(cfg.Interface, cfg.MTU, addrs...); err != nil {
		return nil, err
	}
	var err error
	if d.client, err = wgctrl.New(); err != nil {
		return nil, fmt.Errorf("opening wgctrl: %w", err)
	}
	key, port := cfg.PrivateKey, cfg.ListenPort
	if err := d.client.ConfigureDevice(d.name, wgtypes.Config{PrivateKey: &key, ListenPort: &port, ReplacePeers: true}); err != nil {
		if portInUse(err) {
			return nil, &PortInUseError{Port: port, Err: err}
		}
		return nil, fmt.Errorf("configuring %s: %w", d.name, err)
	}
	ok = true
	return d, nil
}

func (d *wgDevice) startEmbedded(cfg *Config, log *slog.Logger) error {
	td, err := tun.CreateTUN(cfg.Interface, cfg.MTU)
	if err != nil {
		return fmt.Errorf("creating TUN device %s: %w", cfg.Interface, err)
	}
	wlog := log.With("component", "wireguard-go")
	logger := &wgdevice.Logger{
		Verbosef: func(format string, args ...any) {
			if wlog.Enabled(context.Background(), slog.LevelDebug) {
				wlog.Debug(fmt.Sprintf(format, args...))
			}
		},
		Errorf: func(format string, args ...any) { wlog.Warn(fmt.Sprintf(format, args...)) },
	}
	d.dev = wgdevice.NewDeviceWithPoolLimit(d.tap.Wrap(td), conn.NewDefaultBind(), logger, uint32(cfg.PacketBuffers))
	// Up now, not when wireguard-go reads the link's up event: setting the
	// listen port binds it only on a device that is up, so a port in use
	// fails the configuration below. Left to the event, the bind came
	// after the configuration, failed only in the log, and left a gateway
	// that said it was ready with its device down.
	if err := d.dev.Up(); err != nil {
		return fmt.Errorf("bringing up %s: %w", cfg.Interface, err)
	}
	f, err := ipc.UAPIOpen(cfg.Interface)
	if err != nil {
		return fmt.Errorf("opening UAPI socket for %s: %w", cfg.Interface, err)
	}
	if d.uapi, err = ipc.UAPIListen(cfg.Interface, f); err != nil {
		return fmt.Errorf("listening on UAPI socket for %s: %w", cfg.Interface, err)
	}
	d.serveUAPI()
	return nil
}

// serveUAPI answers wgctrl (ferry's own client, wg show) on d.uapi for
// d.dev until the listener is closed.
func (d *wgDevice) serveUAPI() {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			c, err := d.uapi.Accept()
			if err != nil {
				return
			}
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				d.dev.IpcHandle(c)
			}()
		}
	}()
}

// PortInUseError is returned by New when the WireGuard listen port is
// already bound in the gateway's network namespace: by another WireGuard
// device (kernel or userspace) or by any UDP socket.
type PortInUseError struct {
	Port int   // the UDP port asked for
	Err  error // the device's answer
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("tunnel: listen port %d/udp is in use by another WireGuard device or UDP socket in this network namespace (choose another port or stop its user): %v", e.Port, e.Err)
}

func (e *PortInUseError) Unwrap() error { return e.Err }

// portInUse reports whether err is the device refusing its listen port.
// The kernel answers EADDRINUSE over netlink; wireguard-go answers over
// its UAPI socket, which wgctrl passes on only as the text
// "wguser: errno=-98".
func portInUse(err error) bool {
	return errors.Is(err, unix.EADDRINUSE) || strings.Contains(err.Error(), fmt.Sprintf("errno=%d", -int(unix.EADDRINUSE)))
}

// Peers implements device.
func (d *wgDevice) Peers() ([]wgtypes.Peer, error) {
	dev, err := d.client.Device(d.name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", d.name, err)
	}
	return dev.Peers, nil
}

// Stats implements device. The embedded device's counters are read from
// wireguard-go directly (AppendPeerStats): through UAPI, each poll had
// wireguard-go print every peer's keys and allowed IPs as text and wgctrl
// parse them back, which for 1,000 peers every two seconds was a few per
// cent of a gateway's CPU at 100 Mbit/s (docs/ipv6.md). A kernel device
// answers over netlink, as for Peers.
func (d *wgDevice) Stats() ([]wgtypes.Peer, error) {
	if d.dev == nil {
		return d.Peers()
	}
	d.stats = d.dev.AppendPeerStats(d.stats[:0])
	peers := slices.Grow(d.peers[:0], len(d.stats))[:len(d.stats)]
	d.peers = peers
	for i, s := range d.stats {
		p := &peers[i]
		*p = wgtypes.Peer{}
		p.PublicKey = wgtypes.Key(s.PublicKey)
		p.ReceiveBytes, p.TransmitBytes = int64(s.RxBytes), int64(s.TxBytes)
		if s.LastHandshakeNano > 0 {
			p.LastHandshakeTime = time.Unix(0, s.LastHandshakeNano)
		}
		if s.Endpoint != "" {
			ap, err := netip.ParseAddrPort(s.Endpoint)
			if err != nil {
				return nil, fmt.Errorf("reading %s: peer %s endpoint %q: %w", d.name, p.PublicKey, s.Endpoint, err)
			}
			p.Endpoint = net.UDPAddrFromAddrPort(ap)
		}
	}
	return peers, nil
}

// ConfigurePeers implements device.
func (d *wgDevice) ConfigurePeers(peers []wgtypes.PeerConfig) error {
	if len(peers) == 0 {
		return nil
	}
	if err := d.client.ConfigureDevice(d.name, wgtypes.Config{Peers: peers}); err != nil {
		return fmt.Errorf("configuring peers of %s: %w", d.name, err)
	}
	return nil
}

// Close removes the interface; it is idempotent.
func (d *wgDevice) Close() error {
	d.closeOnce.Do(func() {
		if d.client != nil {
			d.client.Close()
		}
		if d.uapi != nil {
			d.uapi.Close()
		}
		if d.dev != nil {
			d.dev.Close() // closes the TUN device, which removes the interface
		}
		d.wg.Wait()
		if d.kernel {
			d.closeErr = deleteLink(d.name)
		}
	})
	return d.closeErr
}
