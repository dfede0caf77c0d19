package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/config"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/spf13/cobra"
)

// defaultJoinWait bounds how long join keeps trying while the server is
// unreachable or has no quorum, as when all nodes boot at once.
const defaultJoinWait = 2 * time.Minute

type joinOptions struct {
	server        string
	token         string
	tokenFile     string
	dir           string
	dataDir       string
	nodeID        string
	clusterAddr   string
	apiAddr       string
	apiNames      []string
	metricsAddr   string
	masterKeyFile string
	publicURL     string
	oidcSecret    string
	logFormat     string
	wait          time.Duration
}

func newJoinCmd(stdout, stderr io.Writer) *cobra.Command {
	o := joinOptions{dataDir: dirData, metricsAddr: config.DefaultMetricsAddr, logFormat: config.DefaultLogFormat, wait: defaultJoinWait}
	cmd := &cobra.Command{
		Use:   "join --server URL --token TOKEN|--token-file FILE --dir DIR --node-id ID --cluster-addr HOST:PORT --api-addr HOST:PORT --master-key-file PATH",
		Short: "Join a new node to a cluster, then run it",
		Long: `join adds a new node to an existing cluster:

 1. It makes the node's keys here (they never leave this machine) and sends
    certificate requests and --cluster-addr, with the token, to the cluster's
    API at --server. The server is authenticated by the CA pin inside the
    token and must present a certificate for the --server host. The cluster
    consumes the token (it admits one node), issues the certificates and adds
    the node as a non-voter in the same step.
 2. It writes DIR/tls/* (the CA, the node's and the API's certificates and keys)
    and DIR/ferryd.yaml: a complete config with the cluster's public URL, API
    names and sign-in settings, pointing at --master-key-file (a copy of the
    cluster's master key, mode 0600) and, when the cluster signs users in with
    OIDC, at --oidc-client-secret-file (a copy of the client secret).
 3. It starts the node, which catches up and then has itself made a voter,
    and keeps running like "ferryd run". Later, start it with
    "ferryd run --config DIR/ferryd.yaml".

If the token is refused, join removes what it wrote. A node admitted that
never starts is removed by the cluster after 10 minutes. The node
certificate is short-lived (7 days) and renewed by the running node.

When the cluster has a single voter, the second node to join makes two
voters: until a third joins, losing either stops writes. Join the third node
right after the second.`,
		Example: `  ferryd join --server https://10.0.1.5:8443 --token "$TOKEN" \
      --dir /etc/ferry --data-dir /var/lib/ferry --node-id n2 --cluster-addr 10.0.1.6:7946 \
      --api-addr 0.0.0.0:8443 --api-name vpn.example.com --api-name 10.0.1.6 \
      --master-key-file /etc/ferry/master.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return joinCluster(cmd.Context(), o, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", "", "https:// URL of any node's API, or of the load balancer")
	f.StringVar(&o.token, "token", "", "join token from 'ferryd token'")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the join token, instead of --token (keeps it out of the process list)")
	f.StringVar(&o.dir, "dir", "", "directory for this node's files (created if missing)")
	f.StringVar(&o.dataDir, "data-dir", o.dataDir, "data_dir of the config: the node's state (relative to --dir, or absolute)")
	f.StringVar(&o.nodeID, "node-id", "", "ID of this node, unique in the cluster")
	f.StringVar(&o.clusterAddr, "cluster-addr", "", "host:port of this node's cluster listener, as other nodes dial it")
	f.StringVar(&o.apiAddr, "api-addr", "", "host:port the HTTPS API listens on")
	f.StringSliceVar(&o.apiNames, "api-name", nil, "DNS name or IP address clients use for the API (repeat; default the host of --api-addr)")
	f.StringVar(&o.metricsAddr, "metrics-addr", o.metricsAddr, "host:port of the plain-HTTP metrics listener")
	f.StringVar(&o.masterKeyFile, "master-key-file", "", "the cluster master key, copied from the first node (mode 0600)")
	f.StringVar(&o.publicURL, "public-url", "", "api.public_url of the new config; default the cluster's")
	f.StringVar(&o.oidcSecret, "oidc-client-secret-file", "", "copy of the OIDC client secret, when the cluster signs users in with OIDC")
	f.StringVar(&o.logFormat, "log-format", o.logFormat, "json or text")
	f.DurationVar(&o.wait, "wait", o.wait, "how long to keep trying while the server is unreachable or has no quorum")
	for _, name := range []string{"server", "dir", "node-id", "cluster-addr", "api-addr", "master-key-file"} {
		cmd.MarkFlagRequired(name)
	}
	cmd.MarkFlagsOneRequired("token", "token-file")
	cmd.MarkFlagsMutuallyExclusive("token", "token-file")
	return cmd
}

func joinCluster(ctx context.Context, o joinOptions, stdout, stderr io.Writer) error {
	// 1. Check everything that can be checked before writing anything.
	if err := pki.ValidNodeID(o.nodeID); err != nil {
		return fmt.Errorf("--node-id: %w", err)
	}
	if err := checkAddr("--cluster-addr", o.clusterAddr); err != nil {
		return err
	}
	dns, ips, err := splitNames(apiNames(o.apiNames, o.apiAddr))
	if err != nil {
		return err
	}
	tokFlag := "--token"
	if o.tokenFile != "" {
		tokFlag = "--token-file"
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		o.token = strings.TrimSpace(string(b))
	}
	tok, err := pki.ParseJoinToken(o.token)
	if err != nil {
		return fmt.Errorf("%s: %w", tokFlag, err)
	}
	if _, err := seal.LoadKeyFile(o.masterKeyFile); err != nil {
		return fmt.Errorf("--master-key-file: %w", err)
	}
	masterPath, err := filepath.Abs(o.masterKeyFile)
	if err != nil {
		return err
	}
	serverURL, err := url.Parse(o.server)
	if err != nil || serverURL.Scheme != "https" || serverURL.Hostname() == "" {
		return fmt.Errorf("--server %q: want an https:// URL", o.server)
	}
	c, err := client.New(client.Config{BaseURL: o.server, TLS: pinnedTLS(tok.CAPin, serverURL.Hostname())})
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	defer c.Close()
	d, err := newNodeDir(o.dir)
	if err != nil {
		return err
	}
	joined := false
	defer func() {
		if !joined {
			d.undo()
		}
	}()
	if err := d.claimDataDir(o.dataDir); err != nil {
		return err
	}

	// 2. Keys and certificate requests, made here: the keys never leave.
	nodeKey, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(nodeKey, o.nodeID)
	if err != nil {
		return err
	}
	apiKey, err := pki.NewKey()
	if err != nil {
		return err
	}
	apiCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: o.nodeID}, DNSNames: dns, IPAddresses: ips,
	}, apiKey)
	if err != nil {
		return fmt.Errorf("creating API certificate request: %w", err)
	}

	// 3. Ask the cluster for the certificates and check what it answers.
	req := wire.JoinRequest{
		Token: tok.Reveal(), NodeID: o.nodeID, Addr: o.clusterAddr,
		CSR: base64.StdEncoding.EncodeToString(csr), APICSR: base64.StdEncoding.EncodeToString(apiCSR),
	}
	var resp wire.JoinResponse
	err = retry(ctx, o.wait, func(err error) {
		fmt.Fprintf(stderr, "ferryd: %s not available yet, retrying: %v\n", o.server, err)
	}, func(ctx context.Context) (err error) {
		resp, err = c.Join(ctx, req)
		return err
	})
	if err != nil {
		return explainClientError("join", o.server, err)
	}
	if err := checkJoinResponse(resp, tok.CAPin, nodeKey, apiKey); err != nil {
		return fmt.Errorf("answer of %s: %w", o.server, err)
	}

	// 4. The node's files and config.
	for _, f := range []struct {
		name string
		data []byte
	}{
		{fileCACert, []byte(resp.CAPEM)},
		{fileNodeCert, []byte(resp.CertPEM)},
		{fileAPICert, []byte(resp.APICertPEM + resp.CAPEM)},
	} {
		if err := d.write(f.name, f.data, 0o644); err != nil {
			return err
		}
	}
	if err := d.writeKey(fileNodeKey, nodeKey); err != nil {
		return err
	}
	if err := d.writeKey(fileAPIKey, apiKey); err != nil {
		return err
	}
	if rel, err := filepath.Rel(d.dir, masterPath); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		masterPath = rel
	}
	cfg := joinedConfig(o, masterPath, resp.Settings)
	secretMissing := false
	if cfg.OIDC.Issuer != "" {
		if _, err := os.Stat(cfg.OIDC.ClientSecretFile); err != nil {
			secretMissing = true
		}
	}
	header := fmt.Sprintf("ferryd configuration of node %s, written by ferryd join.\n"+
		"See deploy/ferryd.example.yaml in the ferry repository for every field.", o.nodeID)
	if err := writeConfig(d, &cfg, header); err != nil {
		return err
	}
	cfgPath := d.path(fileConfig)
	// The cluster admitted the node: its files stay, whatever happens next.
	joined = true
	if secretMissing {
		fmt.Fprintf(stdout, "Admitted to the cluster as %s. The cluster signs users in with OIDC (%s): copy the client secret to\n  %s\nthen start this node, within 10 minutes or the cluster removes it, with:\n  ferryd run --config %s\n",
			o.nodeID, cfg.OIDC.Issuer, cfg.OIDC.ClientSecretFile, cfgPath)
		return nil
	}
	loaded, err := config.Load(cfgPath, config.Overrides{})
	if err != nil {
		return err
	}

	// 5. Run the node; once it has caught up it becomes a voter.
	return serve(ctx, loaded, stderr, serveOptions{member: func(ctx context.Context, r *running) error {
		voters, err := waitVoter(ctx, r, o.wait)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Joined the cluster as %s. Start this node from now on with:\n  ferryd run --config %s\n", o.nodeID, cfgPath)
		if voters == 2 {
			fmt.Fprintf(stdout, "Warning: the cluster has two voters now; losing either stops writes until a third node joins. Join the third node now.\n")
		}
		return nil
	}})
}

// waitVoter waits until the running node has caught up and the cluster
// made it a voter, and returns the number of voters then.
func waitVoter(ctx context.Context, r *running, wait time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		voters, me := 0, false
		for _, m := range r.node.Status().Members {
			if m.Voter {
				voters++
				me = me || m.ID == r.cfg.NodeID
			}
		}
		if me {
			r.log.Info("joined the cluster as a voter", "node_id", r.cfg.NodeID, "voters", voters)
			return voters, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("this node was admitted but has not become a voter within %s; is the cluster reachable from %s? (%w)", wait, r.node.Addr(), ctx.Err())
		case <-t.C:
		}
	}
}

// joinedConfig is the new node's config: its own addresses and files, and
// the cluster-wide settings the answering node sent.
func joinedConfig(o joinOptions, masterPath string, st wire.JoinSettings) config.Config {
	cfg := config.Config{
		NodeID: o.nodeID, DataDir: o.dataDir, MasterKeyFile: masterPath,
		Cluster: config.Cluster{BindAddr: o.clusterAddr},
		TLS:     config.TLS{CAFile: fileCACert, CertFile: fileNodeCert, KeyFile: fileNodeKey},
		API:     config.API{ListenAddr: o.apiAddr, CertFile: fileAPICert, KeyFile: fileAPIKey, PublicURL: st.PublicURL, Names: st.APINames},
		Metrics: config.Metrics{ListenAddr: o.metricsAddr},
		Log:     config.Log{Level: config.DefaultLogLevel, Format: o.logFormat},
	}
	if o.publicURL != "" {
		cfg.API.PublicURL = o.publicURL
	}
	if st.OIDCIssuer != "" {
		secret := o.oidcSecret
		if secret == "" {
			secret = filepath.Join(o.dir, "oidc-client-secret")
		}
		if abs, err := filepath.Abs(secret); err == nil {
			secret = abs
		}
		cfg.OIDC = config.OIDC{
			Issuer: st.OIDCIssuer, ClientID: st.OIDCClientID, ClientSecretFile: secret, Scopes: st.OIDCScopes,
			UserIDClaim: st.OIDCUserIDClaim, EmailClaim: st.OIDCEmailClaim, NameClaim: st.OIDCNameClaim,
			GroupsClaim: st.OIDCGroupsClaim, AllowedEmailDomains: st.OIDCAllowedEmailDomains, RequiredGroups: st.OIDCRequiredGroups,
		}
	}
	cfg.Sessions.AdminGroups = st.AdminGroups
	cfg.Profiles.Pool = st.ProfilesPool
	cfg.Profiles.Pool6 = st.ProfilesPool6
	return cfg
}

// retry calls f until it succeeds, fails for good, or wait has passed. It
// retries only what may pass later: a server that cannot be dialled, or one
// that answers 503 (no quorum, CA not replicated yet).
func retry(ctx context.Context, wait time.Duration, report func(error), f func(context.Context) error) error {
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		err := f(ctx)
		if err == nil || !transient(err) || time.Now().After(deadline) {
			return err
		}
		report(err)
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
}

// transient reports whether err may go away by itself.
func transient(err error) bool {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Status == http.StatusServiceUnavailable
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// explainClientError says which step failed; a refused token gets its own
// words, since it is the usual mistake.
func explainClientError(step, server string, err error) error {
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status == http.StatusUnauthorized {
		return fmt.Errorf("%s refused by %s: join token refused: %s; make a new one with 'ferryd token'", step, server, ce.Message)
	}
	if errors.Is(err, pki.ErrPinMismatch) {
		return fmt.Errorf("%s via %s: the server is not part of the cluster the token names: %w", step, server, err)
	}
	return fmt.Errorf("%s via %s: %w", step, server, err)
}

// pinnedTLS authenticates the server by the CA pin of a join token instead
// of the system roots, which do not know the cluster CA, and checks that its
// certificate is for host (the --server host), as TLS would.
func pinnedTLS(pin, host string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Replaced by VerifyPeerCertificate: the server must present a
		// certificate issued by the pinned CA, followed by that CA, for
		// the name dialled.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if err := pki.VerifyPin(raw, pin); err != nil {
				return err
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			if err := leaf.VerifyHostname(host); err != nil {
				return fmt.Errorf("%w: %v", pki.ErrPinMismatch, err)
			}
			return nil
		},
	}
}

// checkJoinResponse checks that the CA is the pinned one and that both
// certificates belong to this node's keys and were issued by that CA.
func checkJoinResponse(resp wire.JoinResponse, pin string, nodeKey, apiKey crypto.Signer) error {
	ca, err := pki.ParseCertPEM([]byte(resp.CAPEM))
	if err != nil {
		return fmt.Errorf("ca_pem: %w", err)
	}
	if !strings.HasPrefix(pki.Fingerprint(ca), pin) {
		return errors.New("ca_pem is not the CA the token pins")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, c := range []struct {
		field string
		pem   string
		key   crypto.Signer
		usage x509.ExtKeyUsage
	}{
		{"cert_pem", resp.CertPEM, nodeKey, x509.ExtKeyUsageClientAuth},
		{"api_cert_pem", resp.APICertPEM, apiKey, x509.ExtKeyUsageServerAuth},
	} {
		keyPEM, err := pki.KeyPEM(c.key)
		if err != nil {
			return err
		}
		pair, err := tls.X509KeyPair([]byte(c.pem), keyPEM)
		clear(keyPEM)
		if err != nil {
			return fmt.Errorf("%s: %w", c.field, err)
		}
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{c.usage}}); err != nil {
			return fmt.Errorf("%s: %w", c.field, err)
		}
	}
	return nil
}
