package tunneltest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// resolve asks the DNS server at req.Addr for the A (or, with Proto
// "AAAA", AAAA) records of the name in req.Key, returning the addresses
// space-separated in Text and the exchange time in Elapsed.
func resolve(req Request, timeout time.Duration) (Response, error) {
	qtype := dns.TypeA
	if strings.EqualFold(req.Proto, "AAAA") {
		qtype = dns.TypeAAAA
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(req.Key), qtype)
	cl := &dns.Client{Net: "udp", Timeout: timeout}
	start := time.Now()
	resp, _, err := cl.Exchange(m, req.Addr)
	el := time.Since(start)
	if err != nil {
		return Response{Elapsed: el}, err
	}
	if resp.Rcode != dns.RcodeSuccess {
		return Response{Elapsed: el, Text: dns.RcodeToString[resp.Rcode]}, fmt.Errorf("dns %s: %s", req.Key, dns.RcodeToString[resp.Rcode])
	}
	var addrs []string
	ttl := uint32(0)
	for i, rr := range resp.Answer {
		if i == 0 || rr.Header().Ttl < ttl {
			ttl = rr.Header().Ttl
		}
		switch r := rr.(type) {
		case *dns.A:
			addrs = append(addrs, r.A.String())
		case *dns.AAAA:
			addrs = append(addrs, r.AAAA.String())
		}
	}
	return Response{Elapsed: el, Text: strings.Join(addrs, " "), TTL: ttl}, nil
}

// echoHeld sends one line on a held connection and waits for it back.
func echoHeld(cn net.Conn, timeout time.Duration) error {
	if cn == nil {
		return errors.New("no such connection")
	}
	return echo(cn, timeout)
}
