package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Services: a member asks one named member (not the leader) to run a
// service registered there (HandleService) and stream its answer back, on
// a connection of its own:
//
//	request = fwdService frame: proof(bytes) name(bytes) payload
//	answer  = status frame, then, when ok, chunk frames
//	chunk   = 'd' data | 'e' (done) | 'x' message (failed)
//
// Like a forwarded membership change, a service call carries the proof of
// whoever asked the calling node (WithProof), and the answering node asks
// Config.Authorize about it before it runs anything (AuthRequest.Op
// "service", Target the service's name): a member acting on its own can
// use a service no more than the API allows. The caller hanging up, or
// cancelling, ends the handler's context.

// fwdService asks a member to run a registered service.
const fwdService byte = 11

const chunkFailed byte = 'x'

// maxServiceName bounds a service's name.
const maxServiceName = 64

// ServiceRequest is a service call as the answering node sees it.
type ServiceRequest struct {
	// Peer is the node ID of the member that called.
	Peer string
	// Actor is who the call's proof named (Config.Authorize's answer).
	Actor string
	// Proof is the proof the call carried.
	Proof []byte
	// Payload is the call's argument.
	Payload []byte
}

// ServiceHandler serves one call, writing its answer to w. ctx ends when
// the caller hangs up or cancels, or the call's deadline passes. An error
// reaches the caller after whatever was written.
type ServiceHandler func(ctx context.Context, req ServiceRequest, w io.Writer) error

// ErrNoService is returned when a member has no service of the name asked.
var ErrNoService = errors.New("cluster: no such service")

// services holds the registered handlers.
type services struct {
	mu sync.Mutex // guards m
	m  map[string]ServiceHandler
}

// HandleService registers h as the service name on this node; a nil h
// removes it.
func (n *Node) HandleService(name string, h ServiceHandler) {
	n.svc.mu.Lock()
	defer n.svc.mu.Unlock()
	if n.svc.m == nil {
		n.svc.m = make(map[string]ServiceHandler)
	}
	if h == nil {
		delete(n.svc.m, name)
		return
	}
	n.svc.m[name] = h
}

func (n *Node) service(name string) ServiceHandler {
	n.svc.mu.Lock()
	defer n.svc.mu.Unlock()
	return n.svc.m[name]
}

// serveService answers a fwdService request on req.conn and closes it.
func (n *Node) serveService(ctx context.Context, req forwardRequest) {
	c := req.conn
	d := &decoder{b: req.payload}
	proof := d.bytes(maxProofLen, "proof")
	name := string(d.bytes(maxServiceName, "service name"))
	if d.err != nil {
		writeFrame(c, []byte{stInvalid}, []byte(fmt.Sprintf("%v: %v", ErrInvalid, d.err)))
		return
	}
	h := n.service(name)
	if h == nil {
		writeFrame(c, []byte{stInvalid}, []byte(fmt.Sprintf("%v: %q on %s", ErrNoService, name, n.cfg.NodeID)))
		return
	}
	actor, err := n.authorizeService(ctx, req, name, proof)
	if err != nil {
		writeFrame(c, []byte{statusOf(err)}, []byte(err.Error()))
		return
	}
	if writeFrame(c, []byte{stOK}) != nil {
		return
	}
	// The caller sends nothing more: any read result means it hung up.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, req.stream)
		cancel()
	}()
	w := &chunkWriter{w: c}
	bw := bufio.NewWriterSize(w, 64<<10)
	err = h(ctx, ServiceRequest{Peer: req.peer, Actor: actor, Proof: proof, Payload: d.b}, &flushWriter{bw})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		writeFrame(c, []byte{chunkFailed}, []byte(err.Error()))
		return
	}
	writeFrame(c, []byte{chunkEnd})
}

