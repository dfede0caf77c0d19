package config

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// Defaults of the service sections.
const (
	DefaultPool        = "100.64.0.0/16"
	DefaultWGInterface = "ferry0"
	DefaultWGPort      = 51820
)

// OIDC configures sign-in with the company's identity provider. Without an
// issuer, ferryd serves no sign-in (health, readiness and joining only).
type OIDC struct {
	// Issuer is the identity provider's issuer URL, exactly as in its
	// discovery document.
	Issuer string `yaml:"issuer,omitempty"`
	// ClientID and ClientSecretFile identify ferry as a confidential client;
	// the secret is read from a file, never written inline.
	ClientID         string `yaml:"client_id,omitempty"`
	ClientSecretFile string `yaml:"client_secret_file,omitempty"`
	// RedirectURL is registered with the provider: https://PUBLIC/callback.
	// Default: api.public_url + /callback.
	RedirectURL string   `yaml:"redirect_url,omitempty"`
	Scopes      []string `yaml:"scopes,omitempty"`
	// Claims that carry the user ID (default sub), email, display name and
	// groups.
	UserIDClaim string `yaml:"user_id_claim,omitempty"`
	EmailClaim  string `yaml:"email_claim,omitempty"`
	NameClaim   string `yaml:"name_claim,omitempty"`
	GroupsClaim string `yaml:"groups_claim,omitempty"`
	// AllowedEmailDomains and RequiredGroups narrow who may sign in.
	AllowedEmailDomains []string `yaml:"allowed_email_domains,omitempty"`
	RequiredGroups      []string `yaml:"required_groups,omitempty"`
	// BackChannelLogout serves OpenID Connect Back-Channel Logout at
	// api.public_url + /oidc/backchannel-logout (register that URL at the
	// provider): a logout token ends the user's sessions and devices.
	BackChannelLogout bool `yaml:"backchannel_logout,omitempty"`
	// OfflineAccess asks for the offline_access scope, which most
	// providers (Okta, Entra ID, Keycloak, Dex) need before they grant
	// the refresh token revalidation uses.
	OfflineAccess bool `yaml:"offline_access,omitempty"`
	// RevalidateInterval is how often each user's refresh token is
	// redeemed to learn what the provider says now (groups, disabled);
	// default 15m. RevalidateGrace is how long access stays while the
	// provider cannot be reached; then it is revoked (fail closed);
	// default 1h.
	RevalidateInterval Duration `yaml:"revalidate_interval,omitempty"`
	RevalidateGrace    Duration `yaml:"revalidate_grace,omitempty"`
}

// Sessions configures sign-in sessions.
type Sessions struct {
	Lifetime    Duration `yaml:"lifetime,omitempty"`     // default 12h
	IdleTimeout Duration `yaml:"idle_timeout,omitempty"` // default 1h
	// StepUpWindow is how old an administrator's last TOTP code may be
	// for a change of access in the admin console before it asks for a
	// fresh one; default 10m.
	StepUpWindow Duration `yaml:"step_up_window,omitempty"`
	// AdminGroups are the identity provider groups whose members are
	// administrators.
	AdminGroups []string `yaml:"admin_groups,omitempty"`
}

// Profiles configures client addressing.
type Profiles struct {
	// Pool is the client address pool; its first address is the servers'
	// tunnel address. Default 100.64.0.0/16.
	Pool string `yaml:"pool,omitempty"`
	// Pool6, when set, makes the pool dual-stack: each client also gets
	// the IPv6 address of this prefix that carries its IPv4 address in
	// the low 32 bits, e.g. fd66:6572:7279::/96 (/64 to /96). Every node
	// must use the same value.
	Pool6 string `yaml:"pool6,omitempty"`
	// AssignByVerifiedEmail lets a profile's users list name email
	// addresses, matched only when the IdP says email_verified. Off by
	// default: assign by user ID or group.
	AssignByVerifiedEmail bool `yaml:"assign_by_verified_email,omitempty"`
}

