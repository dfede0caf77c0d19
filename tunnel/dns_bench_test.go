package tunnel

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/ferryvpn/ferry/profiles"
)

// BenchmarkDNSForwarder measures the node's DNS forwarder with 10,000
// clients holding grants in a real nftables table (in a network namespace
// of its own), in dnsBenchRounds independent rounds (each builds its table,
// writer and forwarder afresh); the metrics are the medians of the rounds,
// and the details print every round with the machine's load average:
//
//   - grant-p50-ms, grant-p99-ms: the time from the upstream's answer to
//     its addresses being enforced in the kernel, for 10,000 first answers
//     (each needs a netlink transaction), 16 at once. The answer leaves
//     only after that, so enforcement always precedes the answer; this is
//     what the answer waits for.
//   - cpu-us/first-answer, alloc-B/first-answer: the process's CPU time
//     (user and system: the kernel runs a netlink transaction in the
//     sender's system call) and Go heap bytes allocated per first answer
//     in that phase; unlike the latencies, these hardly move with the load
//     of the machine.
//   - queries/s-first-answers, queries/s-repeated: answers per second over
//     real UDP sockets on loopback, every query a name a host rule admits
//     (so each is checked and granted or refreshed), from 2,000 of the
//     clients, with an upstream resolver on loopback behind the
//     forwarder's cache; load generator, forwarder and upstream share the
//     machine's cores.
//   - failed-queries: queries of all rounds that got no answer within 2 s
//     (or not a positive one).
//   - cpu-us/query-repeated: the process's CPU time per query of names in
//     use, the load generator's share included (the upstream is idle: the
//     forwarder's cache answers); the load-independent counterpart of
//     queries/s-repeated.
//   - load1: the one-minute load average, the median of its readings at
//     the start and end of each round.
func BenchmarkDNSForwarder(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for a network namespace and nftables")
	}
	var (
		p50, p99, cpu, alloc, qFirst, qRep, load []float64
		cpuRep                                   []float64
		failed                                   float64
		report                                   strings.Builder
	)
	fmt.Fprintf(&report, "\nDNS forwarder (BenchmarkDNSForwarder): 10,000 clients' grants, %d rounds (each on a fresh table)\n", dnsBenchRounds)
	for range b.N {
		for r := range dnsBenchRounds {
			l0 := loadAverage(b)
			res := dnsBenchRound(b)
			l1 := loadAverage(b)
			p50, p99 = append(p50, res.p50), append(p99, res.p99)
			cpu, alloc = append(cpu, res.cpuUS), append(alloc, res.allocB)
			cpuRep = append(cpuRep, res.cpuRepUS)
			qFirst, qRep = append(qFirst, res.qFirst), append(qRep, res.qRep)
			load = append(load, l0, l1)
			fmt.Fprintf(&report, "  round %d: grant p50 %.2f ms p99 %.2f ms, %.0f us CPU and %.0f B per first answer, queries/s first %.0f repeated %.0f (%.0f us CPU each), load %.1f-%.1f, failed %d\n",
				r+1, res.p50, res.p99, res.cpuUS, res.allocB, res.qFirst, res.qRep, res.cpuRepUS, l0, l1, res.failed)
			failed += float64(res.failed)
		}
	}
	b.ReportMetric(medianOf(p50), "grant-p50-ms")
	b.ReportMetric(medianOf(p99), "grant-p99-ms")
	b.ReportMetric(medianOf(cpu), "cpu-us/first-answer")
	b.ReportMetric(medianOf(alloc), "alloc-B/first-answer")
	b.ReportMetric(medianOf(qFirst), "queries/s-first-answers")
	b.ReportMetric(medianOf(qRep), "queries/s-repeated")
	b.ReportMetric(medianOf(cpuRep), "cpu-us/query-repeated")
	b.ReportMetric(medianOf(load), "load1")
	b.ReportMetric(failed, "failed-queries")
	fmt.Fprintf(&report, "  medians: grant p50 %.2f ms p99 %.2f ms (goal < 5), queries/s repeated %.0f (goal >= 20,000), load %.1f\n",
		medianOf(p50), medianOf(p99), medianOf(qRep), medianOf(load))
	fmt.Println(report.String())
}

