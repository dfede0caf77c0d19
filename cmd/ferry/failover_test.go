package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// traffic is what a scenario's peer does in one poll: the bytes it
// receives and sends and whether a handshake completes. at is the time
// since the start, forced the time of the last forced handshake (-1 when
// none).
type traffic func(at, forced time.Duration) (rx, tx int64, handshake bool)

// simulate runs deadPath over a peer doing tr for d, polled like the
// watchdog, restarting the peer's counters when it forces a handshake as
// replacing the peer does, and returns when it forced them.
func simulate(tr traffic, d time.Duration) []time.Duration {
	var (
		start  = time.Unix(1_700_000_000, 0)
		dp     = newDeadPath(stallThreshold, failoverMinInterval, failoverMaxInterval)
		p      peerSample
		forced = time.Duration(-1)
		acts   []time.Duration
	)
	p.LastHandshake = start.Add(-time.Minute)
	for at := time.Duration(0); at <= d; at += failoverPoll {
		rx, tx, hs := tr(at, forced)
		p.At = start.Add(at)
		p.Rx += rx
		p.Tx += tx
		if hs {
			p.LastHandshake = p.At.Add(-failoverPoll / 2)
		}
		if dp.observe(p) {
			acts = append(acts, at)
			forced = at
			p = peerSample{} // the replaced peer starts afresh
		}
	}
	return acts
}

const (
	dataOut   = 1200 // a data packet and its reply, in bytes on the wire
	handshake = 92   // a handshake response
)

// echo answers every packet within the poll, as a working path does.
func echo(time.Duration, time.Duration) (int64, int64, bool) { return dataOut, dataOut, false }

// failAt is an echo whose node dies at the given time; the next node
// answers a handshake within a poll, then the echo again. answers tells
// whether the next node is there at all.
func failAt(dies time.Duration, answers bool) traffic {
	return func(at, forced time.Duration) (int64, int64, bool) {
		switch {
		case at < dies:
			return dataOut, dataOut, false
		case forced < dies || !answers:
			return 0, dataOut, false // sent into a node without our session
		case at == forced+failoverPoll:
			return handshake, dataOut + 148, true
		}
		return dataOut, dataOut, false
	}
}

