package client

import (
	"context"
	"net/http"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// IdP returns the endpoints to give the identity provider and the SCIM
// token's state (admin).
func (c *Client) IdP(ctx context.Context) (wire.IdP, error) {
	var out wire.IdP
	return out, c.do(ctx, http.MethodGet, wire.PathIdP, nil, &out)
}

// RotateSCIMToken mints a new SCIM bearer token, replacing the old one at
// once (admin). The answer holds a secret: never log it.
func (c *Client) RotateSCIMToken(ctx context.Context) (wire.SCIMToken, error) {
	var out wire.SCIMToken
	return out, c.do(ctx, http.MethodPost, wire.PathSCIMToken, nil, &out)
}
