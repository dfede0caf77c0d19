package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Node is one member of a ferry cluster. All methods are safe for concurrent
// use. Close stops it; it is idempotent and waits for every goroutine.
type Node struct {
	cfg    Config
	log    *slog.Logger
	advert string

	raft *raft.Raft
	fsm  *fsm
	// started is closed once Raft and the batcher exist: the listener
	// serves forwarded requests before that, as soon as New opens it.
	started  chan struct{}
	hub      *watchHub
	logStore *raftboltdb.BoltStore
	snaps    *raft.FileSnapshotStore
	trans    *raft.NetworkTransport
	mux      *mux
	fwd      *forwarder
	svc      services // registered by HandleService
	authz    *authz
	// cert is the node's current certificate; renewal swaps it.
	cert atomic.Pointer[tls.Certificate]
	// renewAfter delays the next renewal attempt after a failure; only
	// tendMembership touches it.
	renewAfter time.Time
	batcher    *batcher
	metrics    *metrics
	health     *peerHealth
	peerLog    *peerLog // Raft's failures to reach peers, one line per interval
	dirLock    *dirLock // held from before the first read of DataDir until cleanup

	// leaderReady reports whether this node leads and has committed an
	// entry of its own term, so its commit index is current (needed for
	// linearizable reads).
	leaderReady atomic.Bool
	// leaderIdx is the leader's index as this follower last learned it.
	leaderIdx leaderIndex

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New opens (or creates) the node's stores under cfg.DataDir, starts its
// listener and Raft, and bootstraps a single-node cluster when cfg.Bootstrap
// is set and there is no state yet. It does not wait for a leader; see
// WaitLeader.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), hub: newWatchHub(), started: make(chan struct{}), authz: newAuthz()}
	check := peerChecker(n.checkPeer)
	n.authz.check.Store(&check)
	cert := cfg.Certificate
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errNoLeaf, err)
		}
		cert.Leaf = leaf
	}
	n.cert.Store(&cert)
	n.peerLog = newPeerLog(n.log, DefaultPeerLogInterval, nil)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			n.cleanup()
		}
	}()

	// 1. Stores: the state file, the Raft log and stable store, snapshots.
	// The data directory's lock comes first: a second process must not
	// read, let alone discard, the files of a running node.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	var err error
	if n.dirLock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	statePath := filepath.Join(cfg.DataDir, "state.db")
	if err := n.discardUncleanState(statePath); err != nil {
		return nil, err
	}
	if n.fsm, err = openFSM(statePath, n.hub); err != nil {
		return nil, err
	}
	configChanged := make(chan struct{}, 1)
	n.fsm.onConfig = func() {
		select {
		case configChanged <- struct{}{}:
		default:
		}
	}
	n.logStore, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db"), NoSync: cfg.NoSync})
	if err != nil {
		return nil, fmt.Errorf("opening raft log: %w", err)
	}
	n.snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, newHclog(n.log, "snapshot"))
	if err != nil {
		return nil, fmt.Errorf("opening snapshot store: %w", err)
	}
	if err := n.catchUpFromSnapshot(); err != nil {
		return nil, err
	}

	// 2. The listener, shared by Raft and forwarding, and the transport.
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.BindAddr); err != nil {
			return nil, fmt.Errorf("listening on %s: %w", cfg.BindAddr, err)
		}
	}
	n.advert = cfg.AdvertiseAddr
	if n.advert == "" {
		n.advert = ln.Addr().String()
	}
	serverTLS, clientTLS := cfg.tlsConfigs(n.certificate)
	d := &dialer{clientTLS: clientTLS, dial: cfg.Dial}
	n.fwd = newForwarder(d)
	n.mux = newMux(ln, serverTLS, n.log, n.acceptRaft, func(c net.Conn, cert *x509.Certificate) {
		pc := &peerConn{cert: cert}
		n.authz.track(c, pc)
		defer n.authz.untrack(c)
		serveForward(n.ctx, c, cert, n.checkForward, n.handleForward)
	})
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &streamLayer{m: n.mux, d: d, addr: advertiseAddr(n.advert)},
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  newPeerHclog(n.log, "raft-net", n.peerLog),
	})

	// 3. Raft itself.
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = newPeerHclog(n.log, "raft", n.peerLog)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.BatchApplyCh = true
	// The state file survives restarts with its applied index, so there is
	// nothing to restore at start; Raft replays only newer entries.
	rc.NoSnapshotRestoreOnStart = true
	notify := make(chan bool, 8)
	rc.NotifyCh = notify
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raft config: %w", err)
	}
	// Replication reads back the entries the leader has just written: a
	// cache of the newest ones spares a bbolt read and a msgpack decode of
	// each. It holds one AppendEntries RPC's worth (MaxAppendEntries), so
	// its memory stays a small multiple of what replication holds anyway.
	logs, err := raft.NewLogCache(rc.MaxAppendEntries, n.logStore)
	if err != nil {
		return nil, fmt.Errorf("raft log cache: %w", err)
	}
	n.raft, err = raft.NewRaft(rc, n.fsm, logs, n.logStore, n.snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("starting raft: %w", err)
	}
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(n.logStore, n.logStore, n.snaps)
		if err != nil {
			return nil, fmt.Errorf("checking raft state: %w", err)
		}
		if !has {
			boot := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: raft.ServerAddress(n.advert)}}}
			if err := n.raft.BootstrapCluster(boot).Error(); err != nil {
				return nil, fmt.Errorf("bootstrapping cluster: %w", err)
			}
			n.log.Info("bootstrapped new cluster")
		}
	}

	// The listener accepts only now that Raft exists: a peer's RPC that
	// came in before (the leader redialling a restarted follower) found no
	// Raft to check its membership against, was refused as "not started",
	// and Raft's transport logged the refusal as an ERROR. Connections
	// that arrived meanwhile wait in the listen backlog.
	n.mux.start()

	// 4. Background work: batching writes, following leadership, metrics.
	n.batcher = newBatcher(n.raft)
	n.health = newPeerHealth(n.raft, n.peerLog)
	n.metrics = newMetrics(n)
	if cfg.Registerer != nil {
		if err := n.metrics.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	n.goRun(func() { n.batcher.run(n.ctx) })
	n.goRun(func() { n.followLeadership(notify) })
	n.goRun(func() { n.followRevocations(configChanged) })
	n.goRun(n.tendMembership)
	n.goRun(n.probeLeader)
	n.goRun(n.advertiseCodec)
	close(n.started)
	ok = true
	return n, nil
}

