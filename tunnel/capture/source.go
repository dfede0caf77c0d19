package capture

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Packet is one captured packet: an IP packet as the tunnel carries it,
// decrypted.
type Packet struct {
	// Time is when this node saw it.
	Time time.Time
	// Len is the packet's length on the wire; Data holds at most the snap
	// length of it.
	Len  int
	Data []byte
	// Iface is the index of the node's interface in a merged capture; set
	// by Merge, zero from a Source.
	Iface int
}

// Source delivers the packets one capture matched on one node. Packets
// is closed after Close, or when the source fails (Err says why).
type Source interface {
	Packets() <-chan Packet
	// Dropped counts matched packets the capture could not keep up with.
	Dropped() uint64
	// Err reports why Packets was closed early, nil after Close.
	Err() error
	// Close stops the capture; it is idempotent and waits.
	Close() error
}

// ErrClosed is returned when a tap or source is used after Close.
var ErrClosed = errors.New("capture: closed")

// queueLen is how many matched packets a source holds for its reader
// before it drops (and counts) more.
const queueLen = 4096

// queue is the buffered channel shared by both kinds of source.
type queue struct {
	ch      chan Packet
	dropped atomic.Uint64
	once    sync.Once
	mu      sync.Mutex // guards err
	err     error
}

func newQueue() *queue { return &queue{ch: make(chan Packet, queueLen)} }

func (q *queue) Packets() <-chan Packet { return q.ch }
func (q *queue) Dropped() uint64        { return q.dropped.Load() }

func (q *queue) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// offer hands p to the reader without ever blocking the data path.
func (q *queue) offer(p Packet) {
	select {
	case q.ch <- p:
	default:
		q.dropped.Add(1)
	}
}

// finish closes the channel once, recording err.
func (q *queue) finish(err error) {
	q.once.Do(func() {
		q.mu.Lock()
		q.err = err
		q.mu.Unlock()
		close(q.ch)
	})
}

// snap copies at most snaplen bytes of pkt.
func snap(pkt []byte, snaplen int) []byte {
	if len(pkt) > snaplen {
		pkt = pkt[:snaplen]
	}
	return append([]byte(nil), pkt...)
}