// WireGuard configures the data plane.
type WireGuard struct {
	// Enabled brings the data plane up (needs CAP_NET_ADMIN).
	Enabled bool `yaml:"enabled"`
	// Interface name, unique on the machine; default ferry0.
	Interface string `yaml:"interface,omitempty"`
	// ListenPort for WireGuard UDP; default 51820.
	ListenPort int `yaml:"listen_port,omitempty"`
	// Endpoint is what clients dial: the load balancer's host:port.
	Endpoint string `yaml:"endpoint,omitempty"`
	// MTU of client interfaces; default 1420.
	MTU int `yaml:"mtu,omitempty"`
	// FlowInterval is the aggregation interval of flow records, 1m to
	// 10m; default 1m.
	FlowInterval Duration `yaml:"flow_interval,omitempty"`
	// FlowActiveTimeout is how often a connection still open adds an
	// interim report to its flow record; default 5m.
	FlowActiveTimeout Duration `yaml:"flow_active_timeout,omitempty"`
	// FlowMaxRecords bounds the distinct tuples per interval before flow
	// records fold to coarser keys (counted, never dropped); default
	// 10,000.
	FlowMaxRecords int `yaml:"flow_max_records,omitempty"`
	// DNS runs the node's DNS forwarder on its tunnel addresses: issued
	// profiles point DNS at it, and its answers for host rules' names
	// become the client's permissions. Without it host rules grant nothing.
	DNS WireGuardDNS `yaml:"dns,omitempty"`
}

// WireGuardDNS configures the node's DNS forwarder (tunnel.DNSConfig).
type WireGuardDNS struct {
	Enabled bool `yaml:"enabled"`
	// Upstreams are the resolvers behind it, "addr" or "addr:port" (the
	// VPC resolver, such as 10.0.0.2); default /etc/resolv.conf's.
	Upstreams []string `yaml:"upstreams,omitempty"`
	// Grace is added to each answer's TTL for the grant; default 30s.
	Grace Duration `yaml:"grace,omitempty"`
	// MaxTTL caps the TTL of answers that grant; default 5m.
	MaxTTL Duration `yaml:"max_ttl,omitempty"`
	// RefuseOthers answers REFUSED for names outside the client's profile
	// instead of resolving them (they are never reachable either way).
	RefuseOthers bool `yaml:"refuse_others,omitempty"`
}

// DNSUpstreams returns the validated upstreams, port 53 where none is
// given.
func (w WireGuardDNS) DNSUpstreams() ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for i, u := range w.Upstreams {
		if a, err := netip.ParseAddr(u); err == nil {
			out = append(out, netip.AddrPortFrom(a, 53))
			continue
		}
		ap, err := netip.ParseAddrPort(u)
		if err != nil || ap.Port() == 0 {
			return nil, fieldErr(fmt.Sprintf("wireguard.dns.upstreams[%d]", i), "%q: want an address or address:port, such as 10.0.0.2", u)
		}
		out = append(out, ap)
	}
	return out, nil
}

// Capture bounds packet captures (ferryctl capture). The caps are cluster
// configuration: these values are a bootstrap, imported into the cluster
// once when it has none; afterwards `ferryctl capture limits set` changes
// them and this section is ignored.
type Capture struct {
	// MaxDuration of one capture; default 10m.
	MaxDuration Duration `yaml:"max_duration,omitempty"`
	// MaxBytes of packet data in one capture; default 100 MB.
	MaxBytes int64 `yaml:"max_bytes,omitempty"`
	// HeaderSnaplen is the snap length that keeps headers only, the most
	// a capture may ask for unless AllowPayload; default 96.
	HeaderSnaplen int `yaml:"header_snaplen,omitempty"`
	// AllowPayload lets captures keep payloads (snap lengths up to 65535).
	AllowPayload bool `yaml:"allow_payload,omitempty"`
	// MaxConcurrent captures running in the whole cluster at once (each
	// holds a replicated lease); default 2.
	MaxConcurrent int `yaml:"max_concurrent,omitempty"`
}