func TestDeadPath(t *testing.T) {
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	tests := []struct {
		name string
		tr   traffic
		d    time.Duration
		want []time.Duration
	}{
		{name: "a working path is left alone", tr: echo, d: time.Minute},
		{
			name: "an idle tunnel's unanswered keepalives are not data",
			tr: func(at, _ time.Duration) (int64, int64, bool) {
				if at%(25*time.Second) == 0 {
					return 0, keepaliveBytes, false
				}
				return 0, 0, false
			},
			d: 2 * time.Minute,
		},
		{
			name: "an answer within the threshold is no stall",
			tr: func(at, _ time.Duration) (int64, int64, bool) {
				switch at % (2 * time.Second) {
				case 0:
					return 0, dataOut, false
				case sec(1.25):
					return dataOut, 0, false
				}
				return 0, 0, false
			},
			d: time.Minute,
		},
		{
			// The first unanswered send is seen at 10 s; 1.5 s later the
			// watchdog acts, and the next node answers at once.
			name: "node dies: one forced handshake after the threshold",
			tr:   failAt(10*time.Second, true),
			d:    time.Minute,
			want: []time.Duration{sec(11.5)},
		},
		{
			name: "no node answers: backing off to the maximum",
			tr:   failAt(10*time.Second, false),
			d:    2 * time.Minute,
			want: []time.Duration{sec(11.5), sec(13.5), sec(17.5), sec(25.5), sec(41.5), sec(71.5), sec(101.5)},
		},
		{
			name: "a fresh handshake holds it off",
			tr: func(at, forced time.Duration) (int64, int64, bool) {
				if at < 10*time.Second {
					return dataOut, dataOut, false
				}
				// Handshakes complete with a node that answers nothing else.
				return 0, dataOut, at == sec(11.5)
			},
			d:    14 * time.Second,
			want: []time.Duration{sec(13)},
		},
		{
			name: "recovery returns to the minimum interval",
			tr: func(at, forced time.Duration) (int64, int64, bool) {
				// Nodes die at 10, 13 and 15.5 s, and the path recovers in
				// between: the third failover waits for the minimum
				// interval after the second (16.5 s), not twice it (18.5 s).
				dies := 10 * time.Second
				switch {
				case at >= sec(15.5):
					dies = sec(15.5)
				case at >= 13*time.Second:
					dies = 13 * time.Second
				}
				return failAt(dies, true)(at, forced)
			},
			d:    30 * time.Second,
			want: []time.Duration{sec(11.5), sec(14.5), sec(17)},
		},
		{
			// Replies never come; the server's passive keepalive arrives 10 s
			// after data, handshakes are answered.
			name: "one-way traffic: handshakes back off and stay rare",
			tr: func(at, forced time.Duration) (int64, int64, bool) {
				if forced >= 0 && at == forced+failoverPoll {
					return handshake, dataOut, true
				}
				if at > 0 && at%(10*time.Second) == 0 {
					return keepaliveBytes, dataOut, false
				}
				return 0, dataOut, false
			},
			d:    2 * time.Minute,
			want: []time.Duration{sec(1.75), sec(3.75), sec(7.75), sec(15.75), sec(31.75), sec(61.75), sec(91.75)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := simulate(tt.tr, tt.d); !slices.Equal(got, tt.want) {
				t.Errorf("forced handshakes at %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDeadPathRestart: counters that go backwards (the peer was replaced,
// by the watchdog or anyone) are a new baseline, not traffic.
func TestDeadPathRestart(t *testing.T) {
	d := newDeadPath(stallThreshold, failoverMinInterval, failoverMaxInterval)
	t0 := time.Unix(1_700_000_000, 0)
	for i, s := range []peerSample{
		{At: t0, Rx: 5000, Tx: 5000},
		{At: t0.Add(time.Second), Rx: 5000, Tx: 9000},
		{At: t0.Add(2 * time.Second), Rx: 0, Tx: 100},         // restarted
		{At: t0.Add(3 * time.Second), Rx: 0, Tx: 200},         // unanswered from here
		{At: t0.Add(4400 * time.Millisecond), Rx: 0, Tx: 300}, // 1.4 s
	} {
		if d.observe(s) {
			t.Errorf("sample %d forced a handshake", i)
		}
	}
	if !d.observe(peerSample{At: t0.Add(4500 * time.Millisecond), Rx: 0, Tx: 400}) {
		t.Error("1.5 s unanswered after the restart forced nothing")
	}
}

// fakeDevice is a device with one peer whose counters a test sets.
type fakeDevice struct {
	mu    sync.Mutex // guards the fields below
	peer  wgtypes.Peer
	cfgs  []wgtypes.Config
	err   error
	reads chan struct{} // if not nil, told of every call of Device
}

func (f *fakeDevice) Device(string) (*wgtypes.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reads != nil {
		select {
		case f.reads <- struct{}{}:
		default:
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	return &wgtypes.Device{Peers: []wgtypes.Peer{f.peer}}, nil
}

func (f *fakeDevice) ConfigureDevice(_ string, cfg wgtypes.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfgs = append(f.cfgs, cfg)
	f.peer.ReceiveBytes, f.peer.TransmitBytes, f.peer.LastHandshakeTime = 0, 0, time.Time{}
	return nil
}

// TestWatchPath: the watchdog replaces the peer with its configuration at
// the endpoint in use, logs it without keys, and records the replaced
// peer's traffic for ferry status.
func TestWatchPath(t *testing.T) {
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	ka := 25 * time.Second
	conf := wgtypes.PeerConfig{PublicKey: key.PublicKey(), Endpoint: &net.UDPAddr{IP: net.IPv4(203, 0, 113, 5), Port: 51820},
		PersistentKeepaliveInterval: &ka, ReplaceAllowedIPs: true, AllowedIPs: []net.IPNet{{IP: net.IPv4(10, 0, 0, 0), Mask: net.CIDRMask(16, 32)}}}
	roamed := &net.UDPAddr{IP: net.IPv4(203, 0, 113, 6), Port: 51820}
	dev := &fakeDevice{peer: wgtypes.Peer{PublicKey: key.PublicKey(), Endpoint: roamed, ReceiveBytes: 7000, TransmitBytes: 9000,
		LastHandshakeTime: time.Now().Add(-time.Minute)}}
	runDir := t.TempDir()
	var log bytes.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchPath(ctx, dev, "ferry0", conf, runDir, &log)
	}()
	// The node dies: the peer sends and hears nothing, 500 bytes a tick.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for ; ; <-tick.C {
		dev.mu.Lock()
		n := len(dev.cfgs)
		if n == 0 {
			dev.peer.TransmitBytes += 500
		}
		dev.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no forced handshake within 10 s of a dead path")
		}
	}
	// Let the watchdog read the device after the replacement, then stop.
	dev.mu.Lock()
	dev.reads = make(chan struct{}, 1)
	dev.mu.Unlock()
	select {
	case <-dev.reads:
	case <-time.After(10 * time.Second):
		t.Fatal("the watchdog stopped reading the device after the replacement")
	}
	cancel()
	<-done

	cfg := dev.cfgs[0]
	if len(dev.cfgs) != 1 || !cfg.ReplacePeers || cfg.PrivateKey != nil || len(cfg.Peers) != 1 {
		t.Fatalf("configurations %+v", dev.cfgs)
	}
	want := conf
	want.Endpoint = roamed
	if got := cfg.Peers[0]; got.PublicKey != want.PublicKey || got.Endpoint.String() != roamed.String() ||
		*got.PersistentKeepaliveInterval != ka || !got.ReplaceAllowedIPs || len(got.AllowedIPs) != 1 {
		t.Errorf("replaced peer %+v, want %+v", got, want)
	}
	if !strings.Contains(log.String(), "forcing a new handshake") || !strings.Contains(log.String(), roamed.String()) ||
		strings.Contains(log.String(), key.PublicKey().String()) {
		t.Errorf("log:\n%s", log.String())
	}
	c, err := readCarried(runDir)
	if err != nil || c.RxBytes != 7000 || c.TxBytes < 9500 {
		t.Errorf("carried %+v %v", c, err)
	}
	if m := fileMode(t, filepath.Join(runDir, fileCarried)); m != 0o600 {
		t.Errorf("%s mode %04o", fileCarried, m)
	}
	if err := removeCarried(runDir); err != nil {
		t.Error(err)
	}
	if c, err := readCarried(runDir); err != nil || c != (carried{}) {
		t.Errorf("after removal: %+v %v", c, err)
	}
}

// TestWatchPathReadErrors: a device that cannot be read is logged once,
// not every poll.
func TestWatchPathReadErrors(t *testing.T) {
	dev := &fakeDevice{err: errors.New("no such device")}
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 5*failoverPoll)
	defer cancel()
	watchPath(ctx, dev, "ferry0", wgtypes.PeerConfig{}, t.TempDir(), &log)
	if n := strings.Count(log.String(), "no such device"); n != 1 {
		t.Errorf("%d log lines:\n%s", n, log.String())
	}
}
