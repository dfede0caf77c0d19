package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Defaults of a DNSConfig.
const (
	// DefaultDNSGrace is added to every answer's TTL for the grant: a
	// client may use an answer until its TTL ends, and its clock and
	// retransmits are not ours.
	DefaultDNSGrace = 30 * time.Second
	// DefaultDNSMaxTTL caps the TTL of answers for host rules (rewritten
	// in the answer too), so a grant is re-decided at least this often.
	DefaultDNSMaxTTL = 5 * time.Minute
	// DefaultDNSTimeout bounds one upstream exchange.
	DefaultDNSTimeout = 2 * time.Second
	// DNSPort is where the forwarder listens on the node's tunnel
	// addresses (udp and tcp).
	DNSPort = 53
)

// DNSConfig configures the node's DNS forwarder, which turns answers for
// the names of host rules into permissions before the client sees them.
type DNSConfig struct {
	// Enabled runs the forwarder on the node's tunnel addresses, port 53.
	// Without it, host rules grant nothing (the data plane fails closed).
	Enabled bool
	// Upstreams are the resolvers behind the forwarder (the VPC resolver);
	// default the nameservers of /etc/resolv.conf. A profile's own DNS
	// servers, when it names some, answer the names under its domains
	// (search domains and host rules' domains) instead: split DNS.
	Upstreams []netip.AddrPort
	// Grace is added to each record's TTL for the grant; default 30s.
	Grace time.Duration
	// MaxTTL caps the TTL of answers that grant; default 5 minutes.
	MaxTTL time.Duration
	// Timeout bounds one upstream exchange; default 2s.
	Timeout time.Duration
	// RefuseOthers answers REFUSED for names outside the asking client's
	// profile (its host rules, search domains and host rules' domains)
	// instead of forwarding them. Either way such names grant nothing.
	RefuseOthers bool
}

func (c *DNSConfig) validate() error {
	if !c.Enabled {
		return nil
	}
	for i, u := range c.Upstreams {
		if !u.IsValid() || u.Port() == 0 {
			return fmt.Errorf("tunnel config: dns.upstreams[%d]: want an address and port", i)
		}
	}
	for name, d := range map[string]time.Duration{"grace": c.Grace, "max_ttl": c.MaxTTL, "timeout": c.Timeout} {
		if d < 0 {
			return fmt.Errorf("tunnel config: dns.%s: must not be negative", name)
		}
	}
	return nil
}

func (c *DNSConfig) setDefaults() error {
	if !c.Enabled {
		return nil
	}
	if c.Grace == 0 {
		c.Grace = DefaultDNSGrace
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = DefaultDNSMaxTTL
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultDNSTimeout
	}
	if len(c.Upstreams) == 0 {
		rc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return fmt.Errorf("tunnel config: dns.upstreams: none given and reading /etc/resolv.conf: %w", err)
		}
		for _, s := range rc.Servers {
			if a, err := netip.ParseAddr(s); err == nil {
				c.Upstreams = append(c.Upstreams, netip.AddrPortFrom(a, DNSPort))
			}
		}
		if len(c.Upstreams) == 0 {
			return errors.New("tunnel config: dns.upstreams: none given and none in /etc/resolv.conf")
		}
	}
	return nil
}

// forwarder is the node's DNS forwarder. It answers only valid clients
// of this node (by tunnel source address, which WireGuard's cryptokey
// routing binds to the client's key), forwards their queries, and puts
// the addresses of answers for names their profile's host rules admit in
// force before replying.
type forwarder struct {
	cfg    DNSConfig
	grants *grants
	log    *slog.Logger
	udp    *dns.Client
	tcp    *dns.Client
	// upKey is the cache key's text for the node's upstreams.
	upKey string

	mu      sync.Mutex // guards servers
	servers []*dns.Server

	cacheMu sync.Mutex // guards cache
	cache   map[cacheKey]cacheEntry
}

// maxCache bounds the answer cache (entries).
const maxCache = 20000

// cacheKey is what an answer depends on: the question and the upstreams
// asked (split DNS sends a profile's names to its own servers).
type cacheKey struct {
	name         string
	qtype, class uint16
	upstreams    string
}

