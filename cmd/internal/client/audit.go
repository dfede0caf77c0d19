package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// AuditQuery selects audit records; empty fields match everything.
type AuditQuery struct {
	FromSeq      uint64
	Since, Until string // RFC 3339
	Types        []string
	User         string
	Format       string // json (default), cef, ocsf, syslog
	Follow       bool   // keep streaming new records
}

func (q AuditQuery) values() url.Values {
	v := url.Values{}
	if q.FromSeq > 0 {
		v.Set("from_seq", fmt.Sprint(q.FromSeq))
	}
	for k, s := range map[string]string{"since": q.Since, "until": q.Until, "user": q.User, "format": q.Format} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if len(q.Types) > 0 {
		v.Set("type", strings.Join(q.Types, ","))
	}
	if q.Follow {
		v.Set("follow", "1")
	}
	return v
}

// AuditRecords streams audit records into w until the export ends (or,
// when following, until ctx ends). It uses no request timeout.
func (c *Client) AuditRecords(ctx context.Context, q AuditQuery, w io.Writer) error {
	u := c.base.JoinPath(wire.PathAuditRecords)
	u.RawQuery = q.values().Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	hc := &http.Client{Transport: c.http.Transport} // streams outlive the request timeout
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", wire.PathAuditRecords, err)
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
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}

// AuditKey returns the audit public key record (JSON), for offline
// verification.
func (c *Client) AuditKey(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	return out, c.do(ctx, http.MethodGet, wire.PathAuditKey, nil, &out)
}

// AuditStatus returns the retention settings, the answering node's
// journal range and the last prune of flow records.
func (c *Client) AuditStatus(ctx context.Context) (wire.AuditStatus, error) {
	var out wire.AuditStatus
	return out, c.do(ctx, http.MethodGet, wire.PathAuditStatus, nil, &out)
}

// AuditVerify verifies the live journal of the node that answers.
func (c *Client) AuditVerify(ctx context.Context) (wire.AuditVerifyResponse, error) {
	var out wire.AuditVerifyResponse
	return out, c.do(ctx, http.MethodPost, wire.PathAuditVerify, struct{}{}, &out)
}
