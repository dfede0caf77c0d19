package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ferryvpn/ferry/profiles"
)

// Errors of host grants.
var (
	// ErrNotClient is returned by the forwarder's grants when the asking
	// address is not a valid client of this node.
	ErrNotClient = errors.New("tunnel: not a client of this node")
	// ErrGrantFailed is returned when a grant could not be put in force in
	// the kernel; the answer is then not given.
	ErrGrantFailed = errors.New("tunnel: granting resolved addresses failed")
)

// grantClient is a valid client as the forwarder sees it: its peer, its
// addresses and its profile's compiled policy.
type grantClient struct {
	peer   string
	v4, v6 netip.Addr
	pol    *policy
}

// grantKey names the grants of one client address toward one destination
// (both of the same family).
type grantKey struct{ client, dst netip.Addr }

// grantEntry is what the answers granted one client toward one
// destination: the names that resolved to it, each until its TTL plus the
// grace, and the set elements in the kernel with their expiry.
type grantEntry struct {
	peer    string
	profile string
	version uint64
	pol     *policy // the policy the names were last granted under
	names   map[string]time.Time
	elems   map[svc]time.Time
}

// grantOp is one set element to add (with a timeout) or to remove.
type grantOp struct {
	v6         bool
	start, end []byte
	timeout    time.Duration
	del        bool
}

// grants turns DNS answers into per-client nftables set elements with
// timeouts, and keeps them right as clients come, go and change profile.
//
// The kernel's elements are the enforcement; this is the record of what
// was programmed (to refresh, move and remove elements without reading
// the kernel) and of the names behind them (for flow records, and to keep
// connections to names a new profile version still allows).
type grants struct {
	// grace is added to each record's TTL (the client may use an answer
	// until its TTL ends, plus clock skew and retransmits).
	grace time.Duration
	// retain keeps expired names for naming late flow records.
	retain time.Duration
	now    func() time.Time // the kernel's timeouts run on real time
	log    *slog.Logger
	w      *grantWriter

	// share, when set, hands every grant to the cluster (grantSharer).
	share func(peer, name string, until map[netip.Addr]time.Time)

	mu      sync.Mutex // guards view, byPeer, entries and shared
	view    map[netip.Addr]*grantClient
	byPeer  map[string]*grantClient
	entries map[grantKey]*grantEntry
	// shared are the grants other nodes (and this one) shared through
	// the cluster: peer -> name -> address -> until.
	shared map[string]map[string]map[netip.Addr]time.Time
}

func newGrants(w *grantWriter, grace, retain time.Duration, log *slog.Logger) *grants {
	return &grants{grace: grace, retain: retain, now: time.Now, log: log, w: w,
		view: map[netip.Addr]*grantClient{}, byPeer: map[string]*grantClient{}, entries: map[grantKey]*grantEntry{},
		shared: map[string]map[string]map[netip.Addr]time.Time{}}
}

// client returns the valid client holding addr, or nil.
func (g *grants) client(addr netip.Addr) *grantClient {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.view[addr.Unmap()]
}

// answer is one address of a DNS answer and its TTL.
type answer struct {
	addr netip.Addr
	ttl  time.Duration
}

// grant puts the answered addresses of name in force for the client at
// src before returning: each address its profile's host rules admit for
// name gets set elements until the TTL plus the grace. It returns the
// number of addresses granted.
func (g *grants) grant(src netip.Addr, name string, ans []answer) (int, error) {
	g.mu.Lock()
	c := g.view[src.Unmap()]
	if c == nil {
		g.mu.Unlock()
		return 0, ErrNotClient
	}
	if len(c.pol.hostRules(name)) == 0 {
		g.mu.Unlock()
		return 0, nil
	}
	name = profiles.NormalizeHost(name)
	now := g.now()
	until := make(map[netip.Addr]time.Time, len(ans))
	for _, a := range ans {
		if t := now.Add(a.ttl + g.grace); t.After(until[a.addr]) {
			until[a.addr] = t
		}
	}
	ops, n := g.grantLocked(c, name, until, now)
	peer, share := c.peer, g.share
	var done chan error
	if len(ops) > 0 {
		done = g.w.submit(ops)
	}
	g.mu.Unlock()
	if done != nil {
		if err := g.w.wait(done); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrGrantFailed, err)
		}
	}
	if share != nil && n > 0 {
		share(peer, name, until)
	}
	return n, nil
}

