package capture

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// A node's capture travels to the node that merges it as a stream of
// records:
//
//	record = kind(1) body
//	'H' header:    n(uvarint) interface-name(n)   first, optional
//	'P' packet:    time(varint ns) len(uvarint) n(uvarint) data(n)
//	'M' watermark: time(varint ns)   every packet up to it was sent
//	'E' end:       packets bytes dropped (uvarint) reason-len(uvarint) reason
//
// Watermarks let the merger write packets in time order while the capture
// runs, not only at its end.

const (
	recHeader = 'H'
	recPacket = 'P'
	recMark   = 'M'
	recEnd    = 'E'
)

// markEvery is how often a node sends a watermark, and markSlack how far
// behind the clock it stays.
const (
	markEvery = 200 * time.Millisecond
	markSlack = 100 * time.Millisecond
)

// Limits bound one capture.
type Limits struct {
	// Duration ends the capture; required.
	Duration time.Duration
	// MaxBytes ends the capture once this much packet data (as kept, after
	// the snap length) was captured; required.
	MaxBytes int64
	// Snaplen is how many bytes of each packet are kept; required.
	Snaplen int
}

// Validate checks the limits.
func (l Limits) Validate() error {
	switch {
	case l.Duration <= 0:
		return fmt.Errorf("%w: duration must be positive", ErrLimits)
	case l.MaxBytes <= 0:
		return fmt.Errorf("%w: max bytes must be positive", ErrLimits)
	case l.Snaplen <= 0 || l.Snaplen > 65535:
		return fmt.Errorf("%w: snap length must be 1-65535", ErrLimits)
	}
	return nil
}

// ErrLimits is returned when a capture's limits are missing or out of range.
var ErrLimits = errors.New("capture: invalid limits")

// Stop reasons.
const (
	StopDuration  = "duration"
	StopBytes     = "max_bytes"
	StopCancelled = "cancelled"
	StopFailed    = "failed"
)

// Stats count what one node (or a merged capture) captured.
type Stats struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Dropped uint64 `json:"dropped"`
	// Stopped says why the capture ended (StopDuration, ...).
	Stopped string `json:"stopped"`
}

// Stream runs a capture from src until ctx ends, lim.Duration passes or
// lim.MaxBytes were captured, writing its records to w, and closes src.
// iface, when set, names the interface captured on. The returned stats
// are also the stream's end record.
func Stream(ctx context.Context, src Source, iface string, lim Limits, w io.Writer) (Stats, error) {
	defer src.Close()
	bw := bufio.NewWriter(w)
	if iface != "" {
		bw.Write(binary.AppendUvarint([]byte{recHeader}, uint64(len(iface))))
		bw.WriteString(iface)
	}
	var st Stats
	timer := time.NewTimer(lim.Duration)
	defer timer.Stop()
	tick := time.NewTicker(markEvery)
	defer tick.Stop()
	var lastMark time.Time
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			st.Stopped = StopCancelled
			break loop
		case <-timer.C:
			st.Stopped = StopDuration
			break loop
		case now := <-tick.C:
			// A packet stamped a moment ago may still be on its way
			// from the data path's goroutines: promise only up to
			// markSlack before now.
			mark := now.Add(-markSlack)
			if mark.Before(lastMark) {
				mark = lastMark
			}
			lastMark = mark
			if err = writeMark(bw, mark); err == nil {
				err = bw.Flush()
			}
			if err != nil {
				st.Stopped = StopCancelled // the reader is gone
				break loop
			}
		case p, ok := <-src.Packets():
			if !ok {
				st.Stopped, err = StopFailed, src.Err()
				break loop
			}
			if int64(st.Bytes)+int64(len(p.Data)) > lim.MaxBytes {
				st.Stopped = StopBytes
				break loop
			}
			st.Packets++
			st.Bytes += uint64(len(p.Data))
			if err = writePacket(bw, p); err != nil {
				st.Stopped = StopCancelled
				break loop
			}
		}
	}
	src.Close()
	st.Dropped = src.Dropped()
	if werr := writeEnd(bw, st); werr == nil {
		bw.Flush()
	}
	return st, err
}

func writePacket(w *bufio.Writer, p Packet) error {
	b := []byte{recPacket}
	b = binary.AppendVarint(b, p.Time.UnixNano())
	b = binary.AppendUvarint(b, uint64(p.Len))
	b = binary.AppendUvarint(b, uint64(len(p.Data)))
	w.Write(b)
	_, err := w.Write(p.Data)
	return err
}

func writeMark(w *bufio.Writer, t time.Time) error {
	_, err := w.Write(binary.AppendVarint([]byte{recMark}, t.UnixNano()))
	return err
}

func writeEnd(w *bufio.Writer, st Stats) error {
	b := []byte{recEnd}
	b = binary.AppendUvarint(b, st.Packets)
	b = binary.AppendUvarint(b, st.Bytes)
	b = binary.AppendUvarint(b, st.Dropped)
	b = binary.AppendUvarint(b, uint64(len(st.Stopped)))
	_, err := w.Write(append(b, st.Stopped...))
	return err
}

// ErrStream is returned when a node's capture stream is malformed.
var ErrStream = errors.New("capture: malformed stream")

// record is one decoded stream record.
type record struct {
	kind  byte
	iface string
	pkt   Packet
	mark  time.Time
	end   Stats
}

// readRecord reads one record; io.EOF only before a record starts.
func readRecord(r *bufio.Reader) (record, error) {
	k, err := r.ReadByte()
	if err != nil {
		return record{}, err
	}
	fail := func(err error) (record, error) {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return record{}, fmt.Errorf("%w: %v", ErrStream, err)
	}
	switch k {
	case recHeader:
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return fail(err)
		}
		if n > 64 {
			return fail(errors.New("interface name too long"))
		}
		name := make([]byte, n)
		if _, err := io.ReadFull(r, name); err != nil {
			return fail(err)
		}
		return record{kind: k, iface: string(name)}, nil
	case recPacket:
		ns, err := binary.ReadVarint(r)
		if err != nil {
			return fail(err)
		}
		l, err := binary.ReadUvarint(r)
		if err != nil {
			return fail(err)
		}
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return fail(err)
		}
		if n > 65535 || l < n || l > 1<<20 {
			return fail(errors.New("packet length out of range"))
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return fail(err)
		}
		return record{kind: k, pkt: Packet{Time: time.Unix(0, ns), Len: int(l), Data: data}}, nil
	case recMark:
		ns, err := binary.ReadVarint(r)
		if err != nil {
			return fail(err)
		}
		return record{kind: k, mark: time.Unix(0, ns)}, nil
	case recEnd:
		var v [4]uint64
		for i := range v {
			if v[i], err = binary.ReadUvarint(r); err != nil {
				return fail(err)
			}
		}
		if v[3] > 64 {
			return fail(errors.New("reason too long"))
		}
		reason := make([]byte, v[3])
		if _, err := io.ReadFull(r, reason); err != nil {
			return fail(err)
		}
		return record{kind: k, end: Stats{Packets: v[0], Bytes: v[1], Dropped: v[2], Stopped: string(reason)}}, nil
	}
	return fail(fmt.Errorf("unknown record kind %d", k))
}
