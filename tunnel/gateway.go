package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ti-mo/conntrack"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/profiles"
)

// Errors returned by Gateway.
var (
	// ErrRunning is returned by Run when the gateway already runs or ran.
	ErrRunning = errors.New("tunnel: gateway already running")
	// ErrClosed is returned by Run after Close.
	ErrClosed = errors.New("tunnel: gateway closed")
)

// Gateway is one node's data plane: its WireGuard device, ferry's
// nftables table, and the session and flow monitors. New sets it up; Run
// follows the replicated state until its context ends; Close tears it
// down. Methods are safe for concurrent use.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	dev     *wgDevice
	fw      *nftFirewall
	mon     *nftFirewall // a second netlink socket for reads off the reconciler's goroutine
	ct      *conntrack.Conn
	metrics *metrics
	index   atomic.Pointer[peerIndex]
	stats   atomic.Pointer[NodePeerStats] // the device's per-peer counters at the last poll
	emitter *emitter
	// grants and fwd are the DNS forwarder and its host grants (nil
	// unless Config.DNS.Enabled); grantNL is the grants' netlink socket.
	grants  *grants
	sharer  *grantSharer
	fwd     *forwarder
	grantNL *elemBatch
	prevMem int64 // runtime memory limit before ours; -1: untouched

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	runMu  sync.Mutex // guards ran
	ran    bool
	runWG  sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New creates the WireGuard interface and ferry's nftables table (which
// drops everything from clients until Run programs the peers), enables
// forwarding and conntrack accounting, and registers the metrics.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if err := cfg.DNS.setDefaults(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger.With("component", "tunnel", "interface", cfg.Interface), metrics: newMetrics(), prevMem: -1}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			g.Close()
		}
	}()
	var err error
	// 1. Enforcement first, so nothing passes unchecked once the device is up.
	if g.fw, err = newNFTFirewall(cfg.Table, cfg.Interface, cfg.Egress); err != nil {
		return nil, err
	}
	g.fw.relay4, g.fw.relay6 = cfg.Address.Addr(), profiles.Address6(cfg.Pool6, cfg.Address.Addr())
	g.fw.dnsPort = cfg.DNS.Enabled
	if err := g.fw.Apply(fwChange{Reset: true}); err != nil {
		return nil, err
	}
	if g.mon, err = newNFTFirewall(cfg.Table, cfg.Interface, cfg.Egress); err != nil {
		return nil, err
	}
	sysctls := [][2]string{{"net.ipv4.ip_forward", "1"}, {"net.netfilter.nf_conntrack_acct", "1"}, {"net.netfilter.nf_conntrack_timestamp", "1"}}
	if cfg.Pool6.IsValid() {
		sysctls = append(sysctls, [2]string{"net.ipv6.conf.all.forwarding", "1"})
	}
	for _, s := range sysctls {
		if err := setSysctl(s[0], s[1]); err != nil {
			return nil, err
		}
	}
	// 2. The device.
	if g.dev, err = openDevice(&cfg, g.log); err != nil {
		return nil, err
	}
	if !g.dev.kernel && cfg.MemoryLimit > 0 {
		g.prevMem = debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	// 3. The DNS forwarder on the tunnel addresses, with its own netlink
	// socket for the grants it programs.
	if cfg.DNS.Enabled {
		if g.grantNL, err = newElemBatch(cfg.Table, 0); err != nil {
			return nil, err
		}
		w := newGrantWriter(g.grantNL)
		g.grants = newGrants(w, cfg.DNS.Grace, 2*MaxFlowInterval, g.log)
		g.sharer = newGrantSharer(cfg.Cluster, g.grants, cfg.DNS.Grace, g.log)
		g.grants.share = g.sharer.offer
		g.fwd = newForwarder(cfg.DNS, g.grants, g.log)
		addrs := []netip.Addr{cfg.Address.Addr()}
		if a6 := profiles.Address6(cfg.Pool6, cfg.Address.Addr()); a6.IsValid() {
			addrs = append(addrs, a6)
		}
		if err := g.fwd.listen(addrs); err != nil {
			return nil, err
		}
	}
	// 4. Conntrack, for cutting connections.
	if g.ct, err = conntrack.Dial(nil); err != nil {
		return nil, fmt.Errorf("opening conntrack netlink: %w", err)
	}
	// Two intervals of records at the caps (fine, coarse, and per client).
	g.emitter = newEmitter(cfg.Recorder, cfg.Cluster.ID(), g.log, g.metrics.auditDrops.Inc, 2*(cfg.FlowMaxRecords*3/2+4096))
	if cfg.Registerer != nil {
		if err := g.metrics.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("registering tunnel metrics: %w", err)
		}
	}
	g.log.Info("data plane ready", "kernel", g.dev.kernel, "port", cfg.ListenPort, "address", cfg.Address)
	ok = true
	return g, nil
}

