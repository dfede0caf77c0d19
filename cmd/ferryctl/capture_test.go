package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// TestCapture runs ferryctl capture against the API with real sessions and
// real TOTP step-up: a non-admin, a missing reason and a wrong code are
// refused; an admin with a fresh code gets a pcapng file tshark reads; and
// every refusal, the start and the stop (with the file's SHA-256) are in
// the audit log.
func TestCapture(t *testing.T) {
	dir := isolate(t)
	srv := apitest.Start(t)
	admin := authn.Identity{UserID: "admin", Email: "admin@example.com", Groups: []string{apitest.AdminGroup}}
	adminTok := srv.Token(t, admin)
	en, err := srv.MFA.BeginEnroll(t.Context(), admin)
	if err != nil {
		t.Fatal(err)
	}
	// Each code is good once: enrol with the current step, capture with
	// the next one.
	now := time.Now()
	code := func(at time.Time) string {
		c, err := authntest.TOTPCode(en.URI, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := srv.MFA.ConfirmEnroll(t.Context(), admin, code(now), authn.Source{Addr: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	signIn(t, srv, adminTok)
	mustCtl(t, "profile", "create", "eng", "--rule", "10.0.0.0/16 tcp 22", "--group", "engineering")
	aliceTok := srv.Token(t, alice)
	issue(t, srv, aliceTok, "laptop", "eng")

	t.Run("a non-admin is refused", func(t *testing.T) {
		_, err := userClient(t, srv, aliceTok).Capture(t.Context(), wire.CaptureRequest{User: "alice@example.com", Reason: "curious", TOTP: "123456"}, os.Stdout)
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != 403 || !strings.Contains(ae.Message, "administrator") {
			t.Fatalf("err %v, want 403 administrator role required", err)
		}
	})
	t.Run("a missing reason is refused by the server too", func(t *testing.T) {
		_, err := userClient(t, srv, adminTok).Capture(t.Context(), wire.CaptureRequest{User: "alice@example.com", TOTP: code(now.Add(30 * time.Second))}, os.Stdout)
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "reason") {
			t.Fatalf("err %v, want 400 reason required", err)
		}
		if _, err := ctl(t, "", "capture", "--user", "alice@example.com", "--totp", "1", "-w", filepath.Join(dir, "x.pcapng")); err == nil || !strings.Contains(err.Error(), "--reason") {
			t.Fatalf("ferryctl without --reason: %v", err)
		}
	})
	t.Run("a wrong code is refused", func(t *testing.T) {
		file := filepath.Join(dir, "wrong.pcapng")
		_, err := ctl(t, "", "capture", "--user", "alice@example.com", "--reason", "INC-1", "--totp", "000000", "-w", file)
		if err == nil || !strings.Contains(err.Error(), "fresh TOTP") {
			t.Fatalf("err %v, want a step-up refusal", err)
		}
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Fatalf("a refused capture left its file: %v", err)
		}
	})
	t.Run("a used code is refused (step-up needs a fresh one)", func(t *testing.T) {
		_, err := ctl(t, "", "capture", "--user", "alice@example.com", "--reason", "INC-1", "--totp", code(now), "-w", filepath.Join(dir, "replay.pcapng"))
		if err == nil || !strings.Contains(err.Error(), "fresh TOTP") {
			t.Fatalf("err %v, want a step-up refusal", err)
		}
	})
	t.Run("status", func(t *testing.T) {
		if out := mustCtl(t, "capture", "--list"); !strings.Contains(out, "No capture runs") {
			t.Fatalf("capture --list: %q", out)
		}
	})
	file := filepath.Join(dir, "alice.pcapng")
	t.Run("an admin with a fresh code gets the file", func(t *testing.T) {
		out := mustCtl(t, "capture", "--user", "alice@example.com", "--reason", "INC-42 db timeouts", "--filter", "tcp and port 5432",
			"--duration", "1s", "--totp", code(now.Add(30*time.Second)), "-w", file)
		if !strings.Contains(out, "stopped by duration") || !strings.Contains(out, "SHA-256: ") {
			t.Fatalf("summary:\n%s", out)
		}
		if _, err := exec.LookPath("tshark"); err == nil {
			if b, err := exec.Command("tshark", "-r", file).CombinedOutput(); err != nil {
				t.Fatalf("tshark -r: %v\n%s", err, b)
			}
		}
	})
	t.Run("on the record", func(t *testing.T) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		export := filepath.Join(dir, "audit.jsonl")
		if _, _, err := ctlConsole(t, console{}, "audit", "export", export); err != nil {
			t.Fatal(err)
		}
		log, err := os.ReadFile(export)
		if err != nil {
			t.Fatal(err)
		}
		var starts, refusals, stops int
		for _, l := range strings.Split(string(log), "\n") {
			switch {
			case strings.Contains(l, `"capture.start"`) && strings.Contains(l, `"failure"`):
				refusals++
			case strings.Contains(l, `"capture.start"`) && strings.Contains(l, "INC-42 db timeouts"):
				starts++
			case strings.Contains(l, `"capture.stop"`) && strings.Contains(l, hex.EncodeToString(sum[:])):
				stops++
			}
		}
		// Refused: the non-admin, the missing reason, the wrong code, the
		// used code.
		if refusals != 4 || starts != 1 || stops != 1 {
			t.Fatalf("audit: %d refusals, %d starts, %d stops with the file's SHA-256; want 4, 1, 1", refusals, starts, stops)
		}
	})
}