// cacheEntry is a positive upstream answer kept for its smallest TTL.
type cacheEntry struct {
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

func newForwarder(cfg DNSConfig, g *grants, log *slog.Logger) *forwarder {
	return &forwarder{cfg: cfg, grants: g, log: log.With("component", "dns"),
		udp: &dns.Client{Net: "udp", Timeout: cfg.Timeout, UDPSize: dns.DefaultMsgSize},
		tcp: &dns.Client{Net: "tcp", Timeout: cfg.Timeout}, cache: map[cacheKey]cacheEntry{}, upKey: fmt.Sprint(cfg.Upstreams)}
}

// cached returns a copy of a live cached answer with its TTLs reduced by
// its age, or nil.
func (f *forwarder) cached(k cacheKey, now time.Time) *dns.Msg {
	f.cacheMu.Lock()
	e, ok := f.cache[k]
	f.cacheMu.Unlock()
	if !ok || !now.Before(e.expires) {
		return nil
	}
	m := e.msg.Copy()
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT {
				h.Ttl -= min(h.Ttl, age)
			}
		}
	}
	return m
}

// store caches a positive, complete answer for its smallest TTL (at most
// MaxTTL).
func (f *forwarder) store(k cacheKey, m *dns.Msg, now time.Time) {
	if m.Rcode != dns.RcodeSuccess || m.Truncated || len(m.Answer) == 0 {
		return
	}
	ttl := uint32(f.cfg.MaxTTL / time.Second)
	for _, rr := range m.Answer {
		ttl = min(ttl, rr.Header().Ttl)
	}
	if ttl == 0 {
		return
	}
	f.cacheMu.Lock()
	defer f.cacheMu.Unlock()
	if len(f.cache) >= maxCache {
		for old, e := range f.cache {
			if len(f.cache) < maxCache && now.Before(e.expires) {
				break
			}
			delete(f.cache, old)
		}
	}
	f.cache[k] = cacheEntry{msg: m.Copy(), stored: now, expires: now.Add(time.Duration(ttl) * time.Second)}
}

// listen opens udp and tcp port 53 on each address.
func (f *forwarder) listen(addrs []netip.Addr) error {
	aps := make([]netip.AddrPort, len(addrs))
	for i, a := range addrs {
		aps[i] = netip.AddrPortFrom(a, DNSPort)
	}
	return f.listenAt(aps)
}

// listenAt opens udp and tcp on each address and port.
func (f *forwarder) listenAt(aps []netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range aps {
		ap := a.String()
		pc, err := net.ListenPacket("udp", ap)
		if err != nil {
			return fmt.Errorf("dns forwarder: listening on udp %s: %w", ap, err)
		}
		f.servers = append(f.servers, &dns.Server{PacketConn: pc, Handler: f})
		l, err := net.Listen("tcp", ap)
		if err != nil {
			return fmt.Errorf("dns forwarder: listening on tcp %s: %w", ap, err)
		}
		f.servers = append(f.servers, &dns.Server{Listener: l, Handler: f})
	}
	return nil
}

// serve runs the listeners until ctx ends.
func (f *forwarder) serve(ctx context.Context) {
	f.mu.Lock()
	servers := f.servers
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.ActivateAndServe(); err != nil && ctx.Err() == nil {
				f.log.Error("dns listener stopped", "err", err)
			}
		}()
	}
	<-ctx.Done()
	f.close()
	wg.Wait()
}

// close shuts the listeners (idempotent).
func (f *forwarder) close() {
	f.mu.Lock()
	servers := f.servers
	f.servers = nil
	f.mu.Unlock()
	for _, s := range servers {
		if err := s.Shutdown(); err != nil {
			// Never activated: close the sockets directly.
			if s.PacketConn != nil {
				s.PacketConn.Close()
			}
			if s.Listener != nil {
				s.Listener.Close()
			}
		}
	}
}

var _ dns.Handler = (*forwarder)(nil)

// ServeDNS answers one query.
func (f *forwarder) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := f.resolve(w.RemoteAddr(), req)
	if err := w.WriteMsg(resp); err != nil {
		f.log.Debug("writing dns answer failed", "err", err)
	}
}