// Audit configures the audit log and its export.
type Audit struct {
	CheckpointEvery    int      `yaml:"checkpoint_every,omitempty"`    // default 1000 records
	CheckpointInterval Duration `yaml:"checkpoint_interval,omitempty"` // default 1m
	// Retention is how long records stay in the cluster's journal: older
	// ones that every sink has confirmed are trimmed daily by the leader.
	// Default 400 days (audit.DefaultRetention); at least MinRetention.
	Retention Duration `yaml:"retention,omitempty"`
	// FlowRetention is how long raw flow records (flow.accept, flow.deny)
	// stay in the journal: older ones that every network sink confirmed
	// are pruned daily by the leader, leaving their daily totals
	// (flow.summary) and stubs that keep the hash chain verifiable.
	// Default 30 days (audit.DefaultFlowRetention); at least MinRetention
	// and at most Retention.
	FlowRetention Duration `yaml:"flow_retention,omitempty"`
	Sinks         []Sink   `yaml:"sinks,omitempty"`
	// Hostname is the host name syslog (HOSTNAME) and HEC (host) messages
	// carry; default this machine's fully qualified name.
	Hostname string `yaml:"hostname,omitempty"`
	// EnterpriseNumber is the IANA private enterprise number of the
	// syslog structured-data ID (ferry@<number>); default 32473, the
	// number RFC 5612 reserves for examples: set your organisation's.
	EnterpriseNumber int `yaml:"enterprise_number,omitempty"`
}

// MinRetention is the shortest audit.retention accepted: trims run daily,
// and a shorter value is more likely a slip of the unit than a policy.
const MinRetention = 24 * time.Hour

// Sink is one audit export destination.
type Sink struct {
	Name   string `yaml:"name"`
	Type   string `yaml:"type"`             // file, syslog, relp or hec
	Format string `yaml:"format,omitempty"` // json, cef, ocsf (syslog wraps it in RFC 5424)
	// file
	Path     string `yaml:"path,omitempty"`
	MaxBytes int64  `yaml:"max_bytes,omitempty"`
	MaxFiles int    `yaml:"max_files,omitempty"`
	// syslog, relp: Addr host:port; TLS when CAFile is set (RFC 5425 for
	// syslog), with an optional client certificate.
	Addr       string `yaml:"addr,omitempty"`
	CAFile     string `yaml:"ca_file,omitempty"`
	CertFile   string `yaml:"cert_file,omitempty"`
	KeyFile    string `yaml:"key_file,omitempty"`
	ServerName string `yaml:"server_name,omitempty"`
	// syslog: the re-send window after a broken connection (default
	// 10000 records, 2m).
	ResendRecords uint64   `yaml:"resend_records,omitempty"`
	ResendAge     Duration `yaml:"resend_age,omitempty"`
	// hec
	URL       string `yaml:"url,omitempty"`
	TokenFile string `yaml:"token_file,omitempty"`
	Ack       bool   `yaml:"ack,omitempty"`
	Index     string `yaml:"index,omitempty"`
}

func (c *Config) servicePaths() []*string {
	ps := []*string{&c.OIDC.ClientSecretFile}
	for i := range c.Audit.Sinks {
		s := &c.Audit.Sinks[i]
		ps = append(ps, &s.Path, &s.CAFile, &s.CertFile, &s.KeyFile, &s.TokenFile)
	}
	return ps
}

func (c *Config) setServiceDefaults() {
	c.setIdPDefaults()
	if c.Profiles.Pool == "" {
		c.Profiles.Pool = DefaultPool
	}
	if c.WireGuard.Interface == "" {
		c.WireGuard.Interface = DefaultWGInterface
	}
	if c.WireGuard.ListenPort == 0 {
		c.WireGuard.ListenPort = DefaultWGPort
	}
	if c.Audit.Retention == 0 {
		c.Audit.Retention = Duration(audit.DefaultRetention)
	}
	if c.Audit.FlowRetention == 0 {
		c.Audit.FlowRetention = Duration(min(audit.DefaultFlowRetention, c.Audit.Retention.D()))
	}
	if c.OIDC.RedirectURL == "" && c.API.PublicURL != "" {
		c.OIDC.RedirectURL = strings.TrimSuffix(c.API.PublicURL, "/") + "/callback"
	}
}

