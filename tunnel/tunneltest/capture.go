package tunneltest

import (
	"fmt"
	"net/netip"
	"strconv"
	"sync"

	"github.com/ferryvpn/ferry/tunnel/capture"
)

// captures are the packet captures an agent runs on its gateway for
// tests and benchmarks: capture_start (Addr: the client's tunnel address,
// Key: the filter, Bytes: the snap length) starts one that keeps counting
// what it matched, capture_stop ends it and answers the packet count.
type captures struct {
	mu  sync.Mutex // guards run
	run *agentCapture
}

type agentCapture struct {
	src     capture.Source
	done    chan struct{}
	packets uint64
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
		src, err := s.gw.Capture(f, max(req.Bytes, 1))
		if err != nil {
			return Response{}, true, err
		}
		run := &agentCapture{src: src, done: make(chan struct{})}
		go func() {
			defer close(run.done)
			for range src.Packets() {
				run.packets++
			}
		}()
		s.capt.run = run
		return Response{}, true, nil
	default:
		run := s.capt.run
		if run == nil {
			return Response{}, true, fmt.Errorf("no capture runs")
		}
		s.capt.run = nil
		run.src.Close()
		<-run.done
		return Response{Text: strconv.FormatUint(run.packets, 10)}, true, nil
	}
}