func (n *Node) goRun(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// cleanMarker is written at a clean Close, once the state file is synced.
const cleanMarker = "state.clean"

// discardUncleanState removes a state file that was not closed cleanly: it
// is written without fsync, so after a crash it may be torn. The newest
// snapshot and the Raft log, both durable, rebuild it.
func (n *Node) discardUncleanState(path string) error {
	marker := filepath.Join(n.cfg.DataDir, cleanMarker)
	_, err := os.Stat(marker)
	switch {
	case err == nil:
		return os.Remove(marker) // from now on, a crash leaves no marker
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("checking %s: %w", marker, err)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	n.log.Warn("state file was not closed cleanly; rebuilding it from the snapshot and the raft log")
	return os.Remove(path)
}

// markClean records that the state file was synced and closed.
func (n *Node) markClean() {
	marker := filepath.Join(n.cfg.DataDir, cleanMarker)
	f, err := os.OpenFile(marker, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err == nil {
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = syncDir(n.cfg.DataDir)
	}
	if err != nil {
		n.log.Warn("could not mark state clean; it will be rebuilt at next start", "err", err)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// catchUpFromSnapshot restores the state file from the newest snapshot when
// the file is older than it (a crash between installing a snapshot and
// restoring it): the log entries in between may already be compacted.
func (n *Node) catchUpFromSnapshot() error {
	metas, err := n.snaps.List()
	if err != nil || len(metas) == 0 {
		return err
	}
	m := metas[0]
	if n.fsm.applied.Load() >= m.Index {
		return nil
	}
	_, rc, err := n.snaps.Open(m.ID)
	if err != nil {
		return fmt.Errorf("opening snapshot %s: %w", m.ID, err)
	}
	if err := n.fsm.Restore(rc); err != nil {
		return err
	}
	return n.fsm.setApplied(m.Index)
}

// followLeadership tracks this node's leadership. A new leader commits a
// barrier before serving linearizable reads.
func (n *Node) followLeadership(notify <-chan bool) {
	for {
		select {
		case <-n.ctx.Done():
			return
		case leader := <-notify:
			n.leaderReady.Store(false)
			if !leader {
				n.log.Info("lost leadership")
				continue
			}
			n.log.Info("became leader")
			if err := n.raft.Barrier(n.cfg.WriteTimeout).Error(); err != nil {
				n.log.Warn("leader barrier failed", "err", err)
				continue
			}
			if n.raft.State() == raft.Leader {
				n.leaderReady.Store(true)
				ctx, cancel := n.writeCtx(n.ctx)
				if err := n.noteKnown(ctx, n.memberIDs()...); err != nil {
					n.log.Warn("recording the members as admitted failed", "err", err)
				}
				cancel()
			}
		}
	}
}

// ID returns the node's ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// Addr returns the cluster address other nodes dial.
func (n *Node) Addr() string { return n.advert }

// IsLeader reports whether this node is the Raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the current leader's ID and address, empty if unknown.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// WaitLeader blocks until a leader is known or ctx ends.
func (n *Node) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if id, _ := n.Leader(); id != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrNoQuorum, ctx.Err())
		case <-n.ctx.Done():
			return ErrClosed
		case <-t.C:
		}
	}
}

// Close stops the node without leaving the cluster: on restart it rejoins
// with its data. Close is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		if n.raft != nil {
			if err := n.raft.Shutdown().Error(); err != nil {
				n.closeErr = err
			}
		}
		n.cleanup()
	})
	return n.closeErr
}

