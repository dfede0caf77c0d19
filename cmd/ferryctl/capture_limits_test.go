package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// TestCaptureLimits: the capture caps are set with ferryctl through node
// 1's API and bind a capture request on node 2; a non-admin, a missing
// code, a used code and bad values are refused, and every attempt is in
// the audit log.
func TestCaptureLimits(t *testing.T) {
	dir := isolate(t)
	servers := apitest.StartCluster(t, 2)
	n1, n2 := servers[0], servers[1]
	admin := authn.Identity{UserID: "admin", Email: "admin@example.com", Groups: []string{apitest.AdminGroup}}
	adminTok := n1.Token(t, admin)
	en, err := n1.MFA.BeginEnroll(t.Context(), admin)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	code := func(at time.Time) string {
		c, err := authntest.TOTPCode(en.URI, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := n1.MFA.ConfirmEnroll(t.Context(), admin, code(now), authn.Source{Addr: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	signIn(t, n1, adminTok)
	aliceTok := n1.Token(t, alice)
	onN2 := userClient(t, n2, adminTok)
	capReq := func(in wire.CaptureRequest) error {
		in.User, in.Reason, in.TOTP = "alice@example.com", "INC-7", "000000"
		_, err := onN2.Capture(t.Context(), in, os.Stdout)
		return err
	}
	wantErr := func(t *testing.T, err error, status int, text string) {
		t.Helper()
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != status || !strings.Contains(ae.Message, text) {
			t.Fatalf("err %v, want %d naming %q", err, status, text)
		}
	}

	// The leader imports its configured caps (here the defaults) once:
	// from then on every node reads the cluster's.
	clustertest.WaitFor(t, 20*time.Second, "the caps imported into the cluster", func() error {
		kv, ok, err := n1.Cluster.Node(1).Get(t.Context(), "capture/caps", cluster.Local)
		if err != nil || !ok || !strings.Contains(string(kv.Value), `"max_duration_ns":600000000000`) {
			return fmt.Errorf("not yet: %v", err)
		}
		return nil
	})
	if out := mustCtl(t, "capture", "limits"); !strings.Contains(out, "Max duration:    10m0s") || !strings.Contains(out, "headers only: 96 bytes") {
		t.Fatalf("defaults:\n%s", out)
	}
	// Before: payloads are not allowed anywhere.
	wantErr(t, capReq(wire.CaptureRequest{Snaplen: 1500}), 400, "payloads")

	t.Run("a non-admin is refused", func(t *testing.T) {
		v := 10
		_, err := userClient(t, n1, aliceTok).SetCaptureLimits(t.Context(), wire.CaptureLimitsChange{MaxConcurrent: &v, TOTP: "123456"})
		wantErr(t, err, 403, "administrator")
		_, err = userClient(t, n1, aliceTok).CaptureLimits(t.Context())
		wantErr(t, err, 403, "")
	})
	t.Run("a missing code is refused", func(t *testing.T) {
		v := 10
		_, err := userClient(t, n1, adminTok).SetCaptureLimits(t.Context(), wire.CaptureLimitsChange{MaxConcurrent: &v})
		wantErr(t, err, 403, "fresh TOTP")
		if _, err := ctl(t, "", "capture", "limits", "set", "--max-concurrent", "3"); err == nil || !strings.Contains(err.Error(), "--totp") {
			t.Fatalf("ferryctl without --totp: %v", err)
		}
	})
	t.Run("a used code is refused", func(t *testing.T) {
		if _, err := ctl(t, "", "capture", "limits", "set", "--allow-payload=true", "--totp", code(now)); err == nil || !strings.Contains(err.Error(), "fresh TOTP") {
			t.Fatalf("err %v, want a step-up refusal", err)
		}
	})
	t.Run("bad values are refused by name", func(t *testing.T) {
		for _, tc := range [][]string{
			{"--max-concurrent", "0", "max_concurrent"},
			{"--max-duration", "48h", "max_duration"},
			{"--max-bytes", "2000GB", "max_bytes"},
		} {
			_, err := ctl(t, "", "capture", "limits", "set", tc[0], tc[1], "--totp", "000000")
			if err == nil || !strings.Contains(err.Error(), tc[2]) {
				t.Fatalf("%s %s: %v, want an error naming %s", tc[0], tc[1], err, tc[2])
			}
		}
	})
	t.Run("set on node 1", func(t *testing.T) {
		out := mustCtl(t, "capture", "limits", "set", "--max-duration", "5s", "--max-bytes", "1MB", "--max-concurrent", "1",
			"--allow-payload=true", "--totp", code(now.Add(30*time.Second)))
		if !strings.Contains(out, "Max duration:    5s") || !strings.Contains(out, "Payloads:        yes") {
			t.Fatalf("set:\n%s", out)
		}
	})
	t.Run("node 2 obeys", func(t *testing.T) {
		l, err := onN2.CaptureLimits(t.Context())
		if err != nil || l != (wire.CaptureLimits{MaxDurationSeconds: 5, MaxBytes: 1e6, MaxConcurrent: 1, AllowPayload: true, HeaderSnaplen: 96}) {
			t.Fatalf("node 2's caps: %+v, %v", l, err)
		}
		wantErr(t, capReq(wire.CaptureRequest{DurationSeconds: 10}), 400, "cap of 5s")
		wantErr(t, capReq(wire.CaptureRequest{DurationSeconds: 5, MaxBytes: 2e6}), 400, "cap of 1000000")
		// Payloads are allowed now: the request passes the caps and meets
		// only the step-up check (its code is wrong).
		wantErr(t, capReq(wire.CaptureRequest{DurationSeconds: 5, MaxBytes: 1e6, Snaplen: 1500}), 403, "fresh TOTP")
	})
	t.Run("on the record", func(t *testing.T) {
		export := filepath.Join(dir, "audit.jsonl")
		if _, _, err := ctlConsole(t, console{}, "audit", "export", export); err != nil {
			t.Fatal(err)
		}
		log, err := os.ReadFile(export)
		if err != nil {
			t.Fatal(err)
		}
		var refusals, changes int
		for _, l := range strings.Split(string(log), "\n") {
			switch {
			case strings.Contains(l, `"capture.limits"`) && strings.Contains(l, `"failure"`):
				refusals++
			case strings.Contains(l, `"capture.limits"`) && strings.Contains(l, `"after.max_duration":"5s"`):
				changes++
			}
		}
		// Refused: the non-admin, the missing code, the used code, three
		// bad values.
		if refusals != 6 || changes != 1 {
			t.Fatalf("audit: %d refused changes, %d changes; want 6, 1", refusals, changes)
		}
	})
}
