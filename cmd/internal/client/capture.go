package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// Capture runs a packet capture on every node (admin, with a fresh TOTP
// code) and copies the merged pcapng file into w as it arrives; the
// result comes from the answer's trailers. Cancelling ctx stops the
// capture on every node.
func (c *Client) Capture(ctx context.Context, in wire.CaptureRequest, w io.Writer) (wire.CaptureResult, error) {
	var out wire.CaptureResult
	body, err := json.Marshal(in)
	if err != nil {
		return out, fmt.Errorf("encoding request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.JoinPath(wire.PathCaptures).String(), bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	// No request timeout: the capture's duration bounds it.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return out, fmt.Errorf("POST %s: %w", wire.PathCaptures, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		var e wire.Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return out, &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return out, fmt.Errorf("receiving the capture: %w", err)
	}
	t := resp.Trailer
	num := func(k string) uint64 { n, _ := strconv.ParseUint(t.Get(k), 10, 64); return n }
	out = wire.CaptureResult{
		SHA256: t.Get(wire.TrailerCaptureSHA256), Packets: num(wire.TrailerCapturePackets), Bytes: num(wire.TrailerCaptureBytes),
		Dropped: num(wire.TrailerCaptureDropped), Stopped: t.Get(wire.TrailerCaptureStopped), Nodes: t.Get(wire.TrailerCaptureNodes),
		Error: t.Get(wire.TrailerCaptureError),
	}
	if out.SHA256 == "" {
		return out, fmt.Errorf("the capture ended without its outcome (connection cut?)")
	}
	return out, nil
}

// Captures lists the captures running on the answering node (admin).
func (c *Client) Captures(ctx context.Context) ([]wire.RunningCapture, error) {
	var out wire.CaptureList
	return out.Captures, c.do(ctx, http.MethodGet, wire.PathCaptures, nil, &out)
}

// CaptureLimits returns the cluster's capture caps (admin).
func (c *Client) CaptureLimits(ctx context.Context) (wire.CaptureLimits, error) {
	var out wire.CaptureLimits
	return out, c.do(ctx, http.MethodGet, wire.PathCaptureLimits, nil, &out)
}

// SetCaptureLimits changes the cluster's capture caps (admin, with a fresh
// TOTP code) and returns them.
func (c *Client) SetCaptureLimits(ctx context.Context, in wire.CaptureLimitsChange) (wire.CaptureLimits, error) {
	var out wire.CaptureLimits
	return out, c.do(ctx, http.MethodPut, wire.PathCaptureLimits, in, &out)
}
