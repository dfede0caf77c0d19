package profiles

import "net/url"

// Keys of the replicated store. The tunnel package follows PeerPrefix and
// ProfilePrefix on every node.
const (
	ProfilePrefix = "profiles/"
	PeerPrefix    = "peers/"
	// addrPrefix maps an allocated client address to its peer ID; the
	// compare-and-swap on it makes allocation unique cluster-wide.
	addrPrefix = "ipam/"
	// devicesPrefix holds one record per user: their devices and peer IDs.
	// Every issuance for the user compares its version, so device limits
	// hold under concurrency.
	devicesPrefix = "devices/"
	// pubkeyPrefix maps a public key to its peer ID: WireGuard needs each
	// key once.
	pubkeyPrefix = "pubkeys/"
)

func profileKey(name string) string { return ProfilePrefix + name }
func peerKey(id string) string      { return PeerPrefix + id }
func addrKey(a string) string       { return addrPrefix + a }
func devicesKey(user string) string { return devicesPrefix + url.PathEscape(user) }
func pubkeyKey(k string) string     { return pubkeyPrefix + k }
