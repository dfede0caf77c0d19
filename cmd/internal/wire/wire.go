// Package wire defines the JSON bodies of ferryd's HTTP API, shared by the
// server (cmd/internal/api) and the clients (cmd/internal/client).
//
// It imports nothing of ferry's, so that the client binaries can use it
// without linking the cluster store.
package wire

// MaxBodyBytes bounds every request body the API reads, so that a client
// cannot make a node buffer unbounded input.
const MaxBodyBytes = 64 << 10

// Paths of the API.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathJoin    = "/v1/cluster/join"
	PathMembers = "/v1/cluster/members"
)

// Error is the body of every JSON error response.
type Error struct {
	Error string `json:"error"`
}

// JoinRequest asks the cluster for the certificates of a new node. The
// node's private keys never leave it: it sends certificate requests.
type JoinRequest struct {
	// Token is a join token from `ferryd token`.
	Token string `json:"token"`
	// NodeID is the new node's ID.
	NodeID string `json:"node_id"`
	// Addr is the host:port other nodes dial to reach the new node's
	// cluster listener: it is added as a non-voter there at once.
	Addr string `json:"addr"`
	// CSR is the node's certificate request (DER, standard base64), with
	// common name NodeID.
	CSR string `json:"csr"`
	// APICSR is a certificate request (DER, standard base64) for the node's
	// HTTPS API, carrying the DNS names and IP addresses it serves.
	APICSR string `json:"api_csr"`
}

// JoinResponse carries the certificates of a new node, in PEM.
type JoinResponse struct {
	// CAPEM is the cluster CA certificate.
	CAPEM string `json:"ca_pem"`
	// CertPEM is the node certificate, for mutual TLS with other nodes.
	CertPEM string `json:"cert_pem"`
	// APICertPEM is the HTTPS API server certificate.
	APICertPEM string `json:"api_cert_pem"`
	// Settings are the cluster-wide settings the new node's config needs.
	Settings JoinSettings `json:"settings"`
}

// JoinSettings are the answering node's cluster-wide settings, so that a
// joined node starts with the same public URL, names and sign-in. No
// secrets: the OIDC client secret file is the operator's to copy, like the
// master key.
type JoinSettings struct {
	PublicURL string   `json:"public_url,omitempty"`
	APINames  []string `json:"api_names,omitempty"`
	// OIDC, when the cluster signs users in, without the secret.
	OIDCIssuer              string   `json:"oidc_issuer,omitempty"`
	OIDCClientID            string   `json:"oidc_client_id,omitempty"`
	OIDCScopes              []string `json:"oidc_scopes,omitempty"`
	OIDCUserIDClaim         string   `json:"oidc_user_id_claim,omitempty"`
	OIDCEmailClaim          string   `json:"oidc_email_claim,omitempty"`
	OIDCNameClaim           string   `json:"oidc_name_claim,omitempty"`
	OIDCGroupsClaim         string   `json:"oidc_groups_claim,omitempty"`
	OIDCAllowedEmailDomains []string `json:"oidc_allowed_email_domains,omitempty"`
	OIDCRequiredGroups      []string `json:"oidc_required_groups,omitempty"`
	AdminGroups             []string `json:"admin_groups,omitempty"`
	ProfilesPool            string   `json:"profiles_pool,omitempty"`
	ProfilesPool6           string   `json:"profiles_pool6,omitempty"`
}

// MembersRequest adds a node, already running with its node certificate,
// to the cluster (administrators only): as a non-voter, promoted once it
// has caught up.
type MembersRequest struct {
	NodeID string `json:"node_id"`
	// Addr is the host:port other nodes dial to reach the new node.
	Addr string `json:"addr"`
}

// MembersResponse reports the membership after the change.
type MembersResponse struct {
	Members []Member `json:"members"`
}

// Member is one voting or non-voting member of the cluster.
type Member struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	Voter bool   `json:"voter"`
}