// grantLocked records that name resolved to the addresses until the
// given instants for client c and returns the kernel operations and the
// number of addresses of a family the client has.
func (g *grants) grantLocked(c *grantClient, name string, until map[netip.Addr]time.Time, now time.Time) ([]grantOp, int) {
	var ops []grantOp
	var rules []int // the client's host rules admitting name, found once
	n := 0
	for addr, t := range until {
		client := c.v4
		if addr.Is6() {
			client = c.v6
		}
		if !client.IsValid() || !t.After(now) {
			continue
		}
		k := grantKey{client, addr}
		e := g.entries[k]
		if e != nil && e.peer != c.peer {
			// The address was another peer's: drop its grants first.
			ops = append(ops, g.syncLocked(k, e, c, now)...)
			e = g.entries[k]
		}
		if e == nil {
			e = &grantEntry{peer: c.peer, profile: c.pol.Name, version: c.pol.Version, pol: c.pol,
				names: map[string]time.Time{}, elems: map[svc]time.Time{}}
			g.entries[k] = e
		}
		if t.After(e.names[name]) {
			e.names[name] = t
		}
		n++
		if e.pol != c.pol || e.version != c.pol.Version || e.profile != c.pol.Name {
			ops = append(ops, g.syncLocked(k, e, c, now)...)
			continue
		}
		if rules == nil {
			rules = c.pol.hostRules(name)
		}
		ops = g.extendLocked(k, e, rules, t, now, ops)
	}
	return ops, n
}

// extendLocked is syncLocked for one more answer to an entry already in
// line with the client's policy: only the elements of the pieces of the
// answered name's rules can change, each to the answer's expiry t when
// its element is gone or t extends it by more than half the grace. (The
// other names' answers cannot ask for more: each left its pieces' elements
// at most half the grace short of it, so an element the new answer
// extends by more than that ends with the new answer.) It costs the
// pieces of one name instead of every name the destination ever answered
// for: many names behind one load balancer share an entry.
func (g *grants) extendLocked(k grantKey, e *grantEntry, rules []int, t, now time.Time, ops []grantOp) []grantOp {
	v6 := k.dst.Is6()
	pieces := e.pol.Hosts4
	if v6 {
		pieces = e.pol.Hosts6
	}
	for _, p := range pieces {
		if !intersects(p.rules, rules) {
			continue
		}
		if have, ok := e.elems[p.svc]; ok && have.After(now) && !have.Before(t.Add(-g.grace/2)) {
			continue
		}
		start, end := grantElem(k.client, k.dst, p.svc)
		ops = append(ops, grantOp{v6: v6, start: start, end: end, timeout: t.Sub(now)})
		e.elems[p.svc] = t
	}
	return ops
}

// syncLocked brings one entry's elements in line with its names under the
// client's current policy (c nil: the client is gone), returning the
// kernel operations. Elements refresh only when the new expiry is more
// than half the grace past the programmed one, so a busy name costs no
// netlink message per query.
func (g *grants) syncLocked(k grantKey, e *grantEntry, c *grantClient, now time.Time) []grantOp {
	v6 := k.dst.Is6()
	switch {
	case c == nil:
		// Gone (revoked, expired): nothing is granted; the names stay
		// until retain, to name its last flows.
	case c.peer != e.peer:
		// The address went to another peer: nothing of the old one's.
		clear(e.names)
		e.peer, e.profile, e.version, e.pol = c.peer, c.pol.Name, c.pol.Version, c.pol
	case c.pol.Version != e.version || c.pol.Name != e.profile:
		e.profile, e.version, e.pol = c.pol.Name, c.pol.Version, c.pol
	default:
		e.pol = c.pol // the same version, compiled again
	}
	want := map[svc]time.Time{}
	if c != nil && len(e.names) > 0 {
		pieces := c.pol.Hosts4
		if v6 {
			pieces = c.pol.Hosts6
		}
		for name, until := range e.names {
			if !until.After(now) {
				continue
			}
			rules := c.pol.hostRules(name)
			for _, p := range pieces {
				if intersects(p.rules, rules) && until.After(want[p.svc]) {
					want[p.svc] = until
				}
			}
		}
	}
	var ops []grantOp
	for s, exp := range e.elems {
		if _, ok := want[s]; ok {
			continue
		}
		delete(e.elems, s)
		if exp.Add(time.Second).After(now) {
			start, end := grantElem(k.client, k.dst, s)
			ops = append(ops, grantOp{v6: v6, start: start, end: end, del: true})
		}
	}
	for s, until := range want {
		if have, ok := e.elems[s]; ok && have.After(now) && !have.Before(until.Add(-g.grace/2)) {
			continue
		}
		start, end := grantElem(k.client, k.dst, s)
		ops = append(ops, grantOp{v6: v6, start: start, end: end, timeout: until.Sub(now)})
		e.elems[s] = until
	}
	for name, until := range e.names {
		if until.Add(g.retain).Before(now) {
			delete(e.names, name)
		}
	}
	if len(e.names) == 0 && len(e.elems) == 0 {
		delete(g.entries, k)
	}
	return ops
}

