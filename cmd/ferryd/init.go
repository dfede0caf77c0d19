package main

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/config"
	"github.com/spf13/cobra"
)

// caValidity is the lifetime of a new cluster CA. The CA cannot be rotated
// yet, so it is long; node and API certificates are shorter.
const caValidity = 10 * 365 * 24 * time.Hour

// initOptions describe the first node of a new cluster.
type initOptions struct {
	dir         string
	dataDir     string // data_dir as written: relative to dir or absolute
	nodeID      string
	clusterAddr string // bind_addr; advertised as is
	apiAddr     string
	apiNames    []string
	metricsAddr string
	publicURL   string
	logFormat   string
}

func newInitCmd(stdout io.Writer) *cobra.Command {
	o := initOptions{dataDir: dirData, metricsAddr: config.DefaultMetricsAddr, logFormat: config.DefaultLogFormat}
	cmd := &cobra.Command{
		Use:   "init --dir DIR --node-id ID --cluster-addr HOST:PORT --api-addr HOST:PORT [--api-name NAME ...]",
		Short: "Create a new cluster: master key, CA, and the first node's certificates and config",
		Long: `init creates the material of a new cluster in DIR:

  master.key     the cluster master key (mode 0600). Every node needs a copy:
                 it seals secrets in the store and signs join tokens.
  tls/ca.crt     the cluster CA certificate.
  tls/ca.key     the CA key (mode 0600). The first node uploads it, sealed under
                 the master key, into the replicated store at its first start,
                 then deletes this file; any node can then sign certificates
                 for joining nodes (keep an offline backup of master.key).
  tls/node.*     the first node's cluster certificate and key.
  tls/api.*      the HTTPS API certificate for the --api-name names and its key.
  ferryd.yaml    the first node's config, with bootstrap: true. Its api.names
                 (the --api-name values) and the host of --public-url are the
                 only names joining nodes get API certificates for: list every
                 name and address clients or health checks use.

init refuses to overwrite a directory that already holds a node.`,
		Example: `  ferryd init --dir /etc/ferry --data-dir /var/lib/ferry --node-id n1 \
      --cluster-addr 10.0.1.5:7946 --api-addr 0.0.0.0:8443 \
      --api-name vpn.example.com --api-name 10.0.1.5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkAddr("--cluster-addr", o.clusterAddr); err != nil {
				return err
			}
			d, ca, err := createCluster(o, time.Now())
			if err != nil {
				return err
			}
			printInit(stdout, o, d, ca)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "directory for the new cluster's files (created if missing)")
	f.StringVar(&o.dataDir, "data-dir", o.dataDir, "data_dir of the config: the node's state (relative to --dir, or absolute)")
	f.StringVar(&o.nodeID, "node-id", "n1", "ID of the first node")
	f.StringVar(&o.clusterAddr, "cluster-addr", "", "host:port of the first node's cluster listener, as other nodes dial it")
	f.StringVar(&o.apiAddr, "api-addr", "", "host:port the HTTPS API listens on")
	f.StringSliceVar(&o.apiNames, "api-name", nil, "DNS name or IP address clients use for the API (repeat; default the host of --api-addr)")
	f.StringVar(&o.metricsAddr, "metrics-addr", o.metricsAddr, "host:port of the plain-HTTP metrics listener")
	f.StringVar(&o.publicURL, "public-url", "", "https:// URL clients use, such as the load balancer's")
	for _, name := range []string{"dir", "cluster-addr", "api-addr"} {
		cmd.MarkFlagRequired(name)
	}
	return cmd
}

// createCluster writes the material of a new cluster into o.dir.
func createCluster(o initOptions, now time.Time) (_ *nodeDir, _ *pki.CA, err error) {
	if err := pki.ValidNodeID(o.nodeID); err != nil {
		return nil, nil, fmt.Errorf("--node-id: %w", err)
	}
	names := apiNames(o.apiNames, o.apiAddr)
	dns, ips, err := splitNames(names)
	if err != nil {
		return nil, nil, err
	}
	if o.dataDir == "" {
		o.dataDir = dirData
	}
	d, err := newNodeDir(o.dir)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			d.undo()
		}
	}()
	if err := d.claimDataDir(o.dataDir); err != nil {
		return nil, nil, err
	}

	// 1. The master key.
	master, err := seal.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	if err := seal.WriteKeyFile(d.path(fileMasterKey), master); err != nil {
		return nil, nil, err
	}
	d.track(d.path(fileMasterKey))

	// 2. The CA.
	ca, err := pki.NewCA("ferry cluster CA", caValidity, now)
	if err != nil {
		return nil, nil, err
	}
	if err := d.write(fileCACert, ca.CertPEM(), 0o644); err != nil {
		return nil, nil, err
	}
	if err := d.writeKey(fileCAKey, ca.Key); err != nil {
		return nil, nil, err
	}

	// 3. The node's cluster certificate.
	nodeKey, err := pki.NewKey()
	if err != nil {
		return nil, nil, err
	}
	csr, err := pki.NewCSR(nodeKey, o.nodeID)
	if err != nil {
		return nil, nil, err
	}
	nodePEM, err := ca.IssueNode(csr, o.nodeID, []string{cluster.DefaultServerName}, nil, admit.DefaultNodeCertTTL, now)
	if err != nil {
		return nil, nil, err
	}
	if err := d.write(fileNodeCert, nodePEM, 0o644); err != nil {
		return nil, nil, err
	}
	if err := d.writeKey(fileNodeKey, nodeKey); err != nil {
		return nil, nil, err
	}

	// 4. The API certificate, followed by the CA for joining nodes' pin.
	apiKey, err := pki.NewKey()
	if err != nil {
		return nil, nil, err
	}
	apiPEM, err := ca.IssueServer(apiKey.Public(), dns, ips, admit.DefaultAPICertTTL, now)
	if err != nil {
		return nil, nil, err
	}
	if err := d.write(fileAPICert, append(apiPEM, ca.CertPEM()...), 0o644); err != nil {
		return nil, nil, err
	}
	if err := d.writeKey(fileAPIKey, apiKey); err != nil {
		return nil, nil, err
	}

	// 5. The config.
	cfg := config.Config{
		NodeID: o.nodeID, DataDir: o.dataDir, MasterKeyFile: fileMasterKey,
		Cluster: config.Cluster{BindAddr: o.clusterAddr, Bootstrap: true},
		TLS:     config.TLS{CAFile: fileCACert, CertFile: fileNodeCert, KeyFile: fileNodeKey, CAKeyFile: fileCAKey},
		API:     config.API{ListenAddr: o.apiAddr, CertFile: fileAPICert, KeyFile: fileAPIKey, PublicURL: o.publicURL, Names: names},
		Metrics: config.Metrics{ListenAddr: o.metricsAddr},
		Log:     config.Log{Level: config.DefaultLogLevel, Format: o.logFormat},
	}
	header := fmt.Sprintf("ferryd configuration of node %s, the first node of a new cluster, written by ferryd init.\n"+
		"See deploy/ferryd.example.yaml in the ferry repository for every field.", o.nodeID)
	if err := writeConfig(d, &cfg, header); err != nil {
		return nil, nil, err
	}
	return d, ca, nil
}

// writeConfig validates cfg as Load will read it and writes it.
func writeConfig(d *nodeDir, cfg *config.Config, header string) error {
	data, err := cfg.Marshal(header)
	if err != nil {
		return err
	}
	if _, err := config.Parse(data, d.dir, config.Overrides{}); err != nil {
		return fmt.Errorf("the new config does not validate: %w", err)
	}
	return d.write(fileConfig, data, 0o644)
}

func printInit(w io.Writer, o initOptions, d *nodeDir, ca *pki.CA) {
	cfgPath := d.path(fileConfig)
	fmt.Fprintf(w, `Created a new ferry cluster in %s:
  %-13s config of node %s (bootstrap: true)
  %-13s cluster master key: copy it to every node over a secure channel, keep an offline backup
  %-13s cluster CA certificate, SHA-256 %s
  %-13s CA key: sealed into the cluster at the first start of %s, then deleted
  %-13s %s's cluster certificate and key
  %-13s HTTPS API certificate and key

Next steps:
  1. Start the first node:
       ferryd run --config %s
  2. For each other node, make a join token (one node each, valid 1h by
     default), and keep it in a file only you can read:
       (umask 077; ferryd token --config %s --node-id n2 >n2.token)
  3. On that node, with copies of master.key and the token file:
       ferryd join --server %s --token-file n2.token --dir DIR --node-id n2 \
         --cluster-addr HOST:PORT --api-addr HOST:PORT --master-key-file PATH
     The node joins as a non-voter and votes once it has caught up. With two
     voters, losing either stops writes: join a third node soon after.
`,
		d.dir, fileConfig, o.nodeID, fileMasterKey, fileCACert, pki.Fingerprint(ca.Cert),
		fileCAKey, o.nodeID, "tls/node.*", o.nodeID, "tls/api.*",
		cfgPath, cfgPath, serverURL(o))
}

// serverURL is the API URL other nodes can join through, as far as init
// knows it.
func serverURL(o initOptions) string {
	if o.publicURL != "" {
		return o.publicURL
	}
	names := apiNames(o.apiNames, o.apiAddr)
	_, port, _ := net.SplitHostPort(o.apiAddr)
	if len(names) == 0 || port == "" {
		return "HOST:PORT"
	}
	return "https://" + net.JoinHostPort(names[0], port)
}
