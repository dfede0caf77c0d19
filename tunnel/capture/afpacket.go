package capture

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// OpenInterface starts a capture on a network interface (the kernel
// WireGuard device, or any other) with an AF_PACKET socket: the filter
// runs in the kernel as classic BPF, so only matching packets reach this
// process, and only snaplen bytes of each are copied out. The socket is
// SOCK_DGRAM, so packets start at the IP header whatever the link type.
// now is the clock that stamps packets (default time.Now).
func OpenInterface(name string, f *Filter, snaplen int, now func() time.Time) (Source, error) {
	if now == nil {
		now = time.Now
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("capture: finding interface %s: %w", name, err)
	}
	// Protocol 0 receives nothing until bind, so no packet slips past
	// before the filter is attached.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("capture: opening packet socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	prog := make([]unix.SockFilter, len(f.raw))
	for i, r := range f.raw {
		prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: unsafe.SliceData(prog)}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return nil, fmt.Errorf("capture: attaching filter: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_LOCK_FILTER, 1); err != nil {
		return nil, fmt.Errorf("capture: locking filter: %w", err)
	}
	tv := unix.NsecToTimeval(int64(pollEvery))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("capture: setting receive timeout: %w", err)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("capture: binding to %s: %w", name, err)
	}
	s := &packetSource{queue: newQueue(), fd: fd, snaplen: snaplen, now: now, stop: make(chan struct{})}
	s.wg.Add(1)
	go s.run()
	ok = true
	return s, nil
}

// pollEvery is how often the reader looks up from an idle socket to see
// whether it was closed.
const pollEvery = 100 * time.Millisecond

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetSource is a capture on an AF_PACKET socket.
type packetSource struct {
	*queue
	fd      int
	snaplen int
	now     func() time.Time
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup // the reader
}

func (s *packetSource) run() {
	defer s.wg.Done()
	buf := make([]byte, s.snaplen)
	for {
		select {
		case <-s.stop:
			s.finish(nil)
			return
		default:
		}
		// MSG_TRUNC: n is the packet's full length even when only
		// snaplen bytes were copied.
		n, _, err := unix.Recvfrom(s.fd, buf, unix.MSG_TRUNC)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			s.finish(fmt.Errorf("capture: reading packet socket: %w", err))
			return
		}
		s.offer(Packet{Time: s.now(), Len: n, Data: snap(buf[:min(n, len(buf))], s.snaplen)})
	}
}

// Close implements Source.
func (s *packetSource) Close() error {
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
		unix.Close(s.fd)
	})
	return nil
}