func (c *Config) validateServices() error {
	if err := c.validateIdP(); err != nil {
		return err
	}
	if o := c.OIDC; o.Issuer != "" {
		if u, err := url.Parse(o.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fieldErr("oidc.issuer", "%.200q: want the provider's issuer URL", o.Issuer)
		}
		if o.ClientID == "" {
			return fieldErr("oidc.client_id", "required with oidc.issuer")
		}
		if o.ClientSecretFile == "" {
			return fieldErr("oidc.client_secret_file", "required with oidc.issuer (the secret is read from a file)")
		}
		if o.RedirectURL == "" {
			return fieldErr("oidc.redirect_url", "required with oidc.issuer (or set api.public_url)")
		}
	}
	for i, g := range c.Sessions.AdminGroups {
		if strings.TrimSpace(g) == "" {
			return fieldErr(fmt.Sprintf("sessions.admin_groups[%d]", i), "empty")
		}
	}
	if c.OIDC.RevalidateInterval < 0 || (c.OIDC.RevalidateInterval > 0 && c.OIDC.RevalidateInterval < Duration(time.Second)) {
		return fieldErr("oidc.revalidate_interval", "%s: want at least 1s", c.OIDC.RevalidateInterval.D())
	}
	if c.OIDC.RevalidateGrace < 0 {
		return fieldErr("oidc.revalidate_grace", "must not be negative")
	}
	if c.Sessions.Lifetime < 0 || c.Sessions.IdleTimeout < 0 || c.Sessions.StepUpWindow < 0 {
		return fieldErr("sessions", "durations must not be negative")
	}
	p, err := netip.ParsePrefix(c.Profiles.Pool)
	if err != nil || !p.Addr().Is4() || p.Bits() > 30 {
		return fieldErr("profiles.pool", "%q: want an IPv4 prefix of /30 or larger, such as 100.64.0.0/16", c.Profiles.Pool)
	}
	if c.Profiles.Pool6 != "" {
		p6, err := netip.ParsePrefix(c.Profiles.Pool6)
		if err == nil {
			err = profiles.ValidPool6(p6)
		}
		if err != nil {
			return fieldErr("profiles.pool6", "%q: %v", c.Profiles.Pool6, err)
		}
	}
	if wg := c.WireGuard; wg.ListenPort < 1 || wg.ListenPort > 65535 {
		return fieldErr("wireguard.listen_port", "%d out of range 1-65535", wg.ListenPort)
	}
	if d := c.WireGuard.FlowInterval.D(); d != 0 && (d < time.Minute || d > 10*time.Minute) {
		return fieldErr("wireguard.flow_interval", "%s: want 1m to 10m", d)
	}
	if c.WireGuard.FlowActiveTimeout < 0 || c.WireGuard.FlowMaxRecords < 0 {
		return fieldErr("wireguard", "flow_active_timeout and flow_max_records must not be negative")
	}
	if _, err := c.WireGuard.DNS.DNSUpstreams(); err != nil {
		return err
	}
	if c.WireGuard.DNS.Grace < 0 || c.WireGuard.DNS.MaxTTL < 0 {
		return fieldErr("wireguard.dns", "grace and max_ttl must not be negative")
	}
	if len(c.WireGuard.Interface) > 15 {
		return fieldErr("wireguard.interface", "%q: at most 15 characters", c.WireGuard.Interface)
	}
	if c.WireGuard.Endpoint != "" {
		if _, _, err := splitAddr("wireguard.endpoint", c.WireGuard.Endpoint); err != nil {
			return err
		}
	}
	if r := c.Audit.Retention; r != 0 && r < Duration(MinRetention) {
		return fieldErr("audit.retention", "%s: want at least %s (such as 400d)", r.D(), MinRetention)
	}
	if r := c.Audit.FlowRetention; r != 0 && r < Duration(MinRetention) {
		return fieldErr("audit.flow_retention", "%s: want at least %s (such as 30d)", r.D(), MinRetention)
	}
	if r, a := c.Audit.FlowRetention, cmp.Or(c.Audit.Retention, Duration(audit.DefaultRetention)); r > a {
		return fieldErr("audit.flow_retention", "%s: want at most audit.retention (%s)", r.D(), a.D())
	}
	names := map[string]bool{}
	for i, s := range c.Audit.Sinks {
		path := fmt.Sprintf("audit.sinks[%d]", i)
		if s.Name == "" || names[s.Name] {
			return fieldErr(path+".name", "%q: required and unique", s.Name)
		}
		names[s.Name] = true
		switch s.Type {
		case "file":
			if s.Path == "" {
				return fieldErr(path+".path", "required for a file sink")
			}
		case "syslog", "relp":
			if _, _, err := splitAddr(path+".addr", s.Addr); err != nil {
				return err
			}
		case "hec":
			if u, err := url.Parse(s.URL); err != nil || u.Scheme != "https" && u.Scheme != "http" {
				return fieldErr(path+".url", "%q: want the HEC URL", s.URL)
			}
			if s.TokenFile == "" {
				return fieldErr(path+".token_file", "required for a hec sink (the token is read from a file)")
			}
		default:
			return fieldErr(path+".type", "%q: want file, syslog, relp or hec", s.Type)
		}
		switch s.Format {
		case "", "json", "cef", "ocsf":
		default:
			return fieldErr(path+".format", "%q: want json, cef or ocsf", s.Format)
		}
	}
	return nil
}

