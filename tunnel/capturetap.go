package tunnel

import "github.com/ferryvpn/ferry/tunnel/capture"

// Capture starts a capture of this node's decrypted tunnel traffic that f
// matches, keeping snaplen bytes of each packet: on the embedded device's
// TUN tap, or with an AF_PACKET socket and f in the kernel on the kernel
// WireGuard interface. The caller closes the source.
func (g *Gateway) Capture(f *capture.Filter, snaplen int) (capture.Source, error) {
	if g.dev.kernel {
		return capture.OpenInterface(g.cfg.Interface, f, snaplen, g.cfg.Now)
	}
	return g.dev.tap.Open(f, snaplen), nil
}

// Interface returns the name of the node's WireGuard interface.
func (g *Gateway) Interface() string { return g.cfg.Interface }
