package capture

import (
	"net/netip"
	"os"
	"testing"

	"golang.zx2c4.com/wireguard/tun"
)

// nullTUN is a TUN device that takes every packet and does nothing.
type nullTUN struct{}

func (nullTUN) File() *os.File                          { return nil }
func (nullTUN) Read([][]byte, []int, int) (int, error)  { return 0, nil }
func (nullTUN) Write(bufs [][]byte, _ int) (int, error) { return len(bufs), nil }
func (nullTUN) MTU() (int, error)                       { return 1420, nil }
func (nullTUN) Name() (string, error)                   { return "null", nil }
func (nullTUN) Events() <-chan tun.Event                { return nil }
func (nullTUN) Close() error                            { return nil }
func (nullTUN) BatchSize() int                          { return 128 }

// BenchmarkTap measures what the tap adds to a batch of 128 decrypted
// packets written to the TUN device: nothing to do (no capture), a
// capture of another client (the filter runs and rejects), a headers-only
// capture of the same client (filter, copy, queue; a reader drains it).
func BenchmarkTap(b *testing.B) {
	pkt := append(pkt4("10.99.0.2", "10.1.0.5", 6, 40000, 443, 0), make([]byte, 1380)...)
	bufs := make([][]byte, 128)
	for i := range bufs {
		bufs[i] = pkt
	}
	for _, bc := range []struct {
		name   string
		client string
	}{{"direct", ""}, {"idle", ""}, {"other-user", "10.99.0.3"}, {"same-user", "10.99.0.2"}} {
		b.Run(bc.name, func(b *testing.B) {
			var dev tun.Device = nullTUN{}
			t := NewTap(nil)
			if bc.name != "direct" {
				dev = t.Wrap(dev)
			}
			if bc.client != "" {
				f, err := CompileFilter("tcp", []netip.Addr{netip.MustParseAddr(bc.client)})
				if err != nil {
					b.Fatal(err)
				}
				src := t.Open(f, 96)
				go func() {
					for range src.Packets() {
					}
				}()
				defer src.Close()
			}
			b.ResetTimer()
			for range b.N {
				dev.Write(bufs, 0)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/128, "ns/packet")
		})
	}
}
