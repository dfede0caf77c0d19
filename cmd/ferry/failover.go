package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Fast failover. The cluster's nodes share the WireGuard key and the peer
// table behind a UDP load balancer, but session keys live in one node's
// memory. When the client's node dies, the balancer sends the client to
// another node, which drops its packets until the client handshakes
// again; stock WireGuard only does so after sending for
// KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15 s) without hearing back. The
// embedded tunnel watches its peer's counters instead and, when what it
// sends goes unanswered for stallThreshold, replaces the peer (same
// configuration), which drops its keypairs: wireguard-go handshakes at
// once, and the new node answers.

const (
	// stallThreshold is how long data sent may go unanswered before the
	// path counts as dead. Shorter fails over sooner; longer spares slow
	// paths (a round trip near the threshold, a server busy for a moment)
	// a needless handshake. 1.5 s is several round trips of any sane path
	// and keeps the failover gap, with polling and the handshake itself,
	// near 2 s.
	stallThreshold = 1500 * time.Millisecond
	// failoverPoll is how often the watchdog reads the peer's counters: a
	// local UAPI read, cheap at this rate.
	failoverPoll = 250 * time.Millisecond
	// failoverMinInterval and failoverMaxInterval bound the time between
	// forced handshakes: from the minimum it doubles up to the maximum
	// while the path stays dead (or the traffic only goes one way), and
	// returns to the minimum once data is answered promptly again.
	failoverMinInterval = 2 * time.Second
	failoverMaxInterval = 30 * time.Second
	// keepaliveBytes is the size of a WireGuard keepalive (header and
	// tag, no payload). Keepalives get no answer by design, so the bytes
	// sent in one poll count as data only above it: an idle tunnel with
	// PersistentKeepalive never looks dead.
	keepaliveBytes = 32
)

// peerSample is one reading of the peer's counters.
type peerSample struct {
	At            time.Time
	Rx, Tx        int64
	LastHandshake time.Time
}

// deadPath decides from successive samples of the tunnel's one peer when
// to force a new handshake: data was sent and nothing at all came back
// for the threshold, no handshake completed within the threshold, and
// the rate limit allows.
//
// Traffic that only goes one way (a UDP stream without replies) looks the
// same for up to 10 s, until the server's passive keepalive answers. Such
// a sender gets forced handshakes after 2, 4, 8 and 16 s and then one
// every 30 s: a round trip each, and at most the packets in flight at
// that moment. The interval drops back to the minimum only when sent data
// is answered within the threshold by more than a handshake: neither a
// handshake's own response nor a passive keepalive 10 s late resets it.
//
// A deadPath is not safe for concurrent use.
type deadPath struct {
	threshold, minInterval, maxInterval time.Duration

	based      bool       // last holds a baseline
	last       peerSample // the previous sample
	lastRx     time.Time  // when rx last advanced, or the baseline
	unanswered time.Time  // first sample with data sent after the last receive; zero when none
	interval   time.Duration
	next       time.Time // no forced handshake before
}

func newDeadPath(threshold, minInterval, maxInterval time.Duration) *deadPath {
	return &deadPath{threshold: threshold, minInterval: minInterval, maxInterval: maxInterval, interval: minInterval}
}

// observe takes the next sample and reports whether to force a new
// handshake now. After it reports true the peer's counters restart, and
// the next sample is taken as a new baseline.
func (d *deadPath) observe(s peerSample) bool {
	if !d.based || s.Rx < d.last.Rx || s.Tx < d.last.Tx {
		// The first sample, or the peer was replaced and its counters
		// restarted: nothing to compare with.
		d.based, d.last, d.lastRx, d.unanswered = true, s, s.At, time.Time{}
		return false
	}
	prev := d.last
	rx, tx := s.Rx-prev.Rx, s.Tx-prev.Tx
	d.last = s
	if rx > 0 {
		prompt := d.unanswered.IsZero() || s.At.Sub(d.unanswered) < d.threshold
		if prompt && s.LastHandshake.Equal(prev.LastHandshake) {
			d.interval = d.minInterval // the path answers data, not just a handshake
		}
		d.lastRx, d.unanswered = s.At, time.Time{}
		return false
	}
	if tx > keepaliveBytes && d.unanswered.IsZero() {
		d.unanswered = s.At
	}
	switch {
	case d.unanswered.IsZero(), s.At.Sub(d.unanswered) < d.threshold:
		return false // nothing waits for an answer, or not for long
	case !s.LastHandshake.IsZero() && s.At.Sub(s.LastHandshake) < d.threshold:
		return false // a fresh session: give it time
	case s.At.Before(d.next):
		return false
	}
	d.next = s.At.Add(d.interval)
	d.interval = min(2*d.interval, d.maxInterval)
	d.based = false
	return true
}

