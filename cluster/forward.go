package cluster

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Forwarding: a follower sends writes, read-index requests and membership
// changes to the leader over a protoForward connection. Each frame is
//
//	frame    = len(4, big-endian) body
//	request  = kind(1) deadline-ms(uvarint) payload
//	response = status(1) payload     (status 0: ok; else an error code, payload the message)
//
// One request is in flight per connection; the client keeps a small pool.

const (
	fwdApply     byte = 1
	fwdReadIndex byte = 2
	fwdAddVoter  byte = 3
	fwdRemove    byte = 4
	// fwdRestore is followed by the backup as a stream of chunk frames
	// (see forward_restore.go); the connection is not reused.
	fwdRestore byte = 5
	// fwdLeave comes from a node asking to be removed (Leave); the leader
	// takes it and checks the asker's certificate names the node; other
	// members answer with the leader's address (stRedirect).
	fwdLeave byte = 6
	// 7 was a member's checked leave, which the leader could not verify.
	// fwdAddNonvoter adds a node that does not vote yet.
	fwdAddNonvoter byte = 8
	// fwdPromote comes from a non-voter that has caught up and asks, with
	// its own certificate, to become a voter.
	fwdPromote byte = 9
	// fwdRenew asks for a renewed node certificate (see Config.Renew).
	fwdRenew byte = 10
)

// adminKinds change the cluster's shape: forwarded, they carry a proof
// (WithProof) that the leader checks with Config.Authorize.
var adminKinds = map[byte]bool{fwdAddVoter: true, fwdAddNonvoter: true, fwdRemove: true, fwdRestore: true}

// Response status codes; they carry the sentinel errors across the wire.
const (
	stOK byte = iota
	stNotLeader
	stNoQuorum
	stInvalid
	stUnknownOutcome
	stOther
	stNotMember
	stWouldLoseQuorum
	stForbidden
	stRefused
	stRedirect
)

// maxFrame bounds one forwarded frame: a full batch of maximal records.
const maxFrame = 64 << 20

// maxForwardWait bounds the deadline a request may carry: a restore of a
// large backup, streamed, is the longest.
const maxForwardWait = time.Hour

func statusOf(err error) byte {
	var re *redirectError
	if errors.As(err, &re) {
		return stRedirect
	}
	switch {
	case errors.Is(err, ErrNotLeader):
		return stNotLeader
	case errors.Is(err, ErrInvalid):
		return stInvalid
	case errors.Is(err, ErrOutcomeUnknown):
		return stUnknownOutcome
	case errors.Is(err, ErrNoQuorum):
		return stNoQuorum
	case errors.Is(err, ErrNotMember):
		return stNotMember
	case errors.Is(err, ErrWouldLoseQuorum):
		return stWouldLoseQuorum
	case errors.Is(err, ErrForbidden):
		return stForbidden
	case errors.Is(err, ErrPeerRefused):
		return stRefused
	}
	return stOther
}

func errorOf(st byte, msg string) error {
	switch st {
	case stNotLeader:
		return ErrNotLeader
	case stNoQuorum:
		return fmt.Errorf("%w (at leader: %s)", ErrNoQuorum, msg)
	case stInvalid:
		return fmt.Errorf("%w (at leader: %s)", ErrInvalid, msg)
	case stUnknownOutcome:
		return fmt.Errorf("%w (at leader: %s)", ErrOutcomeUnknown, msg)
	// These messages already name their sentinel and say why.
	case stNotMember:
		return &remoteError{sentinel: ErrNotMember, msg: msg}
	case stWouldLoseQuorum:
		return &remoteError{sentinel: ErrWouldLoseQuorum, msg: msg}
	case stForbidden:
		return &remoteError{sentinel: ErrForbidden, msg: msg}
	case stRefused:
		return &remoteError{sentinel: ErrPeerRefused, msg: msg}
	case stRedirect:
		return &redirectError{addr: msg}
	}
	return fmt.Errorf("cluster: leader: %s", msg)
}

// remoteError is a sentinel error from another node, with that node's
// message, which already names the sentinel.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// redirectError sends the asker to the leader at addr; it crosses the
// wire as stRedirect with the address as its message.
type redirectError struct{ addr string }

func (e *redirectError) Error() string { return e.addr }
func (e *redirectError) Unwrap() error { return ErrNotLeader }

