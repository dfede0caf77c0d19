package config

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

// base is a valid file; cases edit it with edit.
const base = `node_id: n1
data_dir: data
master_key_file: master.key
cluster:
  bind_addr: 10.0.1.5:7946
  bootstrap: true
  heartbeat_timeout: 1s
tls:
  ca_file: tls/ca.crt
  cert_file: tls/node.crt
  key_file: tls/node.key
api:
  listen_addr: 0.0.0.0:8443
  cert_file: tls/api.crt
  key_file: tls/api.key
`

// edit returns base with each old string replaced by the new one that
// follows it; it panics when old is missing, so a case cannot go stale.
func edit(pairs ...string) string {
	s := base
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			panic("edit: " + pairs[i] + " not in base")
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func TestParseGood(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		yaml  string
		over  Overrides
		check func(t *testing.T, c *Config)
	}{
		{
			name: "defaults and relative paths",
			yaml: base,
			check: func(t *testing.T, c *Config) {
				want := map[string][2]string{
					"data_dir":        {c.DataDir, filepath.Join(dir, "data")},
					"tls.ca_file":     {c.TLS.CAFile, filepath.Join(dir, "tls/ca.crt")},
					"metrics":         {c.Metrics.ListenAddr, DefaultMetricsAddr},
					"log.level":       {c.Log.Level, "info"},
					"log.format":      {c.Log.Format, "json"},
					"cluster.advert":  {c.Cluster.AdvertiseAddr, ""},
					"master_key_file": {c.MasterKeyFile, filepath.Join(dir, "master.key")},
				}
				for name, v := range want {
					if v[0] != v[1] {
						t.Errorf("%s = %q, want %q", name, v[0], v[1])
					}
				}
				if c.Cluster.HeartbeatTimeout.D() != time.Second || !c.Cluster.Bootstrap {
					t.Errorf("cluster = %+v", c.Cluster)
				}
			},
		},
		{
			name: "audit retention: default, days and hours",
			yaml: base,
			check: func(t *testing.T, c *Config) {
				if c.Audit.Retention.D() != audit.DefaultRetention {
					t.Errorf("default audit.retention = %s, want %s", c.Audit.Retention.D(), audit.DefaultRetention)
				}
				for text, want := range map[string]time.Duration{"400d": 400 * 24 * time.Hour, "36h": 36 * time.Hour, "1d": 24 * time.Hour} {
					c, err := Parse([]byte(base+"audit:\n  retention: "+text+"\n"), dir, Overrides{})
					if err != nil || c.Audit.Retention.D() != want {
						t.Errorf("audit.retention %s: %v, %v; want %s", text, c.Audit.Retention.D(), err, want)
					}
				}
				if c.Audit.FlowRetention.D() != audit.DefaultFlowRetention {
					t.Errorf("default audit.flow_retention = %s, want %s", c.Audit.FlowRetention.D(), audit.DefaultFlowRetention)
				}
				c, err := Parse([]byte(base+"audit:\n  retention: 10d\n"), dir, Overrides{})
				if err != nil || c.Audit.FlowRetention.D() != 10*24*time.Hour {
					t.Errorf("audit.flow_retention under a 10d retention: %s, %v; want 10d", c.Audit.FlowRetention.D(), err)
				}
				c, err = Parse([]byte(base+"audit:\n  flow_retention: 7d\n"), dir, Overrides{})
				if err != nil || c.Audit.FlowRetention.D() != 7*24*time.Hour {
					t.Errorf("audit.flow_retention 7d: %s, %v", c.Audit.FlowRetention.D(), err)
				}
			},
		},
		{
			name: "absolute paths kept",
			yaml: edit("data_dir: data", "data_dir: /var/lib/ferry"),
			check: func(t *testing.T, c *Config) {
				if c.DataDir != "/var/lib/ferry" {
					t.Errorf("data_dir = %q", c.DataDir)
				}
			},
		},
		{
			name: "all addresses, advertise with wildcard bind",
			yaml: edit("bind_addr: 10.0.1.5:7946", "bind_addr: 0.0.0.0:7946\n  advertise_addr: node1.internal:7946",
				"heartbeat_timeout: 1s", "heartbeat_timeout: 1s\n  election_timeout: 1500ms\n  leader_lease_timeout: 500ms\n  write_timeout: 5s") +
				"  public_url: https://vpn.example.com\nmetrics:\n  listen_addr: '[::1]:9090'\nlog:\n  level: debug\n  format: text\n",
			check: func(t *testing.T, c *Config) {
				if c.Cluster.ElectionTimeout.D() != 1500*time.Millisecond || c.Log.Format != "text" || c.Metrics.ListenAddr != "[::1]:9090" {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "flags override the file",
			yaml: base,
			over: Overrides{NodeID: "n9", DataDir: "/srv/ferry", LogLevel: "warn", LogFormat: "text", APIAddr: "127.0.0.1:1", MetricsAddr: "127.0.0.1:2"},
			check: func(t *testing.T, c *Config) {
				got := []string{c.NodeID, c.DataDir, c.Log.Level, c.Log.Format, c.API.ListenAddr, c.Metrics.ListenAddr}
				want := []string{"n9", "/srv/ferry", "warn", "text", "127.0.0.1:1", "127.0.0.1:2"}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("got %v, want %v", got, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), dir, tt.over)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		over Overrides
		want string // substring of the error, naming the field
	}{
		{"empty file", "", Overrides{}, "the file is empty"},
		{"two documents", base + "---\nnode_id: n2\n", Overrides{}, "want one YAML document"},
		{"syntax", "node_id: [n1\n", Overrides{}, "line 1"},
		{"unknown top-level field", base + "colour: blue\n", Overrides{}, "colour (line 16): unknown field"},
		{"unknown nested field", edit("  bootstrap: true", "  bootstrap: true\n  bind_adress: x"), Overrides{}, "cluster.bind_adress (line 7): unknown field"},
		{"section not a mapping", base + "log: loud\n", Overrides{}, "log (line 16): want a mapping"},
		{"bad bool", edit("bootstrap: true", "bootstrap: maybe"), Overrides{}, "cluster.bootstrap (line 6):"},
		{"duration without unit", edit("heartbeat_timeout: 1s", "heartbeat_timeout: 5"), Overrides{}, `cluster.heartbeat_timeout (line 7): "5" is not a duration`},
		{"duration not a scalar", edit("heartbeat_timeout: 1s", "heartbeat_timeout: [1s]"), Overrides{}, "cluster.heartbeat_timeout (line 7): want a duration"},
		{"negative duration", edit("heartbeat_timeout: 1s", "heartbeat_timeout: -1s"), Overrides{}, "cluster.heartbeat_timeout: -1s: must not be negative"},
		{"lease above heartbeat", edit("heartbeat_timeout: 1s", "heartbeat_timeout: 1s\n  leader_lease_timeout: 2s"), Overrides{}, "cluster.leader_lease_timeout: 2s: must not exceed"},
		{"node id missing", edit("node_id: n1\n", ""), Overrides{}, "node_id: required"},
		{"oidc without client", base + "oidc:\n  issuer: https://idp.example.com\n", Overrides{}, "oidc.client_id: required"},
		{"oidc secret inline", base + "oidc:\n  issuer: https://idp.example.com\n  client_id: ferry\n  client_secret: s3cret\n", Overrides{}, "oidc.client_secret (line 19): unknown field"},
		{"oidc without redirect", base + "oidc:\n  issuer: https://idp.example.com\n  client_id: ferry\n  client_secret_file: s\n", Overrides{}, "oidc.redirect_url: required"},
		{"bad pool", base + "profiles:\n  pool: 100.64.0.0/31\n", Overrides{}, "profiles.pool"},
		{"bad wireguard port", base + "wireguard:\n  listen_port: 70000\n", Overrides{}, "wireguard.listen_port: 70000 out of range"},
		{"flow interval over 10m", base + "wireguard:\n  flow_interval: 15m\n", Overrides{}, "wireguard.flow_interval: 15m0s: want 1m to 10m"},
		{"flow interval under 1m", base + "wireguard:\n  flow_interval: 10s\n", Overrides{}, "wireguard.flow_interval: 10s: want 1m to 10m"},
		{"flow retention too short", base + "audit:\n  flow_retention: 12h\n", Overrides{}, "audit.flow_retention: 12h0m0s: want at least 24h0m0s"},
		{"flow retention over audit retention", base + "audit:\n  retention: 90d\n  flow_retention: 91d\n", Overrides{}, "audit.flow_retention: 2184h0m0s: want at most audit.retention (2160h0m0s)"},
		{"audit retention too short", base + "audit:\n  retention: 1h\n", Overrides{}, "audit.retention: 1h0m0s: want at least 24h0m0s"},
		{"audit retention negative", base + "audit:\n  retention: -5s\n", Overrides{}, "audit.retention: -5s: want at least"},
		{"audit retention in weeks", base + "audit:\n  retention: 52w\n", Overrides{}, `audit.retention (line 17): "52w" is not a duration`},
		{"bad sink type", base + "audit:\n  sinks:\n    - {name: s, type: kafka}\n", Overrides{}, `audit.sinks[0].type: "kafka": want file, syslog, relp or hec`},
		{"duplicate sink", base + "audit:\n  sinks:\n    - {name: s, type: file, path: a}\n    - {name: s, type: file, path: b}\n", Overrides{}, `audit.sinks[1].name: "s": required and unique`},
		{"hec token inline", base + "audit:\n  sinks:\n    - {name: s, type: hec, url: https://splunk:8088}\n", Overrides{}, "audit.sinks[0].token_file: required"},
		{"node id uppercase", edit("node_id: n1", "node_id: N1"), Overrides{}, `node_id: "N1": want 1 to 63`},
		{"node id from flag", base, Overrides{NodeID: "-n"}, `node_id: "-n"`},
		{"data dir missing", edit("data_dir: data\n", ""), Overrides{}, "data_dir: required"},
		{"master key missing", edit("master_key_file: master.key\n", ""), Overrides{}, "master_key_file: required"},
		{"tls key missing", edit("  key_file: tls/node.key\n", ""), Overrides{}, "tls.key_file: required"},
		{"api cert missing", edit("  cert_file: tls/api.crt\n", ""), Overrides{}, "api.cert_file: required"},
		{"bind addr missing", edit("  bind_addr: 10.0.1.5:7946\n", ""), Overrides{}, "cluster.bind_addr: required"},
		{"bind addr without port", edit("10.0.1.5:7946", "10.0.1.5"), Overrides{}, `cluster.bind_addr: "10.0.1.5": want host:port`},
		{"bind port not a number", edit("10.0.1.5:7946", "10.0.1.5:http"), Overrides{}, "cluster.bind_addr: \"10.0.1.5:http\": port"},
		{"bind port too big", edit("10.0.1.5:7946", "10.0.1.5:70000"), Overrides{}, "cluster.bind_addr"},
		{"bind host bad", edit("10.0.1.5:7946", "'no such host!:7946'"), Overrides{}, "cluster.bind_addr"},
		{"wildcard bind needs advertise", edit("10.0.1.5:7946", "0.0.0.0:7946"), Overrides{}, "cluster.advertise_addr: required when cluster.bind_addr"},
		{"advertise unspecified", edit("  bootstrap: true", "  advertise_addr: '[::]:7946'"), Overrides{}, "cluster.advertise_addr: \"[::]:7946\": want an address"},
		{"advertise port 0", edit("  bootstrap: true", "  advertise_addr: 10.0.1.5:0"), Overrides{}, "cluster.advertise_addr: \"10.0.1.5:0\": port 0"},
		{"api listen missing", edit("  listen_addr: 0.0.0.0:8443\n", ""), Overrides{}, "api.listen_addr: required"},
		{"public url not https", base + "  public_url: http://vpn.example.com\n", Overrides{}, "api.public_url"},
		{"metrics addr bad", base + "metrics:\n  listen_addr: localhost\n", Overrides{}, "metrics.listen_addr"},
		{"log level", base + "log:\n  level: loud\n", Overrides{}, `log.level: "loud"`},
		{"log level from flag", base, Overrides{LogLevel: "verbose"}, `log.level: "verbose"`},
		{"log format", base + "log:\n  format: xml\n", Overrides{}, `log.format: "xml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), t.TempDir(), tt.over)
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
		})
	}
}

// TestExampleFile keeps deploy/ferryd.example.yaml loadable.
func TestExampleFile(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "..", "deploy", "ferryd.example.yaml"), Overrides{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.NodeID != "n1" || c.API.PublicURL == "" || c.Cluster.WriteTimeout == 0 {
		t.Errorf("example lost fields: %+v", c)
	}
}

func TestLoadNamesFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), Overrides{})
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]byte(base), dir, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	c.Cluster.WriteTimeout = Duration(3 * time.Second)
	data, err := c.Marshal("written by a test\n\nsecond paragraph")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "# written by a test\n#\n# second paragraph\n") {
		t.Errorf("header missing:\n%s", data)
	}
	back, err := Parse(data, dir, Overrides{})
	if err != nil {
		t.Fatalf("Parse(Marshal): %v\n%s", err, data)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v", back, c)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(base + "colour: blue\n"))
	f.Add([]byte("cluster: {heartbeat_timeout: [1, {a: b}]}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("node_id: n1\n---\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, dir, Overrides{})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Parse accepted a config that Validate refuses: %v", err)
		}
	})
}