func (n *Node) cleanup() {
	n.cancel()
	if n.health != nil {
		n.health.stop(n.raft)
	}
	if n.trans != nil {
		n.trans.Close()
	} else if n.mux != nil {
		n.mux.close()
	}
	if n.fwd != nil {
		n.fwd.close()
	}
	n.wg.Wait()
	if n.metrics != nil && n.cfg.Registerer != nil {
		n.metrics.unregister(n.cfg.Registerer)
	}
	if n.logStore != nil {
		n.logStore.Close()
	}
	if n.fsm != nil {
		if err := n.fsm.close(); err == nil && n.raft != nil {
			n.markClean()
		}
	}
	n.dirLock.release()
}

// writeCtx bounds ctx by the configured write timeout.
func (n *Node) writeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, n.cfg.WriteTimeout)
}

// propose commits one encoded command, on this node if it leads, else through
// the leader. It retries only what cannot have taken effect, until the write
// timeout, then fails with ErrNoQuorum.
func (n *Node) propose(ctx context.Context, data []byte) (interface{}, error) {
	ctx, cancel := n.writeCtx(ctx)
	defer cancel()
	start := time.Now()
	defer func() { n.metrics.applyLatency.Observe(time.Since(start).Seconds()) }()
	for {
		if n.ctx.Err() != nil {
			return nil, ErrClosed
		}
		var res interface{}
		var err error
		if n.raft.State() == raft.Leader {
			res, err = n.batcher.submit(ctx, data)
		} else if _, addr := n.Leader(); addr != "" {
			var out []byte
			n.metrics.forwarded.Inc()
			if out, err = n.fwd.call(ctx, addr, fwdApply, data); err == nil {
				res, err = decodeResult(out)
			}
		} else {
			err = ErrNotLeader
		}
		if err == nil {
			if e, ok := res.(error); ok {
				return nil, e
			}
			return res, nil
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, errNotSent) {
			return nil, err
		}
		if werr := n.waitRetry(ctx); werr != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoQuorum, err)
		}
	}
}

// waitRetry pauses briefly before another attempt, or fails when ctx ends.
func (n *Node) waitRetry(ctx context.Context) error {
	t := time.NewTimer(25 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-n.ctx.Done():
		return ErrClosed
	case <-t.C:
		return nil
	}
}

