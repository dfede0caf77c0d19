package profiles

import (
	"fmt"
	"net/netip"
	"strings"
)

// Server is what a client config needs to know about the cluster.
type Server struct {
	// PublicKey is the cluster's WireGuard public key (base64), the same on
	// every node.
	PublicKey string
	// Endpoint is the public load balancer's host:port (UDP 51820).
	Endpoint string
	// MTU of the client interface; default 1420.
	MTU int
	// Addresses are the server's tunnel addresses (IPv4, and IPv6 when
	// dual stack), routed into the tunnel by every profile: the node
	// relays Packet Too Big from the VPC with them as source (path MTU
	// discovery), and its DNS forwarder listens on them.
	Addresses []netip.Addr
	// DNS says the nodes run the DNS forwarder on Addresses: clients
	// resolve through it, so answers for host rules become permissions,
	// and the profile's own DNS servers are the forwarder's upstreams
	// instead.
	DNS bool
}

// Keepalive is below the AWS NLB's fixed 120 s UDP idle timeout, so a quiet
// tunnel keeps its flow and a client moved to another node re-handshakes
// promptly.
const Keepalive = 25

// RenderConfig returns the wg-quick configuration of a peer. privateKey is
// filled in on the device (the server never sees it); with privateKey empty
// the PrivateKey line is left out for the client to add.
func RenderConfig(p Peer, prof Profile, srv Server, privateKey string) string {
	mtu := srv.MTU
	if mtu == 0 {
		mtu = 1420
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# ferry profile %q (version %d) for %s on %s\n", prof.Name, p.ProfileVersion, p.owner(), p.Device)
	fmt.Fprintf(&b, "# expires %s\n", p.Expires.UTC().Format("2006-01-02T15:04:05Z"))
	b.WriteString("[Interface]\n")
	if privateKey != "" {
		fmt.Fprintf(&b, "PrivateKey = %s\n", privateKey)
	}
	addrs := netip.PrefixFrom(p.Address, 32).String()
	if p.Address6.IsValid() {
		addrs += ", " + netip.PrefixFrom(p.Address6, 128).String()
	}
	fmt.Fprintf(&b, "Address = %s\n", addrs)
	var tunnelAddrs []netip.Addr
	for _, a := range srv.Addresses {
		if a.Is4() || p.Address6.IsValid() {
			tunnelAddrs = append(tunnelAddrs, a)
		}
	}
	servers := prof.DNS
	if srv.DNS && len(tunnelAddrs) > 0 {
		servers = tunnelAddrs
	}
	if len(servers) > 0 || len(prof.SearchDomains) > 0 {
		var dns []string
		for _, a := range servers {
			dns = append(dns, a.String())
		}
		dns = append(dns, prof.SearchDomains...)
		fmt.Fprintf(&b, "DNS = %s\n", strings.Join(dns, ", "))
	}
	fmt.Fprintf(&b, "MTU = %d\n\n", mtu)
	b.WriteString("[Peer]\n")
	fmt.Fprintf(&b, "PublicKey = %s\n", srv.PublicKey)
	fmt.Fprintf(&b, "Endpoint = %s\n", srv.Endpoint)
	var allowed []string
	routed := prof.AllowedIPs(p.Address6.IsValid())
	if !prof.FullTunnel && len(tunnelAddrs) > 0 {
		for _, a := range tunnelAddrs {
			routed = append(routed, netip.PrefixFrom(a, a.BitLen()))
		}
		routed = mergePrefixes(routed)
	}
	for _, a := range routed {
		allowed = append(allowed, a.String())
	}
	fmt.Fprintf(&b, "AllowedIPs = %s\n", strings.Join(allowed, ", "))
	fmt.Fprintf(&b, "PersistentKeepalive = %d\n", Keepalive)
	return b.String()
}
