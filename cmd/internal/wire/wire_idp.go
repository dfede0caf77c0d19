package wire

import "time"

// Identity provider administration.
const (
	// PathIdP: GET (admin): the endpoints to give the identity provider,
	// and the SCIM token's state.
	PathIdP = "/v1/idp"
	// PathSCIMToken: POST (admin): mint a new SCIM bearer token, replacing
	// the old one at once; the answer is the only place it is shown.
	PathSCIMToken = "/v1/idp/scim-token"
)

// IdP describes what the identity provider is configured to reach.
// Endpoints are absolute when the server knows its public URL, else
// paths.
type IdP struct {
	Issuer string `json:"issuer,omitempty"`
	// SCIMBaseURL is empty when SCIM is off.
	SCIMBaseURL    string    `json:"scim_base_url,omitempty"`
	SCIMTokenSet   bool      `json:"scim_token_set"`
	SCIMRotated    time.Time `json:"scim_token_rotated,omitzero"`
	SCIMRotatedBy  string    `json:"scim_token_rotated_by,omitempty"`
	SCIMGroupName  string    `json:"scim_group_name,omitempty"`
	BackChannelURL string    `json:"backchannel_logout_url,omitempty"`
	SSFPushURL     string    `json:"ssf_push_url,omitempty"`
	SSFIssuer      string    `json:"ssf_issuer,omitempty"`
}

// SCIMToken is a freshly minted SCIM token: a secret, shown once.
type SCIMToken struct {
	Token   string `json:"token"`
	BaseURL string `json:"scim_base_url"`
}