// stalled returns how long the path has gone without receiving.
func (d *deadPath) stalled(now time.Time) time.Duration { return now.Sub(d.lastRx) }

// failoverDevice is what the watchdog needs of a wgctrl.Client.
type failoverDevice interface {
	Device(name string) (*wgtypes.Device, error)
	ConfigureDevice(name string, cfg wgtypes.Config) error
}

// carried is the traffic of peers the watchdog replaced, which the
// device's counters no longer include; ferry status adds it.
type carried struct {
	RxBytes int64 `json:"rx_bytes"`
	TxBytes int64 `json:"tx_bytes"`
}

// fileCarried holds the carried traffic under the run directory while
// the embedded tunnel runs.
const fileCarried = ifaceName + ".carried.json"

// writeCarried records the carried traffic for ferry status.
func writeCarried(runDir string, c carried) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	tmp := filepath.Join(runDir, fileCarried+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(runDir, fileCarried))
}

// readCarried returns the carried traffic recorded in runDir; none is no
// error.
func readCarried(runDir string) (carried, error) {
	var c carried
	b, err := os.ReadFile(filepath.Join(runDir, fileCarried))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return carried{}, fmt.Errorf("%s: %w", filepath.Join(runDir, fileCarried), err)
	}
	return c, nil
}

// removeCarried forgets the carried traffic; a missing file is no error.
func removeCarried(runDir string) error {
	if err := os.Remove(filepath.Join(runDir, fileCarried)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// watchPath runs the dead-path watchdog on the device's one peer until
// ctx ends. peer is the peer's configuration; a forced handshake replaces
// the peer with it, keeping the endpoint the device last used. Each one is
// logged.
func watchPath(ctx context.Context, dev failoverDevice, name string, peer wgtypes.PeerConfig, runDir string, log io.Writer) {
	d := newDeadPath(stallThreshold, failoverMinInterval, failoverMaxInterval)
	var (
		total  carried // traffic of replaced peers
		failed bool    // the last read failed, and was logged
	)
	tick := time.NewTicker(failoverPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		p, err := readPeer(dev, name, peer.PublicKey)
		if err != nil {
			if !failed {
				fmt.Fprintf(log, "ferry: failover watchdog: %v\n", err)
			}
			failed = true
			continue
		}
		failed = false
		if !d.observe(peerSample{At: now, Rx: p.ReceiveBytes, Tx: p.TransmitBytes, LastHandshake: p.LastHandshakeTime}) {
			continue
		}
		pc := peer
		if p.Endpoint != nil {
			pc.Endpoint = p.Endpoint
		}
		fmt.Fprintf(log, "ferry: %s: nothing received from %s for %s while sending: forcing a new handshake\n",
			now.Format(time.RFC3339), endpointString(pc.Endpoint), d.stalled(now).Round(10*time.Millisecond))
		if err := dev.ConfigureDevice(name, wgtypes.Config{ReplacePeers: true, Peers: []wgtypes.PeerConfig{pc}}); err != nil {
			fmt.Fprintf(log, "ferry: forcing a new handshake: %v\n", err)
			continue
		}
		total.RxBytes += p.ReceiveBytes
		total.TxBytes += p.TransmitBytes
		if err := writeCarried(runDir, total); err != nil {
			fmt.Fprintf(log, "ferry: recording the traffic for ferry status: %v\n", err)
		}
	}
}

// readPeer reads the device's peer with the given key.
func readPeer(dev failoverDevice, name string, key wgtypes.Key) (wgtypes.Peer, error) {
	d, err := dev.Device(name)
	if err != nil {
		return wgtypes.Peer{}, fmt.Errorf("reading %s: %w", name, err)
	}
	for _, p := range d.Peers {
		if p.PublicKey == key {
			return p, nil
		}
	}
	return wgtypes.Peer{}, fmt.Errorf("%s has lost its peer", name)
}

func endpointString(a *net.UDPAddr) string {
	if a == nil {
		return "the server"
	}
	return a.String()
}
