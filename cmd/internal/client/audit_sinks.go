package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

func sinkPath(tmpl, name string) string {
	return strings.Replace(tmpl, "{name}", url.PathEscape(name), 1)
}

// AuditSinks lists the network audit sinks stored in the cluster.
func (c *Client) AuditSinks(ctx context.Context) (wire.AuditSinkList, error) {
	var out wire.AuditSinkList
	err := c.do(ctx, http.MethodGet, wire.PathAuditSinks, nil, &out)
	return out, err
}

// AuditSink shows one network audit sink (secrets never returned).
func (c *Client) AuditSink(ctx context.Context, name string) (wire.AuditSink, error) {
	var out wire.AuditSink
	err := c.do(ctx, http.MethodGet, sinkPath(wire.PathAuditSink, name), nil, &out)
	return out, err
}

// AddAuditSink stores a network audit sink; its secrets are sealed.
func (c *Client) AddAuditSink(ctx context.Context, s wire.AuditSink) (wire.AuditSink, error) {
	var out wire.AuditSink
	err := c.do(ctx, http.MethodPost, wire.PathAuditSinks, s, &out)
	return out, err
}

// RemoveAuditSink removes a network audit sink and its cursor.
func (c *Client) RemoveAuditSink(ctx context.Context, name string) error {
	var out struct{}
	return c.do(ctx, http.MethodDelete, sinkPath(wire.PathAuditSink, name), nil, &out)
}

// TestAuditSink sends a marked test record through the sink.
func (c *Client) TestAuditSink(ctx context.Context, name string) (wire.AuditSinkTestResult, error) {
	var out wire.AuditSinkTestResult
	err := c.do(ctx, http.MethodPost, sinkPath(wire.PathAuditSinkTest, name), nil, &out)
	return out, err
}
