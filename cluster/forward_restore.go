package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// A restore sent to a follower travels to the leader on a connection of its
// own: a fwdRestore request frame, then the backup as chunk frames
//
//	chunk = 'd' data(1..restoreChunk) | 'e'     ('e' ends the backup)
//
// and one answer frame. The follower reads the answer while it sends, so a
// leader that refuses the backup early stops the upload. The leader checks
// the whole backup (its end marker and checksum) before Raft restores
// anything, so a stream cut short restores nothing. The backup is never
// held in memory whole, on either side.

// restoreChunk is the most backup bytes one chunk frame carries.
const restoreChunk = 1 << 20

const (
	chunkData byte = 'd'
	chunkEnd  byte = 'e'
)

// drainTimeout bounds how long the leader reads and discards the rest of an
// upload it refused, so that the follower reads the refusal rather than a
// connection reset.
const drainTimeout = 5 * time.Second

// chunkReader reads a backup out of chunk frames; it returns io.EOF after
// the end chunk and an error for a stream cut short.
type chunkReader struct {
	r   io.Reader
	buf []byte
	end bool // the end chunk was read
}

func (cr *chunkReader) Read(p []byte) (int, error) {
	for len(cr.buf) == 0 {
		if cr.end {
			return 0, io.EOF
		}
		f, err := readFrame(cr.r)
		if err != nil {
			return 0, noEOF(err)
		}
		switch {
		case f[0] == chunkEnd && len(f) == 1:
			cr.end = true
		case f[0] == chunkData && len(f) > 1:
			cr.buf = f[1:]
		default:
			return 0, errors.New("malformed restore chunk")
		}
	}
	n := copy(p, cr.buf)
	cr.buf = cr.buf[n:]
	return n, nil
}

// serveRestore answers a fwdRestore request: h reads the backup from the
// chunks that follow. The connection is closed afterwards.
func serveRestore(ctx context.Context, c net.Conn, br *bufio.Reader, req forwardRequest, h forwardHandler) {
	// A stalled upload, or the end of ctx, unblocks the reads.
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	cr := &chunkReader{r: br}
	req.stream = cr
	if _, err := h(ctx, req); err != nil {
		if werr := writeFrame(c, []byte{statusOf(err)}, []byte(err.Error())); werr != nil || cr.end {
			return
		}
		stop()
		c.SetReadDeadline(time.Now().Add(drainTimeout))
		io.Copy(io.Discard, cr)
		return
	}
	writeFrame(c, []byte{stOK})
}

// restoreVia streams a backup to the leader at addr and returns its answer.
// Errors wrapping errNotSent mean nothing was read from r.
func (n *Node) restoreVia(ctx context.Context, addr string, r io.Reader) error {
	c, err := n.fwd.d.dialProto(ctx, addr, protoForward)
	if err != nil {
		return fmt.Errorf("%w: dialing leader %s: %v", errNotSent, addr, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	wait := maxForwardWait
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, max(time.Until(dl), time.Millisecond))
	}
	hdr := binary.AppendUvarint([]byte{fwdRestore}, uint64(wait/time.Millisecond))
	if err := writeFrame(c, hdr, appendBytes(nil, proofFrom(ctx))); err != nil {
		return fmt.Errorf("%w: writing to leader %s: %v", errNotSent, addr, err)
	}

	answer := make(chan error, 1)
	go func() { answer <- readAnswer(c, addr) }()
	buf := make([]byte, 1+restoreChunk)
	buf[0] = chunkData
	for {
		select {
		case err := <-answer: // refused early
			return err
		default:
		}
		k, rerr := io.ReadFull(r, buf[1:])
		if k > 0 {
			if err := writeFrame(c, buf[:1+k]); err != nil {
				break // the leader hung up; its answer says why
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			writeFrame(c, []byte{chunkEnd})
			break
		}
		if rerr != nil {
			// Cut the stream short: the leader restores nothing.
			c.Close()
			<-answer
			return fmt.Errorf("reading the backup: %w", rerr)
		}
	}
	return <-answer
}

// readAnswer reads the answer frame of a forwarded request.
func readAnswer(c net.Conn, addr string) error {
	resp, err := readFrame(c)
	if err != nil {
		return fmt.Errorf("%w: reading from leader %s: %v", ErrOutcomeUnknown, addr, err)
	}
	if resp[0] != stOK {
		return errorOf(resp[0], string(resp[1:]))
	}
	return nil
}
