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
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/miekg/dns"

	"github.com/ferryvpn/ferry/profiles"
)

// BenchmarkDNSForwarder measures the node's DNS forwarder with 10,000
// clients holding grants in a real nftables table (in a throwaway network
// namespace):
//
//   - grant-p50-ms, grant-p99-ms: the time from the upstream's answer to
//     its addresses being enforced in the kernel, for 10,000 first answers
//     (each needs a netlink transaction), 16 at once. The answer leaves
//     only after that, so enforcement always precedes the answer; this is
//     what the answer waits for.
//   - queries/s-first-answers, queries/s-repeated: answers per second over
//     real UDP sockets on loopback, every query a name a host rule admits
//     (so each is checked and granted or refreshed), from 2,000 of the
//     clients, with an upstream resolver on loopback behind the
//     forwarder's cache; load generator, forwarder and upstream share the
//     machine's cores.
func BenchmarkDNSForwarder(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for a network namespace and nftables")
	}
	ns := fmt.Sprintf("fdnsb%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		b.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	nsf, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		b.Fatal(err)
	}
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
	wc := conn()
	defer wc.CloseLasting()
	w := newGrantWriter(wc, fw)
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
	if err := f.listenAt([]netip.AddrPort{netip.MustParseAddrPort("127.6.0.53:5354")}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.serve(ctx)

	b.ResetTimer()
	for range b.N {
		// 1. Every client's first answer: a netlink transaction each
		// (group-committed), 16 at once.
		lat := make([]time.Duration, nClients)
		var next atomic.Int64
		var wg sync.WaitGroup
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
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "grant-p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "grant-p99-ms")
		b.ReportMetric(float64(g.count()), "elements")

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
			deadline := start.Add(4 * time.Second)
			for s := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(s), 7))
					cl := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
					var conns []*dns.Conn
					for k := range perSender {
						a := addrs[(s*perSender+k)*nClients/2000]
						c, err := net.DialUDP("udp", &net.UDPAddr{IP: a.AsSlice()}, &net.UDPAddr{IP: net.IPv4(127, 6, 0, 53), Port: 5354})
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
		b.ReportMetric(float64(ok)/el.Seconds(), "queries/s-first-answers")
		b.ReportMetric(float64(bad), "failed-first-answers")
		run(5, true)
		ok, bad, el = run(5, false)
		b.ReportMetric(float64(ok)/el.Seconds(), "queries/s-repeated")
		b.ReportMetric(float64(bad), "failed-repeated")
		b.ReportMetric(float64(g.count()), "elements-after")
	}
}