// authorizeService asks Config.Authorize about a service call.
func (n *Node) authorizeService(ctx context.Context, req forwardRequest, name string, proof []byte) (string, error) {
	ar := AuthRequest{Peer: req.peer, Op: "service", Target: name, Proof: proof}
	ev := PeerEvent{Peer: req.peer, Serial: certSerial(req.cert), Remote: req.remote, Op: ar.Op, Target: name}
	var actor string
	var err error
	if n.cfg.Authorize == nil {
		err = fmt.Errorf("%w: this cluster takes no service calls", ErrForbidden)
	} else if actor, err = n.cfg.Authorize(ctx, ar); err != nil {
		err = fmt.Errorf("%w: service %s called by %q: %v", ErrForbidden, name, req.peer, err)
	}
	ev.Actor = actor
	if err != nil {
		n.log.Warn("service call refused", "peer", req.peer, "service", name, "err", err)
		ev.Refused, ev.Reason = true, err.Error()
	}
	n.event(ev)
	return actor, err
}

// chunkWriter writes each Write as one data chunk frame.
type chunkWriter struct{ w io.Writer }

func (cw *chunkWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += restoreChunk {
		end := min(off+restoreChunk, len(p))
		if err := writeFrame(cw.w, []byte{chunkData}, p[off:end]); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// flushWriter flushes after every write, so a streaming handler's output
// leaves at once, in frames as large as its writes.
type flushWriter struct{ bw *bufio.Writer }

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.bw.Write(p)
	if err == nil {
		err = f.bw.Flush()
	}
	return n, err
}

// CallService asks member node to run service name with payload and
// returns its answer as a stream; the call carries ctx's proof
// (WithProof). Closing the stream, or ending ctx, hangs up, which ends the
// handler on the other node. The stream's Read returns the handler's error
// after its output.
func (n *Node) CallService(ctx context.Context, node, name string, payload []byte) (io.ReadCloser, error) {
	if len(name) == 0 || len(name) > maxServiceName {
		return nil, fmt.Errorf("%w: service name %q", ErrInvalid, name)
	}
	s, ok := n.member(node)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotMember, node)
	}
	addr := string(s.Address)
	c, err := n.fwd.d.dialProto(ctx, addr, protoForward)
	if err != nil {
		return nil, fmt.Errorf("cluster: dialing %s at %s: %w", node, addr, err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	wait := maxForwardWait
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, max(time.Until(dl), time.Millisecond))
	}
	hdr := binary.AppendUvarint([]byte{fwdService}, uint64(wait/time.Millisecond))
	body := appendBytes(appendBytes(nil, proofFrom(ctx)), []byte(name))
	if err := writeFrame(c, hdr, body, payload); err != nil {
		stop()
		c.Close()
		return nil, fmt.Errorf("cluster: calling %s on %s: %w", name, node, err)
	}
	resp, err := readFrame(c)
	if err != nil {
		stop()
		c.Close()
		return nil, fmt.Errorf("cluster: calling %s on %s: %w", name, node, noEOF(err))
	}
	if resp[0] != stOK {
		stop()
		c.Close()
		return nil, errorOf(resp[0], string(resp[1:]))
	}
	return &serviceStream{c: c, stop: stop, br: bufio.NewReader(c)}, nil
}

// serviceStream is the caller's side of a service's answer.
type serviceStream struct {
	c    net.Conn
	br   *bufio.Reader
	stop func() bool
	buf  []byte
	err  error // sticky: io.EOF after the end chunk, or the failure
	once sync.Once
}

func (s *serviceStream) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		f, err := readFrame(s.br)
		switch {
		case err != nil:
			s.err = noEOF(err)
		case f[0] == chunkEnd && len(f) == 1:
			s.err = io.EOF
		case f[0] == chunkFailed:
			s.err = fmt.Errorf("cluster: service failed: %s", f[1:])
		case f[0] == chunkData && len(f) > 1:
			s.buf = f[1:]
		default:
			s.err = errors.New("cluster: malformed service chunk")
		}
	}
	k := copy(p, s.buf)
	s.buf = s.buf[k:]
	return k, nil
}

func (s *serviceStream) Close() error {
	s.once.Do(func() {
		s.stop()
		s.c.Close()
	})
	return nil
}
