package admit

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"

	"github.com/ferryvpn/ferry/cluster"
)

// dnsName accepts host names for API certificates; no wildcards.
var dnsName = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// reservedNames may never appear in an API certificate, whatever their
// case: other nodes accept any server certificate of the cluster CA with
// cluster.DefaultServerName as a node's, and an API certificate must never
// pass as one. TLS compares DNS names case-insensitively, so the check
// does too.
var reservedNames = []string{cluster.DefaultServerName}

// CheckAPIName returns an error wrapping ErrNameNotAllowed unless name may
// appear in an API certificate at all: a host name, not reserved.
func CheckAPIName(name string) error {
	switch {
	case len(name) > 253 || !dnsName.MatchString(name):
		return fmt.Errorf("%w: DNS name %.80q is not a host name", ErrNameNotAllowed, name)
	case slices.Contains(reservedNames, strings.ToLower(name)):
		return fmt.Errorf("%w: DNS name %q is reserved for node certificates", ErrNameNotAllowed, name)
	}
	return nil
}

// namePolicy is the set of names API certificates may carry: the cluster's
// configured names, lowercased.
type namePolicy struct {
	dns map[string]bool
	ips []net.IP
}

func newNamePolicy(names []string) (namePolicy, error) {
	p := namePolicy{dns: map[string]bool{}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			p.ips = append(p.ips, ip)
			continue
		}
		if err := CheckAPIName(n); err != nil {
			return namePolicy{}, err
		}
		p.dns[strings.ToLower(n)] = true
	}
	return p, nil
}

// check returns an error wrapping ErrNameNotAllowed unless every name is
// configured.
func (p namePolicy) check(dns []string, ips []net.IP) error {
	for _, n := range dns {
		if err := CheckAPIName(n); err != nil {
			return err
		}
		if !p.dns[strings.ToLower(n)] {
			return fmt.Errorf("%w: %q is not one of the cluster's API names (api.public_url and api.names)", ErrNameNotAllowed, n)
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(p.ips, ip.Equal) {
			return fmt.Errorf("%w: %s is not one of the cluster's API names (api.public_url and api.names)", ErrNameNotAllowed, ip)
		}
	}
	return nil
}
