package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// ClusterStatus returns the answering node's view of the cluster.
func (c *Client) ClusterStatus(ctx context.Context) (wire.ClusterStatus, error) {
	var out wire.ClusterStatus
	return out, c.do(ctx, http.MethodGet, wire.PathClusterStatus, nil, &out)
}

// RemoveMember removes a node from the cluster.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	var out struct{}
	return c.do(ctx, http.MethodDelete, pathWith(wire.PathClusterMember, "id", id), nil, &out)
}

// Backup streams a consistent snapshot of the cluster's state into w.
func (c *Client) Backup(ctx context.Context, w io.Writer) error {
	return c.stream(ctx, http.MethodGet, wire.PathClusterBackup, nil, w)
}

// Restore replaces the whole cluster's state with a backup. Any node takes
// it and streams it on to the leader.
func (c *Client) Restore(ctx context.Context, backup io.Reader) error {
	return c.stream(ctx, http.MethodPost, wire.PathClusterRestore, backup, io.Discard)
}

// JoinToken mints a join token valid for ttl (0: the server's default),
// admitting only nodeID unless it is empty.
// The answer holds a secret: never log it.
func (c *Client) JoinToken(ctx context.Context, ttl time.Duration, nodeID string) (wire.JoinTokenResponse, error) {
	var out wire.JoinTokenResponse
	in := wire.JoinTokenRequest{TTLSeconds: int64(ttl / time.Second), NodeID: nodeID}
	return out, c.do(ctx, http.MethodPost, wire.PathClusterJoinTokens, in, &out)
}

// stream sends body (if any) and copies a 200 answer into w, with no
// request timeout.
func (c *Client) stream(ctx context.Context, method, path string, body io.Reader, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base.JoinPath(path).String(), body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		var e wire.Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &Error{Status: resp.StatusCode, Message: e.Error}
	}
	_, err = io.Copy(w, resp.Body)
	return err
}
