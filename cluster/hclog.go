package cluster

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// hclogAdapter sends hashicorp/raft's hclog output to slog. Raft is chatty
// at info level, so its info lines are logged at debug, except the few that
// an operator wants (elections, membership). Its per-RPC errors about an
// unreachable peer go through a peerLog: one WARN line per peer per
// interval, with a count, instead of an ERROR per heartbeat.
type hclogAdapter struct {
	l     *slog.Logger
	name  string
	args  []interface{}
	peers *peerLog // shared by every adapter of a node; nil: no aggregation
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHclog(l *slog.Logger, name string) hclog.Logger {
	return &hclogAdapter{l: l, name: name}
}

// newPeerHclog is newHclog with peer failures aggregated by peers.
func newPeerHclog(l *slog.Logger, name string, peers *peerLog) hclog.Logger {
	return &hclogAdapter{l: l, name: name, peers: peers}
}

// peerFailure describes a message in which hashicorp/raft reports a
// failed RPC to a peer.
type peerFailure struct {
	key string // the argument naming the peer
	rpc string // the metric's rpc label
}

// peerFailureMessages are the messages in which hashicorp/raft reports a
// failed RPC to a peer.
var peerFailureMessages = map[string]peerFailure{
	"failed to heartbeat to":                  {"peer", "heartbeat"},
	"failed to appendEntries to":              {"peer", "append_entries"},
	"failed to pipeline appendEntries":        {"peer", "append_entries"},
	"failed to start pipeline replication to": {"peer", "append_entries"},
	"failed to send snapshot to":              {"peer", "install_snapshot"},
	"failed to install snapshot":              {"peer", "install_snapshot"},
	"failed to make requestVote RPC":          {"target", "request_vote"},
	"failed to make requestPreVote RPC":       {"target", "request_vote"},
	"failed to contact":                       {"server-id", "lease"},
}

// DefaultPeerLogInterval is how often at most a node logs that one peer
// is unreachable.
const DefaultPeerLogInterval = 30 * time.Second

// peerLog turns Raft's failures to reach a peer, logged per RPC, into one
// WARN line per peer per interval that counts them: an alert on ERROR
// lines must not page all night for one node down.
type peerLog struct {
	l        *slog.Logger
	interval time.Duration
	now      func() time.Time

	failures *prometheus.CounterVec // by peer address and RPC

	mu    sync.Mutex // guards peers and addrs
	peers map[string]*peerFailures
	addrs map[string]string // server ID to address, learned from Raft
}

// peerFailures are the failures to reach one peer since its last line.
type peerFailures struct {
	last   time.Time // when the last line was logged
	count  int       // failures since then
	logged bool      // a line was logged at all
}

func newPeerLog(l *slog.Logger, interval time.Duration, now func() time.Time) *peerLog {
	if now == nil {
		now = time.Now
	}
	return &peerLog{l: l, interval: interval, now: now, peers: map[string]*peerFailures{}, addrs: map[string]string{},
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_cluster_peer_rpc_failures_total",
			Help: "Raft RPCs this node failed to deliver, by peer address and RPC (heartbeat, append_entries, install_snapshot, request_vote, lease).",
		}, []string{"peer", "rpc"})}
}

// learn records a member's address, so that lines naming the member by ID
// and lines naming it by address count as one peer.
func (p *peerLog) learn(id, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addrs[id] = addr
}