func intersects(a, b []int) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// update installs the valid clients after a convergence and re-syncs the
// entries of clients that left, changed peer or changed profile version.
// With reset the table was rebuilt and every element is programmed again.
// It does not wait for the kernel: a gone client is already out of the
// client map, and later grants queue behind these changes.
func (g *grants) update(view map[netip.Addr]*grantClient, reset bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.view = view
	old := g.byPeer
	g.byPeer = make(map[string]*grantClient, len(view))
	for _, c := range view {
		g.byPeer[c.peer] = c
	}
	now := g.now()
	var ops []grantOp
	// Peers new here (issued, or a node that just started) get what the
	// cluster shared for them.
	for peer, names := range g.shared {
		c := g.byPeer[peer]
		if c == nil || (old[peer] != nil && !reset) {
			continue
		}
		for name, until := range names {
			o, _ := g.grantLocked(c, name, until, now)
			ops = append(ops, o...)
		}
	}
	for k, e := range g.entries {
		c := view[k.client]
		if reset {
			clear(e.elems)
		} else if c != nil && c.peer == e.peer && c.pol.Version == e.version && c.pol.Name == e.profile {
			continue
		}
		ops = append(ops, g.syncLocked(k, e, c, now)...)
	}
	if len(ops) > 0 {
		done := g.w.submit(ops)
		go func() {
			if err := g.w.wait(done); err != nil {
				g.log.Error("updating host grants failed", "err", err)
			}
		}()
	}
}

// applyShared grants what a node shared through the cluster: the
// addresses name resolved to for peer, each until its instant. The name
// must still be one the peer's profile admits here.
func (g *grants) applyShared(peer, name string, until map[netip.Addr]time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := g.shared[peer]
	if names == nil {
		names = map[string]map[netip.Addr]time.Time{}
		g.shared[peer] = names
	}
	m := names[name]
	if m == nil {
		m = map[netip.Addr]time.Time{}
		names[name] = m
	}
	for a, t := range until {
		if t.After(m[a]) {
			m[a] = t
		}
	}
	c := g.byPeer[peer]
	if c == nil || len(c.pol.hostRules(name)) == 0 {
		return
	}
	ops, _ := g.grantLocked(c, name, until, g.now())
	if len(ops) > 0 {
		done := g.w.submit(ops)
		go func() {
			if err := g.w.wait(done); err != nil {
				g.log.Error("programming shared host grants failed", "err", err)
			}
		}()
	}
}

// expire forgets what has aged out (the kernel has already dropped the
// elements) and names kept past retain.
func (g *grants) expire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	for k, e := range g.entries {
		for s, exp := range e.elems {
			if !exp.After(now) {
				delete(e.elems, s)
			}
		}
		for name, until := range e.names {
			if until.Add(g.retain).Before(now) {
				delete(e.names, name)
			}
		}
		if len(e.names) == 0 && len(e.elems) == 0 {
			delete(g.entries, k)
		}
	}
	for peer, names := range g.shared {
		for name, until := range names {
			for a, t := range until {
				if !t.After(now) {
					delete(until, a)
				}
			}
			if len(until) == 0 {
				delete(names, name)
			}
		}
		if len(names) == 0 {
			delete(g.shared, peer)
		}
	}
}

// host names the host rule and the name whose answer admitted a
// connection from client to dst with proto and port, for flow records:
// the latest answer among those the rule admits. It ignores expiry (a
// connection outlives the grant that opened it).
func (g *grants) host(client, dst netip.Addr, proto uint8, port uint16) (name string, rule int, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entries[grantKey{client, dst}]
	if e == nil || e.pol == nil {
		return "", -1, false
	}
	var best time.Time
	for n, until := range e.names {
		if r, found := e.pol.hostRuleAdmits(n, dst, proto, port); found && until.After(best) {
			name, rule, ok, best = n, r, true, until
		}
	}
	return name, rule, ok
}

// allows reports whether a connection from client to dst is one that an
// answer for a name pol's host rules still admit opened (expired or not):
// a profile edit that keeps the name keeps the connection.
func (g *grants) allows(client, dst netip.Addr, proto uint8, port uint16, pol *policy) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entries[grantKey{client, dst}]
	if e == nil || pol == nil {
		return false
	}
	if c := g.view[client]; c == nil || c.peer != e.peer {
		return false
	}
	for n := range e.names {
		if _, ok := pol.hostRuleAdmits(n, dst, proto, port); ok {
			return true
		}
	}
	return false
}

