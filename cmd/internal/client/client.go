// Package client is the Go client of ferryd's HTTP API.
//
// It depends on the wire types only, never on the cluster store, so the
// client binaries can use it. The caller decides how the server is
// authenticated by the tls.Config it passes.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// maxResponseBytes bounds how much of an answer is read.
const maxResponseBytes = 1 << 20

// Config configures a Client.
type Config struct {
	// BaseURL is the https:// URL of a ferryd node or of the load balancer
	// in front of the nodes. Required.
	BaseURL string
	// TLS authenticates the server. Required: there is no default trust,
	// because ferry's API is usually served with the cluster's own CA.
	TLS *tls.Config
	// Timeout bounds each request; default 30s.
	Timeout time.Duration
	// Token is the session token sent as a bearer token; empty for the
	// unauthenticated endpoints (join).
	Token string
}

// Client calls ferryd's API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	http  *http.Client
	token string
}

// Error is an error answer of the API.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Message is the server's explanation.
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.Status, http.StatusText(e.Status))
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want https://host[:port]", cfg.BaseURL)
	}
	if cfg.TLS == nil {
		return nil, errors.New("client config: TLS is required")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	tr := &http.Transport{TLSClientConfig: cfg.TLS, ForceAttemptHTTP2: true, Proxy: http.ProxyFromEnvironment}
	return &Client{base: u, http: &http.Client{Transport: tr, Timeout: cfg.Timeout}, token: cfg.Token}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Join asks the cluster for a joining node's certificates.
func (c *Client) Join(ctx context.Context, req wire.JoinRequest) (wire.JoinResponse, error) {
	var resp wire.JoinResponse
	err := c.do(ctx, http.MethodPost, wire.PathJoin, req, &resp)
	return resp, err
}

// AddMember adds a node that runs with its node certificate to the cluster
// (administrators only): as a non-voter, a voter once it has caught up.
func (c *Client) AddMember(ctx context.Context, req wire.MembersRequest) (wire.MembersResponse, error) {
	var resp wire.MembersResponse
	err := c.do(ctx, http.MethodPost, wire.PathMembers, req, &resp)
	return resp, err
}

// do sends in as JSON and decodes a 200 answer into out. Other answers
// become an *Error.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.doQuery(ctx, method, path, nil, in, out, nil)
}

// doQuery is do with query parameters and extra headers. A nil in sends no
// body.
func (c *Client) doQuery(ctx context.Context, method, path string, query url.Values, in, out any, hdr http.Header) error {
	var rd io.Reader
	if in != nil {
		body, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		rd = bytes.NewReader(body)
	}
	u := c.base.JoinPath(path)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e wire.Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data[:min(len(data), 200)]))
		}
		return &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
	}
	return nil
}
