package capture

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"
)

// Tap observes the decrypted side of the embedded wireguard-go device: it
// wraps the TUN device that wireguard-go reads plaintext packets from (on
// their way into the tunnel, to clients) and writes decrypted packets to
// (from clients). While no capture runs it costs one atomic pointer load
// per batch of packets. A running capture first compares each packet's
// addresses with its clients' (a packet of another client stops there:
// no BPF, no clock, no copy), then runs its BPF program and copies the
// matches into a bounded queue, dropping (and counting) rather than ever
// blocking the data path.
type Tap struct {
	now func() time.Time

	// subs is the immutable list of running captures, swapped whole;
	// nil while none runs.
	subs atomic.Pointer[[]*tapSource]
	mu   sync.Mutex // serializes changes to subs
}

// NewTap returns a tap; now is its clock (default time.Now).
func NewTap(now func() time.Time) *Tap {
	if now == nil {
		now = time.Now
	}
	return &Tap{now: now}
}

// Wrap returns dev with the tap on its packet path.
func (t *Tap) Wrap(dev tun.Device) tun.Device { return &tapDevice{Device: dev, t: t} }

// Active reports whether a capture is running on the tap.
func (t *Tap) Active() bool { return t.subs.Load() != nil }

// Open starts a capture of the packets f matches, keeping snaplen bytes of
// each.
func (t *Tap) Open(f *Filter, snaplen int) Source {
	s := &tapSource{queue: newQueue(), t: t, f: f, snaplen: snaplen}
	t.mu.Lock()
	defer t.mu.Unlock()
	var next []*tapSource
	if cur := t.subs.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, s)
	t.subs.Store(&next)
	return s
}

func (t *Tap) remove(s *tapSource) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.subs.Load()
	if cur == nil {
		return
	}
	next := slices.DeleteFunc(slices.Clone(*cur), func(x *tapSource) bool { return x == s })
	if len(next) == 0 {
		t.subs.Store(nil)
		return
	}
	t.subs.Store(&next)
}

// observe runs every capture on one packet. now is the batch's time,
// read from the clock at the batch's first match only: a packet no capture
// wants costs the filter's address check and nothing else.
func (t *Tap) observe(subs []*tapSource, pkt []byte, now *time.Time) {
	for _, s := range subs {
		if s.f.Match(pkt) {
			if now.IsZero() {
				*now = t.now()
			}
			s.offer(Packet{Time: *now, Len: len(pkt), Data: snap(pkt, s.snaplen)})
		}
	}
}

// tapSource is one capture on the tap.
type tapSource struct {
	*queue
	t       *Tap
	f       *Filter
	snaplen int
	// closing is held for reading while the data path offers packets, so
	// Close never closes the channel under a sender.
	closing sync.RWMutex
	closed  bool
}

func (s *tapSource) offer(p Packet) {
	s.closing.RLock()
	if !s.closed {
		s.queue.offer(p)
	}
	s.closing.RUnlock()
}

// Close implements Source.
func (s *tapSource) Close() error {
	s.t.remove(s)
	s.closing.Lock()
	s.closed = true
	s.closing.Unlock()
	s.finish(nil)
	return nil
}

// tapDevice is the wrapped TUN device.
type tapDevice struct {
	tun.Device
	t *Tap
}

// Read implements tun.Device: packets from this host into the tunnel.
func (d *tapDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := d.Device.Read(bufs, sizes, offset)
	if subs := d.t.subs.Load(); subs != nil && n > 0 {
		var now time.Time
		for i := range n {
			d.t.observe(*subs, bufs[i][offset:offset+sizes[i]], &now)
		}
	}
	return n, err
}

// Write implements tun.Device: decrypted packets from clients.
func (d *tapDevice) Write(bufs [][]byte, offset int) (int, error) {
	if subs := d.t.subs.Load(); subs != nil {
		var now time.Time
		for _, b := range bufs {
			d.t.observe(*subs, b[offset:], &now)
		}
	}
	return d.Device.Write(bufs, offset)
}