// hostRuleAdmits returns the first host rule that admits name with proto
// and port toward dst's family.
func (p *policy) hostRuleAdmits(name string, dst netip.Addr, proto uint8, port uint16) (int, bool) {
	if proto != protoTCP && proto != protoUDP {
		port = 0
	}
	for _, i := range p.hostRules(name) {
		for _, s := range ruleServices(p.Rules[i], dst.Is4()) {
			if s.ProtoFrom <= proto && proto <= s.ProtoTo && s.PortFrom <= port && port <= s.PortTo {
				return i, true
			}
		}
	}
	return -1, false
}

// count returns the number of programmed elements (for metrics and tests).
func (g *grants) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, e := range g.entries {
		n += len(e.elems)
	}
	return n
}

// grantWriter programs grant operations over its own netlink socket, one
// batch for every request waiting (group commit): concurrent answers share
// a kernel transaction, and each waits only for the one that carries it.
type grantWriter struct {
	nl         *elemBatch
	set4, set6 []string // set names by shard (hostShard)
	reqs       chan grantReq
	// stopped is closed when run returns: requests then fail instead of
	// waiting for ever.
	stopped chan struct{}
}

// errWriterStopped is returned for grants asked while the gateway stops.
var errWriterStopped = errors.New("tunnel: host grant writer stopped")

type grantReq struct {
	ops  []grantOp
	done chan error
}

func newGrantWriter(nl *elemBatch) *grantWriter {
	w := &grantWriter{nl: nl, reqs: make(chan grantReq, 4096), stopped: make(chan struct{})}
	for k := range hostShards {
		w.set4 = append(w.set4, hostsSetName(ip4, k))
		w.set6 = append(w.set6, hostsSetName(ip6, k))
	}
	return w
}

// submit queues ops; the channel returned receives the outcome (see
// wait).
func (w *grantWriter) submit(ops []grantOp) chan error {
	done := make(chan error, 1)
	select {
	case w.reqs <- grantReq{ops: ops, done: done}:
	case <-w.stopped:
		done <- errWriterStopped
	}
	return done
}

// wait returns the outcome of a submitted request, or an error once the
// writer has stopped.
func (w *grantWriter) wait(done chan error) error {
	select {
	case err := <-done:
		return err
	case <-w.stopped:
		select {
		case err := <-done:
			return err
		default:
			return errWriterStopped
		}
	}
}

// maxBatchOps bounds one transaction (elements per message are chunked
// below the netlink attribute limit).
const maxBatchOps = 4000

// run programs queued requests until stop is closed.
func (w *grantWriter) run(stop <-chan struct{}) {
	defer close(w.stopped)
	for {
		var batch []grantReq
		select {
		case r := <-w.reqs:
			batch = append(batch, r)
		default:
			// Nothing queued, but the answers just released may not have
			// run yet. Yield before sleeping so that they queue their next
			// requests into one batch: a writer asleep on the channel is
			// woken by the first of them into its processor's next slot,
			// and the two hand the processor back and forth (a batch of
			// one each time) for the rest of a 10 ms time slice while the
			// others wait in the run queue. This was the p99 of
			// BenchmarkDNSForwarder.
			runtime.Gosched()
			select {
			case <-stop:
				return
			case r := <-w.reqs:
				batch = append(batch, r)
			}
		}
		n := len(batch[0].ops)
	more:
		for n < maxBatchOps {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
				n += len(r.ops)
			default:
				break more
			}
		}
		if err := w.apply(batch); err != nil && len(batch) > 1 {
			// One bad request must not fail the others: retry alone.
			for _, r := range batch {
				r.done <- w.apply([]grantReq{r})
			}
			continue
		} else {
			for _, r := range batch {
				r.done <- err
			}
		}
	}
}

// apply programs requests in one transaction. A removal is an add (with
// a short timeout) followed by a delete: the add makes the delete succeed
// whether or not the kernel has already timed the element out.
func (w *grantWriter) apply(batch []grantReq) error {
	w.nl.begin()
	for _, r := range batch {
		for _, op := range r.ops {
			k := hostShard(op.start[:len(op.start)/2-4])
			set := w.set4[k]
			if op.v6 {
				set = w.set6[k]
			}
			if op.del {
				w.nl.add(set, false, op.start, op.end, time.Second)
				w.nl.add(set, true, op.start, op.end, 0)
				continue
			}
			w.nl.add(set, false, op.start, op.end, op.timeout)
		}
	}
	if err := w.nl.commit(); err != nil {
		return fmt.Errorf("programming host grants (%s requests): %w", strconv.Itoa(len(batch)), err)
	}
	return nil
}