// dnsBenchRounds is how many independent rounds BenchmarkDNSForwarder
// takes the medians of.
const dnsBenchRounds = 5

// dnsBenchResult is one round of BenchmarkDNSForwarder.
type dnsBenchResult struct {
	p50, p99      float64 // grant latency, ms
	cpuUS, allocB float64 // per first answer
	cpuRepUS      float64 // per repeated query, generator and upstream included
	qFirst, qRep  float64 // queries/s
	failed        int64
}

// loadAverage returns the machine's one-minute load average.
func loadAverage(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		b.Fatal(err)
	}
	var l float64
	if _, err := fmt.Sscan(string(data), &l); err != nil {
		b.Fatalf("reading /proc/loadavg: %v", err)
	}
	return l
}

// anonNetns returns a new network namespace that has no name: it is
// freed by the kernel when its last reference (the file returned, and
// sockets opened in it) is closed, which the process's exit does however
// it ends. A named one (ip netns add) outlives a benchmark interrupted
// with Ctrl-C, killed, or ended by a timeout, none of which runs its
// deferred or b.Cleanup deletion.
func anonNetns(b testing.TB) *os.File {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		b.Fatal(err)
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		b.Skipf("cannot create a network namespace: %v", err)
	}
	ns, nsErr := os.Open("/proc/thread-self/ns/net")
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked in the new namespace and ends with
		// this goroutine.
		b.Fatalf("returning to the original network namespace: %v", err)
	}
	runtime.UnlockOSThread()
	if nsErr != nil {
		b.Fatal(nsErr)
	}
	return ns
}