// PublicKey returns the interface's public key, the same on every node.
func (g *Gateway) PublicKey() wgtypes.Key { return g.cfg.PrivateKey.PublicKey() }

// Kernel reports whether the device is a kernel WireGuard interface
// (false: embedded wireguard-go).
func (g *Gateway) Kernel() bool { return g.dev.kernel }

// watchMsg carries a prefix's full listing (snapshot) or its next changes.
type watchMsg struct {
	prefix   string
	snapshot bool
	kvs      []cluster.KV
	events   []cluster.Event
}

// Run follows the replicated peers and profiles and keeps the data plane
// converged until ctx ends or Close is called; then it ends the open
// sessions and returns nil. It returns an error when it cannot go on. A
// Gateway runs once.
func (g *Gateway) Run(ctx context.Context) error {
	g.runMu.Lock()
	if g.ctx.Err() != nil {
		g.runMu.Unlock()
		return ErrClosed
	}
	if g.ran {
		g.runMu.Unlock()
		return ErrRunning
	}
	g.ran = true
	g.runWG.Add(1)
	g.runMu.Unlock()
	defer g.runWG.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(g.ctx, cancel)
	defer stop()

	// The emitter outlives the goroutines that feed it: the sessions the
	// reconciler ends as it stops are recorded too, not lost in a race.
	emitCtx, stopEmitter := context.WithCancel(context.WithoutCancel(ctx))
	var emitWG sync.WaitGroup
	defer emitWG.Wait()
	defer stopEmitter()
	emitWG.Add(1)
	go func() {
		defer emitWG.Done()
		g.emitter.run(emitCtx)
	}()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	goRun := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}

	cfg := &g.cfg
	msgs := make(chan watchMsg, 16)
	fatal := make(chan error, 4)
	for _, prefix := range profiles.RecordPrefixes {
		goRun(func() {
			if err := g.pump(ctx, prefix, msgs); err != nil && ctx.Err() == nil {
				fatal <- fmt.Errorf("watching %s: %w", prefix, err)
			}
		})
	}
	fm := newFlowMonitor(flowMonitor{pool: cfg.Pool, pool6: cfg.Pool6, index: &g.index, emit: g.emitter.emit, now: cfg.Now,
		interval: cfg.FlowInterval, activeTimeout: cfg.FlowActiveTimeout, denyInterval: cfg.DenyInterval,
		log: g.log, metrics: g.metrics, denied: g.mon.denied, counters: g.mon.counters, listen: !cfg.NoFlows}, cfg.FlowMaxRecords)
	if g.grants != nil {
		fm.hosts = g.grants.host
	}
	goRun(func() {
		if err := fm.run(ctx); err != nil && ctx.Err() == nil {
			g.log.Error("flow monitor stopped; flow records are off", "err", err)
		}
	})

	if g.fwd != nil {
		stopWriter := make(chan struct{})
		goRun(func() { g.grants.w.run(stopWriter) })
		goRun(func() {
			<-ctx.Done()
			close(stopWriter)
		})
		goRun(func() { g.fwd.serve(ctx) })
		shared := make(chan watchMsg, 16)
		goRun(func() {
			if err := g.pump(ctx, GrantPrefix, shared); err != nil && ctx.Err() == nil {
				fatal <- fmt.Errorf("watching %s: %w", GrantPrefix, err)
			}
		})
		goRun(func() { g.sharer.follow(ctx, shared) })
		goRun(func() { g.sharer.run(ctx) })
		goRun(func() {
			t := time.NewTicker(time.Minute)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					g.grants.expire()
				}
			}
		})
	}
	r := &reconciler{grants: g.grants, dev: g.dev, fw: g.fw, cut: &ctCutter{conn: g.ct}, mirror: newMirror(), applied: newApplied(),
		pool: cfg.Pool, pool6: cfg.Pool6, server: cfg.Address.Addr(), now: cfg.Now, log: g.log, metrics: g.metrics, index: &g.index,
		node: cfg.Cluster.ID(), stats: &g.stats}
	r.sess = newSessions(cfg.SessionIdle, g.emitter.emit, r.version, g.metrics)
	return g.loop(ctx, r, msgs, fatal)
}