// failure counts one failed RPC to peer (an address, or a server ID when
// byID) and logs a line when the peer's interval has passed (at once for
// the first failure).
func (p *peerLog) failure(peer string, byID bool, rpc, msg string, err any) {
	now := p.now()
	p.mu.Lock()
	if addr, ok := p.addrs[peer]; byID && ok {
		peer = addr
	}
	f := p.peers[peer]
	if f == nil {
		f = &peerFailures{}
		p.peers[peer] = f
	}
	f.count++
	p.failures.WithLabelValues(peer, rpc).Inc()
	if f.logged && now.Sub(f.last) < p.interval {
		// Within the interval: counted, and logged at debug only.
		p.mu.Unlock()
		p.l.Debug(msg, "component", "raft", "peer", peer, "err", fmt.Sprint(err))
		return
	}
	count := f.count
	f.count, f.last, f.logged = 0, now, true
	p.mu.Unlock()
	attrs := []any{"peer", peer, "failures", count, "last", msg}
	if err != nil {
		attrs = append(attrs, "err", fmt.Sprint(err))
	}
	if count > 1 {
		attrs = append(attrs, "interval", p.interval)
	}
	p.l.Warn("cluster peer unreachable", attrs...)
}

// peerName returns a stable name for a peer argument of a raft log line:
// its address.
func (p *peerLog) peerName(v any) string {
	switch s := v.(type) {
	case raft.Server:
		p.learn(string(s.ID), string(s.Address))
		return string(s.Address)
	case *raft.Server:
		p.learn(string(s.ID), string(s.Address))
		return string(s.Address)
	}
	return fmt.Sprint(v)
}

// expandFormats renders hclog.Fmt arguments (a format and its values), which
// slog would print as a literal "[%+v ...]".
func expandFormats(args []interface{}) []interface{} {
	for i, a := range args {
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				args[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	return args
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...interface{}) {
	var lv slog.Level
	switch level {
	case hclog.Trace, hclog.Debug:
		lv = slog.LevelDebug
	case hclog.Info:
		lv = slog.LevelInfo
	case hclog.Warn:
		lv = slog.LevelWarn
	case hclog.Error:
		lv = slog.LevelError
	default:
		return
	}
	if a.peers != nil && (level == hclog.Error || level == hclog.Warn) {
		if pf, ok := peerFailureMessages[msg]; ok {
			if peer, err := argValue(args, pf.key), argValue(args, "error"); peer != nil {
				a.peers.failure(a.peers.peerName(peer), pf.key == "server-id", pf.rpc, msg, err)
				return
			}
		}
	}
	ctx := context.Background()
	if !a.l.Enabled(ctx, lv) {
		return
	}
	all := append([]interface{}{"component", a.name}, a.args...)
	a.l.Log(ctx, lv, msg, expandFormats(append(all, args...))...)
}

// argValue returns the value after key in hclog's key-value arguments.
func argValue(args []interface{}, key string) any {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && strings.EqualFold(k, key) {
			return args[i+1]
		}
	}
	return nil
}

func (a *hclogAdapter) Trace(msg string, args ...interface{}) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...interface{}) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...interface{})  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...interface{})  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...interface{}) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) IsTrace() bool { return false }
func (a *hclogAdapter) IsDebug() bool { return a.l.Enabled(context.Background(), slog.LevelDebug) }
func (a *hclogAdapter) IsInfo() bool  { return a.l.Enabled(context.Background(), slog.LevelInfo) }
func (a *hclogAdapter) IsWarn() bool  { return a.l.Enabled(context.Background(), slog.LevelWarn) }
func (a *hclogAdapter) IsError() bool { return a.l.Enabled(context.Background(), slog.LevelError) }

func (a *hclogAdapter) ImpliedArgs() []interface{} { return a.args }

func (a *hclogAdapter) With(args ...interface{}) hclog.Logger {
	return &hclogAdapter{l: a.l, name: a.name, args: append(append([]interface{}{}, a.args...), args...), peers: a.peers}
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	n := name
	if a.name != "" {
		n = a.name + "." + name
	}
	return &hclogAdapter{l: a.l, name: n, args: a.args, peers: a.peers}
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return &hclogAdapter{l: a.l, name: name, args: a.args, peers: a.peers}
}

func (a *hclogAdapter) SetLevel(hclog.Level) {}

func (a *hclogAdapter) GetLevel() hclog.Level {
	if a.IsDebug() {
		return hclog.Debug
	}
	return hclog.Info
}

func (a *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.l.Handler(), slog.LevelInfo)
}

func (a *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(nil).Writer()
}