func writeFrame(w io.Writer, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	buf := make([]byte, 4, 4+n)
	binary.BigEndian.PutUint32(buf, uint32(n))
	for _, p := range parts {
		buf = append(buf, p...)
	}
	_, err := w.Write(buf)
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if n == 0 || n > maxFrame {
		return nil, fmt.Errorf("frame length %d out of range", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// forwardRequest is one request as the answering node sees it.
type forwardRequest struct {
	kind    byte
	payload []byte
	// peer is the common name of the asking node's verified certificate,
	// cert that certificate and remote the connection's address.
	peer   string
	cert   *x509.Certificate
	remote string
	// stream is the rest of a fwdRestore or fwdService request; nil for
	// other kinds.
	stream io.Reader
	// conn is the connection of a fwdService request, which its handler
	// answers on and closes; nil for other kinds.
	conn net.Conn
}

// forwardHandler is what the answering side does with a request.
type forwardHandler func(ctx context.Context, req forwardRequest) ([]byte, error)

// serveForward answers requests on one connection until it closes or base
// ends. check runs before each request; a refused request is answered
// stRefused and the connection closed.
func serveForward(base context.Context, c net.Conn, cert *x509.Certificate, check func(forwardRequest) error, h forwardHandler) {
	defer c.Close()
	tmpl := forwardRequest{peer: certID(cert), cert: cert, remote: c.RemoteAddr().String()}
	br := bufio.NewReader(c)
	for {
		frame, err := readFrame(br)
		if err != nil {
			return
		}
		d := &decoder{b: frame}
		kind := d.byte()
		ms := d.uvarint()
		if d.err != nil || ms > uint64(maxForwardWait/time.Millisecond) {
			writeFrame(c, []byte{stInvalid}, []byte("malformed request"))
			return
		}
		req := tmpl
		req.kind, req.payload = kind, d.b
		if err := check(req); err != nil {
			writeFrame(c, []byte{statusOf(err)}, []byte(err.Error()))
			return
		}
		ctx, cancel := context.WithTimeout(base, time.Duration(ms)*time.Millisecond)
		if kind == fwdRestore {
			serveRestore(ctx, c, br, req, h)
			cancel()
			return
		}
		if kind == fwdService {
			req.conn, req.stream = c, br
			h(ctx, req)
			cancel()
			return
		}
		out, err := h(ctx, req)
		cancel()
		if err != nil {
			err = writeFrame(c, []byte{statusOf(err)}, []byte(err.Error()))
		} else {
			err = writeFrame(c, []byte{stOK}, out)
		}
		if err != nil {
			return
		}
	}
}

// errNotSent marks a forward that failed before the request left this node,
// so it is safe to retry.
var errNotSent = errors.New("request not sent")

// forwarder keeps a pool of idle connections per leader address.
type forwarder struct {
	d *dialer

	mu   sync.Mutex // guards idle
	idle map[string][]net.Conn
}

const maxIdlePerAddr = 16

func newForwarder(d *dialer) *forwarder {
	return &forwarder{d: d, idle: make(map[string][]net.Conn)}
}

func (f *forwarder) get(ctx context.Context, addr string, fresh bool) (net.Conn, bool, error) {
	f.mu.Lock()
	if cs := f.idle[addr]; len(cs) > 0 && !fresh {
		c := cs[len(cs)-1]
		f.idle[addr] = cs[:len(cs)-1]
		f.mu.Unlock()
		return c, true, nil
	}
	f.mu.Unlock()
	c, err := f.d.dialProto(ctx, addr, protoForward)
	return c, false, err
}

func (f *forwarder) put(addr string, c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.idle[addr]) >= maxIdlePerAddr {
		c.Close()
		return
	}
	f.idle[addr] = append(f.idle[addr], c)
}

// call sends one request to addr and waits for the answer. Errors wrapping
// errNotSent are safe to retry; others may have taken effect.
func (f *forwarder) call(ctx context.Context, addr string, kind byte, payload []byte) ([]byte, error) {
	out, pooled, err := f.exchange(ctx, addr, kind, payload, false)
	if pooled && errors.Is(err, ErrPeerRefused) {
		// A pooled connection was opened with the certificate this node
		// had then; since renewed, a fresh connection presents the new
		// one. A refused request changed nothing.
		out, _, err = f.exchange(ctx, addr, kind, payload, true)
	}
	return out, err
}

// exchange sends one request on a pooled (unless fresh) or new connection
// and reports whether the connection was pooled.
func (f *forwarder) exchange(ctx context.Context, addr string, kind byte, payload []byte, fresh bool) ([]byte, bool, error) {
	c, pooled, err := f.get(ctx, addr, fresh)
	if err != nil {
		return nil, false, fmt.Errorf("%w: dialing leader %s: %v", errNotSent, addr, err)
	}
	ms := uint64(time.Minute / time.Millisecond)
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
		ms = uint64(max(time.Until(dl), time.Millisecond) / time.Millisecond)
	}
	hdr := binary.AppendUvarint([]byte{kind}, ms)
	if err := writeFrame(c, hdr, payload); err != nil {
		c.Close()
		// A pooled connection may have been closed by the leader since;
		// nothing reached it.
		return nil, pooled, fmt.Errorf("%w: writing to leader %s: %v", errNotSent, addr, err)
	}
	resp, err := readFrame(c)
	if err != nil {
		c.Close()
		return nil, pooled, fmt.Errorf("%w: reading from leader %s: %v", ErrOutcomeUnknown, addr, err)
	}
	c.SetDeadline(time.Time{})
	if resp[0] == stRefused {
		c.Close() // the leader closes it too
		return nil, pooled, errorOf(resp[0], string(resp[1:]))
	}
	f.put(addr, c)
	if resp[0] != stOK {
		return nil, pooled, errorOf(resp[0], string(resp[1:]))
	}
	return resp[1:], pooled, nil
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for a, cs := range f.idle {
		for _, c := range cs {
			c.Close()
		}
		delete(f.idle, a)
	}
}

// Results cross the wire in the same varint style as commands.

func encodeResult(r interface{}) ([]byte, error) {
	switch v := r.(type) {
	case TxnResult:
		b := []byte{1}
		if v.Succeeded {
			b[0] = 2
		}
		if v.Journal.Seqs != nil {
			// A transaction that carried journal records (Txn.Journal):
			// its result names their range too (7: failed, 8: succeeded).
			b[0] += 6
		}
		b = binary.AppendUvarint(b, v.Revision)
		b = binary.AppendVarint(b, int64(v.FailedCompare))
		if v.Journal.Seqs != nil {
			b = appendAppendResult(b, &v.Journal)
		}
		return b, nil
	case AppendResult:
		if v.Seqs != nil {
			return appendAppendResult([]byte{5}, &v), nil
		}
		b := []byte{3}
		b = binary.AppendUvarint(b, v.First)
		return binary.AppendUvarint(b, v.Last), nil
	case TrimResult:
		b := []byte{4}
		b = binary.AppendUvarint(b, v.First)
		return binary.AppendUvarint(b, v.Removed), nil
	case PruneResult:
		b := []byte{6}
		b = binary.AppendUvarint(b, v.Runs)
		return binary.AppendUvarint(b, v.Removed), nil
	case error:
		return nil, v
	}
	return nil, fmt.Errorf("cluster: unexpected apply result %T", r)
}

// appendAppendResult encodes a keyed append's result (with Seqs).
func appendAppendResult(b []byte, v *AppendResult) []byte {
	b = binary.AppendUvarint(b, v.First)
	b = binary.AppendUvarint(b, v.Last)
	b = binary.AppendUvarint(b, uint64(v.Duplicates))
	b = binary.AppendUvarint(b, uint64(len(v.Seqs)))
	for _, s := range v.Seqs {
		b = binary.AppendUvarint(b, s)
	}
	return b
}

// appendResult decodes what appendAppendResult encodes.
func (d *decoder) appendResult() AppendResult {
	r := AppendResult{First: d.uvarint(), Last: d.uvarint(), Duplicates: int(d.uvarint())}
	n := d.count(MaxAppendRecs, "seq")
	r.Seqs = make([]uint64, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		r.Seqs = append(r.Seqs, d.uvarint())
	}
	return r
}

func decodeResult(b []byte) (interface{}, error) {
	d := &decoder{b: b}
	switch t := d.byte(); t {
	case 1, 2, 7, 8:
		r := TxnResult{Succeeded: t == 2 || t == 8, Revision: d.uvarint()}
		if d.err == nil {
			v, n := binary.Varint(d.b)
			if n <= 0 {
				d.fail(errTruncated)
			} else {
				d.b = d.b[n:]
			}
			r.FailedCompare = int(v)
		}
		if t >= 7 {
			r.Journal = d.appendResult()
		}
		if d.err != nil {
			return nil, d.err
		}
		return r, nil
	case 3:
		r := AppendResult{First: d.uvarint(), Last: d.uvarint()}
		if d.err != nil {
			return nil, d.err
		}
		return r, nil
	case 5:
		r := d.appendResult()
		if d.err != nil {
			return nil, d.err
		}
		return r, nil
	case 4:
		r := TrimResult{First: d.uvarint(), Removed: d.uvarint()}
		if d.err != nil {
			return nil, d.err
		}
		return r, nil
	case 6:
		r := PruneResult{Runs: d.uvarint(), Removed: d.uvarint()}
		if d.err != nil {
			return nil, d.err
		}
		return r, nil
	}
	return nil, errors.New("cluster: malformed result from leader")
}
