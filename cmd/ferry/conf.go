package main

import (
	"bufio"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// wgConf is a ferry profile in wg-quick's format: one interface, one peer
// (the cluster behind its load balancer).
//
// Only the keys ferry's server writes are accepted. wg-quick runs
// PreUp/PostUp/PreDown/PostDown as shell commands as root, so a config that
// carries them (or anything else unexpected) is refused rather than handed
// to wg-quick: the server is trusted with routes, not with this computer.
type wgConf struct {
	// PrivateKey is set in the device's own file only, never in what the
	// server sends.
	PrivateKey *privateKey
	Addresses  []netip.Prefix
	DNS        []netip.Addr
	Search     []string
	MTU        int

	PeerPublicKey    string
	PresharedKey     string
	Endpoint         string // host:port
	AllowedIPs       []netip.Prefix
	KeepaliveSeconds int
}

// parseConf parses and checks a wg-quick config. Errors name the line.
func parseConf(text string) (wgConf, error) {
	var (
		c        wgConf
		section  string
		nIface   int
		nPeer    int
		seenKeys = map[string]bool{}
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("profile line %d: %s", n, fmt.Sprintf(format, args...))
		}
		if strings.HasPrefix(line, "[") {
			switch strings.ToLower(line) {
			case "[interface]":
				section, nIface = "interface", nIface+1
			case "[peer]":
				section, nPeer = "peer", nPeer+1
			default:
				return wgConf{}, bad("unknown section %s", line)
			}
			if nIface > 1 || nPeer > 1 {
				return wgConf{}, bad("a ferry profile has one [Interface] and one [Peer]")
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return wgConf{}, bad("want Key = Value")
		}
		key, v := strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if section == "" {
			return wgConf{}, bad("%s outside a section", strings.TrimSpace(k))
		}
		if seenKeys[section+"."+key] {
			return wgConf{}, bad("%s given twice", strings.TrimSpace(k))
		}
		seenKeys[section+"."+key] = true
		var err error
		switch section + "." + key {
		case "interface.privatekey":
			var pk privateKey
			if pk, err = parsePrivateKey(v); err == nil {
				c.PrivateKey = &pk
			}
		case "interface.address":
			c.Addresses, err = parsePrefixes(v, false)
		case "interface.dns":
			for _, d := range splitList(v) {
				if a, aerr := netip.ParseAddr(d); aerr == nil {
					c.DNS = append(c.DNS, a)
				} else if validDomain(d) {
					c.Search = append(c.Search, d)
				} else {
					err = fmt.Errorf("%q is neither an address nor a domain", d)
				}
			}
		case "interface.mtu":
			c.MTU, err = strconv.Atoi(v)
			if err == nil && (c.MTU < 576 || c.MTU > 9000) {
				err = fmt.Errorf("%d out of range 576-9000", c.MTU)
			}
		case "peer.publickey":
			c.PeerPublicKey, err = v, checkKey(v)
		case "peer.presharedkey":
			c.PresharedKey, err = v, checkKey(v)
		case "peer.endpoint":
			c.Endpoint, err = v, checkEndpoint(v)
		case "peer.allowedips":
			c.AllowedIPs, err = parsePrefixes(v, true)
		case "peer.persistentkeepalive":
			c.KeepaliveSeconds, err = strconv.Atoi(v)
			if err == nil && (c.KeepaliveSeconds < 0 || c.KeepaliveSeconds > 65535) {
				err = fmt.Errorf("%d out of range 0-65535", c.KeepaliveSeconds)
			}
		default:
			return wgConf{}, bad("%s is not allowed in a ferry profile", strings.TrimSpace(k))
		}
		if err != nil {
			return wgConf{}, bad("%s: %v", strings.TrimSpace(k), err)
		}
	}
	if err := sc.Err(); err != nil {
		return wgConf{}, err
	}
	switch {
	case nIface != 1 || nPeer != 1:
		return wgConf{}, fmt.Errorf("profile: want one [Interface] and one [Peer] section")
	case len(c.Addresses) == 0:
		return wgConf{}, fmt.Errorf("profile: [Interface] has no Address")
	case c.PeerPublicKey == "" || c.Endpoint == "" || len(c.AllowedIPs) == 0:
		return wgConf{}, fmt.Errorf("profile: [Peer] needs PublicKey, Endpoint and AllowedIPs")
	}
	if c.MTU == 0 {
		c.MTU = 1420
	}
	return c, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parsePrefixes parses a list of CIDRs; single addresses are host routes.
// Allowed IPs are networks (masked); addresses keep their host bits.
func parsePrefixes(v string, mask bool) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range splitList(v) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if mask {
			p = p.Masked()
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty")
	}
	return out, nil
}

func checkKey(v string) error {
	if _, err := parsePrivateKey(v); err != nil { // same encoding for every key
		return fmt.Errorf("not a WireGuard key")
	}
	return nil
}

func checkEndpoint(v string) error {
	i := strings.LastIndexByte(v, ':')
	if i <= 0 {
		return fmt.Errorf("%q: want host:port", v)
	}
	host, port := strings.Trim(v[:i], "[]"), v[i+1:]
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port out of range 1-65535", v)
	}
	if _, err := netip.ParseAddr(host); err != nil && !validDomain(host) {
		return fmt.Errorf("%q: not a host name or address", v)
	}
	return nil
}

// validDomain reports whether s is a plausible DNS name.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// withPrivateKey returns the server's config with the device's private key
// added as the first line of [Interface]. The server's config must pass
// parseConf and carry no private key of its own.
func withPrivateKey(serverConf string, k privateKey) (string, error) {
	c, err := parseConf(serverConf)
	if err != nil {
		return "", fmt.Errorf("the server sent a config ferry cannot use: %w", err)
	}
	if c.PrivateKey != nil {
		return "", fmt.Errorf("the server sent a config with a private key in it: refusing it")
	}
	var b strings.Builder
	added := false
	for _, line := range strings.SplitAfter(serverConf, "\n") {
		b.WriteString(line)
		section, _, _ := strings.Cut(line, "#")
		if !added && strings.EqualFold(strings.TrimSpace(section), "[Interface]") {
			if !strings.HasSuffix(line, "\n") {
				b.WriteString("\n")
			}
			b.WriteString("PrivateKey = " + k.reveal() + "\n")
			added = true
		}
	}
	out := b.String()
	if !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	return out, nil
}