// OIDCConfig returns the relying party's configuration, reading the client
// secret file.
func (c *Config) OIDCConfig() (authn.OIDCConfig, error) {
	o := c.OIDC
	secret, err := readSecretFile(o.ClientSecretFile)
	if err != nil {
		return authn.OIDCConfig{}, fmt.Errorf("oidc.client_secret_file: %w", err)
	}
	return authn.OIDCConfig{
		Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: authn.NewClientSecret(secret),
		RedirectURL: o.RedirectURL,
		UserIDClaim: o.UserIDClaim, EmailClaim: o.EmailClaim, NameClaim: o.NameClaim, GroupsClaim: o.GroupsClaim,
		AllowedEmailDomains: o.AllowedEmailDomains, RequiredGroups: o.RequiredGroups,
		Scopes: scopes(o),
	}, nil
}

// SessionConfig returns the session settings (store and recorder are the
// caller's).
func (c *Config) SessionConfig() authn.SessionConfig {
	return authn.SessionConfig{
		Lifetime: c.Sessions.Lifetime.D(), IdleTimeout: c.Sessions.IdleTimeout.D(),
		AdminGroups: c.Sessions.AdminGroups, RequiredGroups: c.OIDC.RequiredGroups,
	}
}

// PoolPrefix returns the validated client address pool.
func (c *Config) PoolPrefix() netip.Prefix { return netip.MustParsePrefix(c.Profiles.Pool) }

// Pool6Prefix returns the validated IPv6 client pool; the zero Prefix when
// IPv4 only.
func (c *Config) Pool6Prefix() netip.Prefix {
	p, _ := netip.ParsePrefix(c.Profiles.Pool6)
	return p
}

// scopes returns the scopes to ask for: oidc.scopes (default openid,
// email, profile) plus offline_access when oidc.offline_access is set.
func scopes(o OIDC) []string {
	sc := o.Scopes
	if len(sc) == 0 && o.OfflineAccess {
		sc = []string{"openid", "email", "profile"}
	}
	if o.OfflineAccess && !slices.Contains(sc, "offline_access") {
		sc = append(slices.Clone(sc), "offline_access")
	}
	return sc
}

// readSecretFile reads a secret from a regular file that only its owner
// may access (mode 0600 or narrower), as the master key must be: a secret
// that group or other can read is refused, naming the fix. The error
// never contains the file's contents.
func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (mode %s)", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %#o, which group or other can access; run chmod 600 %s", path, perm, path)
	}
	return io.ReadAll(io.LimitReader(f, 64<<10))
}