// loop is the reconciler's goroutine.
func (g *Gateway) loop(ctx context.Context, r *reconciler, msgs <-chan watchMsg, fatal <-chan error) error {
	have := map[string]bool{}
	full, dirty := true, false
	var since time.Time // when the oldest unapplied change arrived
	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	var expiryAt time.Time
	poll := time.NewTicker(g.cfg.PollInterval)
	defer poll.Stop()
	handle := func(m watchMsg) {
		var err error
		if m.snapshot {
			have[m.prefix] = true
			err = r.mirror.replace(m.prefix, m.kvs)
			full = true
		} else {
			for _, ev := range m.events {
				err = errors.Join(err, r.mirror.apply(ev))
			}
		}
		if err != nil {
			g.log.Warn("ignoring undecodable records", "err", err)
		}
		if !dirty {
			since = time.Now()
		}
		dirty = true
	}
	for {
		select {
		case <-ctx.Done():
			if len(have) == 2 {
				if err := r.poll(); err != nil {
					g.log.Warn("final device read failed", "err", err)
				}
			}
			r.sess.closeAll(r.now())
			return nil
		case err := <-fatal:
			r.sess.closeAll(r.now())
			return err
		case m := <-msgs:
			handle(m)
		drain:
			for {
				select {
				case m := <-msgs:
					handle(m)
				default:
					break drain
				}
			}
		case <-expiry.C:
			if !dirty {
				since = time.Now()
				if !expiryAt.IsZero() {
					since = expiryAt
				}
			}
			dirty = true
		case <-poll.C:
			if len(have) == 2 {
				if err := r.poll(); err != nil {
					g.log.Warn("session poll failed", "err", err)
				}
			}
		}
		if !dirty || len(have) < 2 {
			continue
		}
		next, err := r.converge(full)
		if err != nil {
			g.metrics.reconciles.WithLabelValues("error").Inc()
			g.log.Error("reconcile failed; retrying with a full resync", "err", err)
			full = true
			expiry.Reset(time.Second)
			continue
		}
		g.metrics.reconciles.WithLabelValues("ok").Inc()
		g.metrics.lag.Observe(time.Since(since).Seconds())
		full, dirty = false, false
		expiryAt = next
		if !next.IsZero() {
			// Wake at the next expiry, and at least every minute in case
			// the wall clock jumps.
			expiry.Reset(min(max(next.Sub(r.now()), 0), time.Minute))
		}
	}
}

// pump feeds one prefix's watch to the reconciler: a full listing at
// start and after every snapshot restore, then the changes.
func (g *Gateway) pump(ctx context.Context, prefix string, out chan<- watchMsg) error {
	w, kvs, _, err := g.cfg.Cluster.Watch(prefix)
	if err != nil {
		return err
	}
	defer func() { w.Close() }()
	send := func(m watchMsg) bool {
		select {
		case out <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !send(watchMsg{prefix: prefix, snapshot: true, kvs: kvs}) {
		return nil
	}
	for {
		evs, err := w.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		reset := false
		for _, e := range evs {
			reset = reset || e.Type == cluster.EventReset
		}
		if reset {
			w.Close()
			if w, kvs, _, err = g.cfg.Cluster.Watch(prefix); err != nil {
				return err
			}
			if !send(watchMsg{prefix: prefix, snapshot: true, kvs: kvs}) {
				return nil
			}
			continue
		}
		if !send(watchMsg{prefix: prefix, events: evs}) {
			return nil
		}
	}
}

// Close stops Run, removes the interface and ferry's table, and restores
// the runtime memory limit. It is idempotent.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		g.cancel()
		g.runWG.Wait()
		var errs []error
		if g.dev != nil {
			errs = append(errs, g.dev.Close())
		}
		if g.fw != nil {
			errs = append(errs, g.fw.Close())
		}
		if g.mon != nil {
			errs = append(errs, g.mon.conn.CloseLasting())
		}
		if g.fwd != nil {
			g.fwd.close()
		}
		if g.grantNL != nil {
			errs = append(errs, g.grantNL.Close())
		}
		if g.ct != nil {
			errs = append(errs, g.ct.Close())
		}
		g.metrics.unregister()
		if g.prevMem >= 0 {
			debug.SetMemoryLimit(g.prevMem)
		}
		g.closeErr = errors.Join(errs...)
	})
	return g.closeErr
}