// checkForward is the per-request check of forwarded requests: the peer
// must be a current member with a valid, unrevoked certificate.
func (n *Node) checkForward(req forwardRequest) error {
	select {
	case <-n.started:
	case <-n.ctx.Done():
		return ErrNotLeader
	}
	if err := n.allowed(req.cert, false, req.kind); err != nil {
		n.refused(req.cert, req.remote, opName(req.kind), err)
		return err
	}
	return nil
}

// handleForward serves requests forwarded by followers, and leave requests
// of nodes. The peer passed checkForward.
func (n *Node) handleForward(ctx context.Context, req forwardRequest) ([]byte, error) {
	kind, payload := req.kind, req.payload
	// A node starting or stopping has done nothing with the request: the
	// follower asks again, of whichever node leads then.
	if n.ctx.Err() != nil {
		return nil, ErrNotLeader
	}
	select {
	case <-n.started:
	case <-ctx.Done():
		return nil, ErrNotLeader
	case <-n.ctx.Done():
		return nil, ErrNotLeader
	}
	switch kind {
	case fwdService:
		n.serveService(ctx, req)
		return nil, nil
	case fwdLeave:
		return nil, n.leave(ctx, req, string(payload))
	case fwdRenew:
		return n.renewFor(ctx, req)
	}
	if n.raft.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	var proof []byte
	if adminKinds[kind] {
		d := &decoder{b: payload}
		proof = d.bytes(maxProofLen, "proof")
		if d.err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, d.err)
		}
		payload = d.b
	}
	switch kind {
	case fwdApply:
		c, err := decodeCommand(payload)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if c.typ == cmdBatch {
			return nil, fmt.Errorf("%w: batches are formed by the leader", ErrInvalid)
		}
		res, err := n.batcher.submit(ctx, payload)
		if errors.Is(err, ErrClosed) && !errors.Is(err, ErrOutcomeUnknown) {
			return nil, ErrNotLeader // queued, never proposed: this node stopped
		}
		if err != nil {
			return nil, err
		}
		return encodeResult(res)
	case fwdReadIndex:
		idx, err := n.leaderReadIndex(ctx)
		if err != nil {
			return nil, err
		}
		return u64Key(idx), nil
	case fwdAddVoter, fwdAddNonvoter:
		d := &decoder{b: payload}
		id, addr := string(d.bytes(MaxKeyLen, "id")), string(d.bytes(MaxKeyLen, "addr"))
		if d.err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, d.err)
		}
		if err := n.authorizeForward(ctx, req, id, proof); err != nil {
			return nil, err
		}
		return nil, n.addNonvoterLocal(ctx, id, addr)
	case fwdRemove:
		id := string(payload)
		if err := n.authorizeForward(ctx, req, id, proof); err != nil {
			return nil, err
		}
		return nil, n.removeLocal(ctx, id)
	case fwdRestore:
		if err := n.authorizeForward(ctx, req, "", proof); err != nil {
			return nil, err
		}
		return nil, n.restoreLocal(ctx, req.stream)
	case fwdPromote:
		return nil, n.promoteLocal(ctx, req)
	}
	return nil, fmt.Errorf("%w: unknown forward kind %d", ErrInvalid, kind)
}

// maxProofLen bounds the proof a forwarded request carries.
const maxProofLen = 4 << 10

// acceptRaft wraps an accepted Raft connection so that every read checks
// its peer, and tracks it so that it is closed when the peer is removed.
func (n *Node) acceptRaft(c net.Conn, cert *x509.Certificate) net.Conn {
	cc := &checkedConn{Conn: c, n: n, cert: cert, remote: c.RemoteAddr().String()}
	n.authz.track(cc, &peerConn{cert: cert, raft: true})
	return cc
}

// memberIDs returns the IDs in this node's latest configuration.
func (n *Node) memberIDs() []string {
	var ids []string
	for _, s := range n.raft.GetConfiguration().Configuration().Servers {
		ids = append(ids, string(s.ID))
	}
	return ids
}
