package capture

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

// The filter language is a small subset of tcpdump's (pcap-filter(7)),
// applied to IP packets as the tunnel carries them (no link-layer header):
//
//	expr      = term { ("or" | "||") term }
//	term      = factor { ("and" | "&&") factor }
//	factor    = ("not" | "!") factor | "(" expr ")" | primitive
//	primitive = [ "src" | "dst" ] "host" ADDR
//	          | [ "src" | "dst" ] "net" CIDR
//	          | [ "src" | "dst" ] "port" N
//	          | "proto" ( N | "tcp" | "udp" | "icmp" | "icmp6" | "sctp" )
//	          | "tcp" | "udp" | "icmp" | "icmp6" | "sctp" | "ip" | "ip6"
//
// ADDR is an IPv4 or IPv6 address (no host names), CIDR an address prefix.
// Without "src" or "dst", host, net and port match either side. Ports
// match TCP, UDP and SCTP; on IPv4 only the first fragment carries them,
// and on IPv6 the transport must follow the fixed header directly (no
// extension headers), as tcpdump's "port" does. "proto" and the protocol
// words read the IPv4 protocol or the IPv6 next header field likewise. An
// empty filter matches every packet. Anything else (host names, "len",
// byte offsets, "gateway", "vlan", ...) is refused, never guessed at.

// ErrFilter is returned when a filter expression is outside the language.
var ErrFilter = errors.New("capture: invalid filter")

// node is a parsed filter expression.
type node interface{ isNode() }

type (
	orNode  struct{ l, r node }
	andNode struct{ l, r node }
	notNode struct{ x node }
	// hostNode matches a prefix (a host is a full-length prefix) on the
	// chosen side: dir is "src", "dst" or "" for either.
	hostNode struct {
		dir    string
		prefix netip.Prefix
	}
	portNode struct {
		dir  string
		port uint16
	}
	protoNode struct{ proto uint8 }
	// familyNode matches IPv4 (v6 false) or IPv6 packets.
	familyNode struct{ v6 bool }
	// trueNode matches everything: the empty filter.
	trueNode struct{}
	// clientsNode matches packets from or to any of the captured clients
	// (none: nothing); only CompileFilter makes it.
	clientsNode []netip.Prefix
)

func (orNode) isNode()      {}
func (andNode) isNode()     {}
func (notNode) isNode()     {}
func (hostNode) isNode()    {}
func (portNode) isNode()    {}
func (protoNode) isNode()   {}
func (familyNode) isNode()  {}
func (trueNode) isNode()    {}
func (clientsNode) isNode() {}

var protoNames = map[string]uint8{"icmp": 1, "tcp": 6, "udp": 17, "icmp6": 58, "sctp": 132}

// maxFilterLen bounds a filter expression: it comes from the API.
const maxFilterLen = 1024

// parseFilter parses expr; the empty expression matches everything.
func parseFilter(expr string) (node, error) {
	if len(expr) > maxFilterLen {
		return nil, fmt.Errorf("%w: longer than %d characters", ErrFilter, maxFilterLen)
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return trueNode{}, nil
	}
	p := &parser{toks: toks}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("%w: unexpected %q", ErrFilter, p.toks[p.pos])
	}
	return n, nil
}

func lex(s string) ([]string, error) {
	var out []string
	for i := 0; i < len(s); {
		c := rune(s[i])
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '(' || c == ')' || c == '!':
			out = append(out, string(c))
			i++
		case strings.HasPrefix(s[i:], "&&") || strings.HasPrefix(s[i:], "||"):
			out = append(out, s[i:i+2])
			i += 2
		case c < 0x80 && (unicode.IsLetter(c) || unicode.IsDigit(c) || c == '.' || c == ':' || c == '/'):
			j := i
			for j < len(s) && s[j] < 0x80 {
				d := rune(s[j])
				if !(unicode.IsLetter(d) || unicode.IsDigit(d) || d == '.' || d == ':' || d == '/') {
					break
				}
				j++
			}
			out = append(out, strings.ToLower(s[i:j]))
			i = j
		default:
			return nil, fmt.Errorf("%w: unexpected character %q", ErrFilter, c)
		}
	}
	return out, nil
}

type parser struct {
	toks []string
	pos  int
}

// maxDepth bounds nesting, so a hostile filter cannot exhaust the stack.
const maxDepth = 32

func (p *parser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *parser) next() string {
	t := p.peek()
	if t != "" {
		p.pos++
	}
	return t
}

func (p *parser) expr(depth int) (node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", ErrFilter, maxDepth)
	}
	l, err := p.term(depth)
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t == "or" || t == "||"; t = p.peek() {
		p.next()
		r, err := p.term(depth)
		if err != nil {
			return nil, err
		}
		l = orNode{l, r}
	}
	return l, nil
}

func (p *parser) term(depth int) (node, error) {
	l, err := p.factor(depth)
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t == "and" || t == "&&"; t = p.peek() {
		p.next()
		r, err := p.factor(depth)
		if err != nil {
			return nil, err
		}
		l = andNode{l, r}
	}
	return l, nil
}

func (p *parser) factor(depth int) (node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", ErrFilter, maxDepth)
	}
	switch t := p.next(); t {
	case "":
		return nil, fmt.Errorf("%w: unexpected end", ErrFilter)
	case "not", "!":
		x, err := p.factor(depth + 1)
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	case "(":
		x, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, fmt.Errorf("%w: missing )", ErrFilter)
		}
		return x, nil
	case "ip":
		return familyNode{v6: false}, nil
	case "ip6":
		return familyNode{v6: true}, nil
	case "proto":
		a := p.next()
		if n, ok := protoNames[a]; ok {
			return protoNode{n}, nil
		}
		n, err := strconv.ParseUint(a, 10, 8)
		if err != nil {
			return nil, fmt.Errorf("%w: proto %q is not a protocol name or number", ErrFilter, a)
		}
		return protoNode{uint8(n)}, nil
	case "src", "dst":
		return p.qualified(t)
	default:
		if n, ok := protoNames[t]; ok {
			return protoNode{n}, nil
		}
		p.pos--
		return p.qualified("")
	}
}

func (p *parser) qualified(dir string) (node, error) {
	switch kw := p.next(); kw {
	case "host":
		a := p.next()
		addr, err := netip.ParseAddr(a)
		if err != nil || addr.Zone() != "" {
			return nil, fmt.Errorf("%w: host %q is not an IP address (names are not resolved)", ErrFilter, a)
		}
		addr = addr.Unmap()
		return hostNode{dir, netip.PrefixFrom(addr, addr.BitLen())}, nil
	case "net":
		a := p.next()
		pf, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("%w: net %q is not an address prefix", ErrFilter, a)
		}
		return hostNode{dir, pf.Masked()}, nil
	case "port":
		a := p.next()
		n, err := strconv.ParseUint(a, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%w: port %q is not a number (service names are not resolved)", ErrFilter, a)
		}
		return portNode{dir, uint16(n)}, nil
	case "":
		return nil, fmt.Errorf("%w: unexpected end", ErrFilter)
	default:
		return nil, fmt.Errorf("%w: unknown primitive %q", ErrFilter, kw)
	}
}
