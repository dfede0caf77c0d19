package tunneltest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/ferryvpn/ferry/tunnel/capture"
)

// captures are the packet captures an agent runs on its gateway for
// tests and benchmarks. capture_start (Addr: the client's tunnel address,
// Key: the filter, Bytes: the snap length, Timeout: the duration, default
// a minute; Proto "discard" keeps nothing but counts) starts this node's
// part of a capture as capture.Stream writes it; capture_stop ends it and
// answers the packet count (Conn) and the stream (Text, base64), which
// the test merges with capture.Merge.
type captures struct {
	mu  sync.Mutex // guards run
	run *agentCapture
}

type agentCapture struct {
	cancel context.CancelFunc
	done   chan struct{}
	out    bytes.Buffer
	stats  capture.Stats
	err    error
}

func (s *server) captureOp(req Request) (Response, bool, error) {
	s.capt.mu.Lock()
	defer s.capt.mu.Unlock()
	switch req.Op {
	case "capture_start":
		if s.capt.run != nil {
			return Response{}, true, fmt.Errorf("a capture already runs")
		}
		a, err := netip.ParseAddr(req.Addr)
		if err != nil {
			return Response{}, true, err
		}
		f, err := capture.CompileFilter(req.Key, []netip.Addr{a})
		if err != nil {
			return Response{}, true, err
		}
		lim := capture.Limits{Duration: req.Timeout, MaxBytes: 16 << 20, Snaplen: max(req.Bytes, 1)}
		if lim.Duration <= 0 {
			lim.Duration = time.Minute
		}
		src, err := s.gw.Capture(f, lim.Snaplen)
		if err != nil {
			return Response{}, true, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		run := &agentCapture{cancel: cancel, done: make(chan struct{})}
		var w io.Writer = &run.out
		if req.Proto == "discard" {
			w, lim.MaxBytes = io.Discard, 1<<50
		}
		go func() {
			defer close(run.done)
			run.stats, run.err = capture.Stream(ctx, src, s.iface, lim, w)
		}()
		s.capt.run = run
		return Response{}, true, nil
	default:
		run := s.capt.run
		if run == nil {
			return Response{}, true, fmt.Errorf("no capture runs")
		}
		s.capt.run = nil
		run.cancel()
		<-run.done
		return Response{Conn: int(run.stats.Packets), Text: base64.StdEncoding.EncodeToString(run.out.Bytes())}, true, run.err
	}
}
