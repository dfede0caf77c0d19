package config

import (
	"net"
	"net/url"
	"regexp"
	"strconv"
)

var nodeIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// hostPattern accepts DNS names; IP addresses are checked separately.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$`)

// Validate checks c and returns a *FieldError naming the first bad field.
// It does not open any file: missing files are reported when they are read.
func (c *Config) Validate() error {
	if !nodeIDPattern.MatchString(c.NodeID) {
		if c.NodeID == "" {
			return fieldErr("node_id", "required")
		}
		return fieldErr("node_id", "%.70q: want 1 to 63 characters from a-z, 0-9 and '-', not starting with '-'", c.NodeID)
	}
	for _, f := range []struct{ path, v string }{
		{"data_dir", c.DataDir},
		{"master_key_file", c.MasterKeyFile},
		{"tls.ca_file", c.TLS.CAFile},
		{"tls.cert_file", c.TLS.CertFile},
		{"tls.key_file", c.TLS.KeyFile},
		{"api.cert_file", c.API.CertFile},
		{"api.key_file", c.API.KeyFile},
	} {
		if f.v == "" {
			return fieldErr(f.path, "required")
		}
	}
	if err := c.Cluster.validate(); err != nil {
		return err
	}
	switch cp := c.Capture; {
	case cp.MaxDuration < 0:
		return fieldErr("capture.max_duration", "must not be negative")
	case cp.MaxBytes < 0:
		return fieldErr("capture.max_bytes", "must not be negative")
	case cp.HeaderSnaplen < 0 || cp.HeaderSnaplen > 65535:
		return fieldErr("capture.header_snaplen", "want 0 (default) to 65535")
	case cp.MaxConcurrent < 0:
		return fieldErr("capture.max_concurrent", "must not be negative")
	}
	if err := checkListenAddr("api.listen_addr", c.API.ListenAddr); err != nil {
		return err
	}
	if c.API.PublicURL != "" {
		u, err := url.Parse(c.API.PublicURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fieldErr("api.public_url", "%.200q: want an https:// URL with a host and no query, such as https://vpn.example.com", c.API.PublicURL)
		}
	}
	if err := checkListenAddr("metrics.listen_addr", c.Metrics.ListenAddr); err != nil {
		return err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fieldErr("log.level", "%.40q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		return fieldErr("log.format", "%.40q: want json or text", c.Log.Format)
	}
	return c.validateServices()
}

func (cl *Cluster) validate() error {
	if err := checkListenAddr("cluster.bind_addr", cl.BindAddr); err != nil {
		return err
	}
	if cl.AdvertiseAddr == "" {
		host, _, _ := net.SplitHostPort(cl.BindAddr)
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return fieldErr("cluster.advertise_addr", "required when cluster.bind_addr %q listens on all addresses: other nodes need an address to dial", cl.BindAddr)
		}
	} else {
		host, port, err := splitAddr("cluster.advertise_addr", cl.AdvertiseAddr)
		if err != nil {
			return err
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return fieldErr("cluster.advertise_addr", "%q: want an address other nodes can dial, not an unspecified one", cl.AdvertiseAddr)
		}
		if port == 0 {
			return fieldErr("cluster.advertise_addr", "%q: port 0 cannot be dialled", cl.AdvertiseAddr)
		}
	}
	for _, d := range []struct {
		path string
		v    Duration
	}{
		{"cluster.heartbeat_timeout", cl.HeartbeatTimeout},
		{"cluster.election_timeout", cl.ElectionTimeout},
		{"cluster.leader_lease_timeout", cl.LeaderLeaseTimeout},
		{"cluster.write_timeout", cl.WriteTimeout},
	} {
		if d.v < 0 {
			return fieldErr(d.path, "%s: must not be negative", d.v.D())
		}
	}
	if cl.LeaderLeaseTimeout > 0 && cl.HeartbeatTimeout > 0 && cl.LeaderLeaseTimeout > cl.HeartbeatTimeout {
		return fieldErr("cluster.leader_lease_timeout", "%s: must not exceed cluster.heartbeat_timeout (%s)", cl.LeaderLeaseTimeout.D(), cl.HeartbeatTimeout.D())
	}
	return nil
}

// checkListenAddr checks a required host:port to listen on; port 0 picks a
// free port.
func checkListenAddr(path, addr string) error {
	if addr == "" {
		return fieldErr(path, "required")
	}
	_, _, err := splitAddr(path, addr)
	return err
}

// splitAddr splits host:port, where host is empty, an IP address or a DNS
// name and port is a number from 0 to 65535.
func splitAddr(path, addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fieldErr(path, "%.100q: want host:port, such as 10.0.1.5:7946", addr)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fieldErr(path, "%.100q: port %.20q is not a number from 0 to 65535", addr, p)
	}
	if host != "" && net.ParseIP(host) == nil && !hostPattern.MatchString(host) {
		return "", 0, fieldErr(path, "%.100q: host %.70q is not an IP address or DNS name", addr, host)
	}
	return host, int(port), nil
}