// resolve computes the answer to req from src. An answer that grants is
// returned only after its addresses are in force; if they cannot be put
// in force, the client gets SERVFAIL, never an address it cannot reach.
func (f *forwarder) resolve(src net.Addr, req *dns.Msg) *dns.Msg {
	fail := func(code int) *dns.Msg {
		m := new(dns.Msg)
		m.SetRcode(req, code)
		return m
	}
	from := addrOf(src)
	c := f.grants.client(from)
	if c == nil {
		return fail(dns.RcodeRefused)
	}
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		return fail(dns.RcodeFormatError)
	}
	q := req.Question[0]
	mine := c.pol.inDomains(q.Name)
	if !mine && f.cfg.RefuseOthers {
		return fail(dns.RcodeRefused)
	}
	upstreams, upKey := f.cfg.Upstreams, f.upKey
	if mine && len(c.pol.DNS) > 0 {
		upstreams = make([]netip.AddrPort, len(c.pol.DNS))
		for i, a := range c.pol.DNS {
			upstreams[i] = netip.AddrPortFrom(a, DNSPort)
		}
		upKey = fmt.Sprint(upstreams)
	}
	_, overTCP := src.(*net.TCPAddr)
	key := cacheKey{name: strings.ToLower(q.Name), qtype: q.Qtype, class: q.Qclass, upstreams: upKey}
	now := time.Now()
	resp := f.cached(key, now)
	if resp == nil {
		var err error
		if resp, err = f.exchange(req, upstreams, overTCP); err != nil {
			f.log.Debug("upstream exchange failed", "name", q.Name, "err", err)
			return fail(dns.RcodeServerFailure)
		}
		f.store(key, resp, now)
	}
	resp.Id = req.Id
	resp.Question = req.Question
	if resp.Rcode != dns.RcodeSuccess || (q.Qtype != dns.TypeA && q.Qtype != dns.TypeAAAA && q.Qtype != dns.TypeANY) ||
		len(c.pol.hostRules(q.Name)) == 0 {
		return resp
	}
	ans := answersFor(resp, q.Name, f.cfg.MaxTTL)
	if len(ans) == 0 {
		return resp
	}
	if _, err := f.grants.grant(from, q.Name, ans); err != nil {
		f.log.Warn("granting an answer failed; answering SERVFAIL", "client", from, "name", q.Name, "err", err)
		return fail(dns.RcodeServerFailure)
	}
	return resp
}

// exchange asks the upstreams in turn, over tcp when the client asked
// over tcp or the udp answer was truncated.
func (f *forwarder) exchange(req *dns.Msg, upstreams []netip.AddrPort, overTCP bool) (*dns.Msg, error) {
	q := req.Copy()
	q.Id = dns.Id()
	var errs []error
	for _, u := range upstreams {
		cl := f.udp
		if overTCP {
			cl = f.tcp
		}
		resp, _, err := cl.Exchange(q, u.String())
		if err == nil && resp.Truncated && !overTCP {
			resp, _, err = f.tcp.Exchange(q, u.String())
		}
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("no upstream resolvers")
	}
	return nil, errors.Join(errs...)
}

// answersFor returns the A and AAAA records of resp that answer name,
// following the CNAME chain from it (records owned by other names are an
// upstream's extra and grant nothing), with TTLs capped at maxTTL. The
// capped TTLs are written back into the answer, so the client caches it no
// longer than the grant lasts.
func answersFor(resp *dns.Msg, name string, maxTTL time.Duration) []answer {
	capTTL := uint32(maxTTL / time.Second)
	owners := map[string]bool{strings.ToLower(dns.Fqdn(name)): true}
	for range 16 { // CNAME chains are short; a loop ends here
		grew := false
		for _, rr := range resp.Answer {
			if cn, ok := rr.(*dns.CNAME); ok && owners[strings.ToLower(cn.Hdr.Name)] && !owners[strings.ToLower(cn.Target)] {
				owners[strings.ToLower(cn.Target)] = true
				grew = true
			}
		}
		if !grew {
			break
		}
	}
	var out []answer
	for _, rr := range resp.Answer {
		h := rr.Header()
		if !owners[strings.ToLower(h.Name)] {
			continue
		}
		if h.Ttl > capTTL {
			h.Ttl = capTTL
		}
		var a netip.Addr
		switch r := rr.(type) {
		case *dns.A:
			a, _ = netip.AddrFromSlice(r.A.To4())
		case *dns.AAAA:
			a, _ = netip.AddrFromSlice(r.AAAA.To16())
			if a.Is4In6() {
				continue
			}
		default:
			continue
		}
		if a.IsValid() {
			out = append(out, answer{addr: a, ttl: time.Duration(h.Ttl) * time.Second})
		}
	}
	return out
}

// addrOf returns the IP address of a socket address.
func addrOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
