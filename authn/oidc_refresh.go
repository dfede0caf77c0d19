package authn

import (
	"context"
	"errors"
	"fmt"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// errInvalidGrant is returned by refresh when the identity provider
// refused the refresh token (invalid_grant, RFC 6749 section 5.2): the
// user was disabled or deleted there, or the grant was revoked.
var errInvalidGrant = errors.New("authn: identity provider refused the refresh token (invalid_grant)")

// refresh redeems a refresh token and returns who the identity provider
// says the person is now, the claims it said it with, and the refresh
// token to keep (the new one if the provider rotated it). The identity
// comes from the refreshed ID token, or from the userinfo endpoint when the
// provider sends no ID token on refresh. An invalid_grant answer is
// errInvalidGrant; anything else (network, 5xx) means the provider could
// not be asked.
func (rp *relyingParty) refresh(ctx context.Context, refreshToken string) (Identity, map[string]any, string, error) {
	oc, v, err := rp.discover(ctx)
	if err != nil {
		return Identity{}, nil, "", err
	}
	cctx := rp.clientCtx(ctx)
	tok, err := oc.TokenSource(cctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return Identity{}, nil, "", fmt.Errorf("%w: %s", errInvalidGrant, re.ErrorDescription)
		}
		return Identity{}, nil, "", fmt.Errorf("refreshing the token: %w", err)
	}
	kept := refreshToken
	if tok.RefreshToken != "" {
		kept = tok.RefreshToken
	}
	var claims map[string]any
	if raw, ok := tok.Extra("id_token").(string); ok && raw != "" {
		idt, err := v.Verify(cctx, raw)
		if err != nil {
			return Identity{}, nil, kept, fmt.Errorf("verifying the refreshed ID token: %w", err)
		}
		if err := idt.Claims(&claims); err != nil {
			return Identity{}, nil, kept, fmt.Errorf("reading the refreshed ID token: %w", err)
		}
	} else {
		p, err := oidc.NewProvider(cctx, rp.cfg.Issuer)
		if err != nil {
			return Identity{}, nil, kept, fmt.Errorf("discovering the userinfo endpoint: %w", err)
		}
		ui, err := p.UserInfo(cctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return Identity{}, nil, kept, fmt.Errorf("reading userinfo: %w", err)
		}
		if err := ui.Claims(&claims); err != nil {
			return Identity{}, nil, kept, fmt.Errorf("reading userinfo: %w", err)
		}
	}
	id, err := rp.identity(claims)
	if err != nil {
		return Identity{}, nil, kept, err
	}
	return id, claims, kept, nil
}
