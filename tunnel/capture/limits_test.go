package capture

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

// TestCapsAreClusterConfiguration: the nodes' configured caps differ; the
// first import wins and every node then reads the cluster's caps. An
// administrator's change on node 0 (admin role, fresh TOTP, valid values,
// each attempt an audit event) binds a capture run from node 1: over the
// duration cap refused, payloads kept once allowed, and the concurrency
// cap counted across nodes.
func TestCapsAreClusterConfiguration(t *testing.T) {
	i := 0
	cc := startCaptureCluster(t, Caps{}, func(c *Config) {
		if i == 0 {
			c.Caps.MaxDuration = time.Hour // only node 0's file says so
		}
		i++
	})
	ctx := clustertest.AsAdmin(context.Background())
	if got, _ := cc.svcs[1].Caps(ctx); got.MaxDuration != 10*time.Minute {
		t.Fatalf("node 1 before any import: %+v, want its own defaults", got)
	}
	if ok, err := cc.svcs[0].ImportCaps(ctx); !ok || err != nil {
		t.Fatalf("first import: %v, %v", ok, err)
	}
	if ok, err := cc.svcs[1].ImportCaps(ctx); ok || err != nil {
		t.Fatalf("second import: %v, %v; want nothing stored over the cluster's caps", ok, err)
	}
	for n := range 3 {
		if got, err := cc.svcs[n].Caps(ctx); err != nil || got.MaxDuration != time.Hour {
			t.Fatalf("node %d after the import: %+v, %v; want the cluster's (1h)", n, got, err)
		}
	}

	admin := audit.Actor{UserID: "u-admin", Email: "admin@example.com", Role: "admin"}
	d30, one, yes, zero := 30*time.Second, 1, true, 0
	good := CapsChange{Actor: admin, Admin: true, TOTP: "123456", MaxDuration: &d30, MaxConcurrent: &one, AllowPayload: &yes}
	for _, tt := range []struct {
		name, want string
		edit       func(*CapsChange)
		err        error
	}{
		{"non-admin", "administrator", func(c *CapsChange) { c.Admin = false; c.Actor.Role = "user" }, ErrForbidden},
		{"no totp", "TOTP", func(c *CapsChange) { c.TOTP = "" }, ErrStepUp},
		{"stale totp", "TOTP", func(c *CapsChange) { c.TOTP = "654321" }, ErrStepUp},
		{"zero concurrent", "max_concurrent", func(c *CapsChange) { c.MaxConcurrent = &zero }, ErrInvalid},
		{"two days", "max_duration", func(c *CapsChange) { d := 48 * time.Hour; c.MaxDuration = &d }, ErrInvalid},
		{"nothing", "nothing to change", func(c *CapsChange) { *c = CapsChange{Actor: admin, Admin: true, TOTP: "123456"} }, ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ch := good
			tt.edit(&ch)
			before := len(cc.rec.actions())
			if _, err := cc.svcs[0].SetCaps(ctx, ch); !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %v naming %q", err, tt.err, tt.want)
			}
			evs := cc.rec.actions()[before:]
			if len(evs) != 1 || evs[0].Action != "capture.limits" || evs[0].Outcome != audit.Failure || evs[0].Reason == "" {
				t.Fatalf("audit %+v, want one failed capture.limits with its reason", evs)
			}
			if got, _ := cc.svcs[2].Caps(ctx); got.MaxDuration != time.Hour {
				t.Fatalf("caps changed by a refused change: %+v", got)
			}
		})
	}
	before := len(cc.rec.actions())
	if _, err := cc.svcs[0].SetCaps(ctx, good); err != nil {
		t.Fatal(err)
	}
	evs := cc.rec.actions()[before:]
	if len(evs) != 1 || evs[0].Outcome != audit.Success || evs[0].Details["before.max_duration"] != "1h0m0s" ||
		evs[0].Details["after.max_duration"] != "30s" || evs[0].Details["after.allow_payload"] != "true" {
		t.Fatalf("audit %+v, want one capture.limits with the caps before and after", evs)
	}

	// Node 1 runs captures under the caps set on node 0.
	req := adminReq()
	req.Duration = time.Minute
	if _, err := cc.svcs[1].Run(ctx, req, io.Discard); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "cap of 30s") {
		t.Fatalf("a minute: %v, want refused over the cluster's cap of 30s", err)
	}
	done := make(chan error, 1)
	go func() {
		req := adminReq()
		req.Snaplen = 1500 // payloads are allowed now
		_, err := cc.svcs[1].Run(ctx, req, io.Discard)
		done <- err
	}()
	clustertest.WaitFor(t, 10*time.Second, "a capture runs", func() error {
		if rs, err := cc.svcs[2].Running(ctx); err != nil || len(rs) == 0 {
			return errors.New("none yet")
		}
		return nil
	})
	if _, err := cc.svcs[2].Run(ctx, adminReq(), io.Discard); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second capture on node 2: %v, want ErrBusy (the cluster allows one)", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the capture keeping payloads: %v", err)
	}
}