// dnsBenchRound builds the table, writer, grants and forwarder of one
// round and measures them.
func dnsBenchRound(b *testing.B) dnsBenchResult {
	nsf := anonNetns(b)
	defer nsf.Close()
	conn := func() *nftables.Conn {
		c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(int(nsf.Fd())), nftables.WithSockOptions(func(c *netlink.Conn) error {
			if err := c.SetWriteBuffer(64 << 20); err != nil {
				return err
			}
			return c.SetReadBuffer(16 << 20)
		}))
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	table := &nftables.Table{Name: "ferrybench", Family: nftables.TableFamilyINet}
	fw := &nftFirewall{conn: conn(), table: table, iface: "fbench0", sets: map[string]string{}, dnsPort: true}
	defer fw.Close()
	pol := compile(profiles.Profile{Name: "eng", Version: 1, Rules: []profiles.Rule{
		{Host: "*.svc.bench.internal", Protocol: "tcp", Ports: []profiles.PortRange{{From: 443, To: 443}}},
		{Host: "db.bench.internal", Protocol: "tcp", Ports: []profiles.PortRange{{From: 5432, To: 5432}}},
	}})
	const nClients = 10000
	clients := map[netip.Addr]string{}
	view := map[netip.Addr]*grantClient{}
	addrs := make([]netip.Addr, nClients)
	for i := range nClients {
		a := netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)})
		addrs[i] = a
		clients[a] = "eng"
		view[a] = &grantClient{peer: fmt.Sprintf("p%d", i), v4: a, pol: &pol}
	}
	if err := fw.Apply(fwChange{Reset: true, Policies: []policy{pol}, AddClients: clients}); err != nil {
		b.Fatal(err)
	}
	nl, err := newElemBatch(table.Name, int(nsf.Fd()))
	if err != nil {
		b.Fatal(err)
	}
	defer nl.Close()
	w := newGrantWriter(nl)
	stop := make(chan struct{})
	defer close(stop)
	go w.run(stop)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := newGrants(w, DefaultDNSGrace, time.Minute, log)
	g.update(view, false)

	// The upstream: answers every name under svc.bench.internal with an
	// address derived from the name, TTL 60.
	up, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	upSrv := &dns.Server{PacketConn: up, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		h := uint32(0)
		for _, c := range q.Name {
			h = h*31 + uint32(c)
		}
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.IPv4(10, 77, byte(h>>8), byte(h))}}
		w.WriteMsg(m)
	})}
	go upSrv.ActivateAndServe()
	defer upSrv.Shutdown()
	upAddr := netip.MustParseAddrPort(up.LocalAddr().String())

	f := newForwarder(DNSConfig{Enabled: true, Upstreams: []netip.AddrPort{upAddr}, Grace: DefaultDNSGrace,
		MaxTTL: DefaultDNSMaxTTL, Timeout: 2 * time.Second}, g, log)
	if err := f.listenAt([]netip.AddrPort{netip.MustParseAddrPort("127.6.0.53:0")}); err != nil {
		b.Fatal(err)
	}
	fwdAddr := f.servers[0].PacketConn.LocalAddr().(*net.UDPAddr)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		f.serve(ctx)
	}()
	defer func() { cancel(); <-served }()

	// 1. Every client's first answer: a netlink transaction each
	// (group-committed), 16 at once.
	var res dnsBenchResult
	lat := make([]time.Duration, nClients)
	var next atomic.Int64
	var wg sync.WaitGroup
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime(b)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= nClients {
					return
				}
				ans := []answer{{netip.AddrFrom4([4]byte{10, 78, byte(i >> 8), byte(i)}), time.Minute}}
				start := time.Now()
				if _, err := g.grant(addrs[i], "db.bench.internal", ans); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(start)
			}
		}()
	}
	wg.Wait()
	res.cpuUS = float64((cpuTime(b) - cpu0).Microseconds()) / nClients
	runtime.ReadMemStats(&ms1)
	res.allocB = float64(ms1.TotalAlloc-ms0.TotalAlloc) / nClients
	if n := g.count(); n != nClients {
		b.Fatalf("%d elements granted, want %d", n, nClients)
	}
	slices.Sort(lat)
	res.p50 = float64(lat[len(lat)/2].Microseconds()) / 1000
	res.p99 = float64(lat[len(lat)*99/100].Microseconds()) / 1000

	// 2. Throughput over UDP from 2,000 clients, 64 queries in flight:
	// first with fresh names (200 per client, nearly every query a
	// first answer for its client and name: a kernel write each), then
	// with the 5 names each client keeps using, each answered once
	// before (answers refresh grants without a kernel write until half
	// the grace is used up).
	run := func(names int, warm bool) (answered, failed int64, el time.Duration) {
		var ok, bad atomic.Int64
		const senders, perSender = 64, 2000 / 64
		start := time.Now()
		deadline := start.Add(2 * time.Second)
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(s), 7))
				cl := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
				var conns []*dns.Conn
				for k := range perSender {
					a := addrs[(s*perSender+k)*nClients/2000]
					c, err := net.DialUDP("udp", &net.UDPAddr{IP: a.AsSlice()}, fwdAddr)
					if err != nil {
						b.Error(err)
						return
					}
					defer c.Close()
					conns = append(conns, &dns.Conn{Conn: c})
				}
				ask := func(cn *dns.Conn, j int) {
					m := new(dns.Msg)
					m.SetQuestion(fmt.Sprintf("s%d.svc.bench.internal.", j), dns.TypeA)
					r, _, err := cl.ExchangeWithConn(m, cn)
					if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
						bad.Add(1)
						return
					}
					ok.Add(1)
				}
				if warm {
					for _, cn := range conns {
						for j := range names {
							ask(cn, j)
						}
					}
					return
				}
				for time.Now().Before(deadline) {
					ask(conns[rng.IntN(len(conns))], rng.IntN(names))
				}
			}()
		}
		wg.Wait()
		return ok.Load(), bad.Load(), time.Since(start)
	}
	ok, bad, el := run(200, false)
	res.qFirst = float64(ok) / el.Seconds()
	res.failed += bad
	_, bad, _ = run(5, true)
	res.failed += bad
	cpu1 := cpuTime(b)
	ok, bad, el = run(5, false)
	res.cpuRepUS = float64((cpuTime(b) - cpu1).Microseconds()) / float64(max(ok, 1))
	res.qRep = float64(ok) / el.Seconds()
	res.failed += bad
	return res
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// medianOf returns the median of v (which it sorts).
func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}
