package cli

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/client"
)

func TestServerURL(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"https://VPN.example.com/", "https://vpn.example.com", ""},
		{" https://vpn.example.com:8443 ", "https://vpn.example.com:8443", ""},
		{"http://vpn.example.com", "", "want https://host[:port]"},
		{"https://vpn.example.com/path", "", "want https://host[:port]"},
		{"https://user@vpn.example.com", "", "want https://host[:port]"},
		{"", "", "no server"},
	}
	for _, tt := range tests {
		got, err := ServerURL(tt.in)
		if got != tt.want || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ServerURL(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestDurationAndExpiry(t *testing.T) {
	for d, want := range map[time.Duration]string{42 * time.Second: "42s", 4 * time.Minute: "4m", 12 * time.Hour: "12h", 11*time.Hour + 58*time.Minute: "11h58m"} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%s) = %q, want %q", d, got, want)
		}
	}
	now := time.Now()
	if got := Expiry(now.Add(-time.Minute), now, ": run ferry login"); !strings.HasSuffix(got, "(expired: run ferry login)") {
		t.Errorf("expired: %q", got)
	}
	if got := Expiry(now.Add(2*time.Hour), now, ""); !strings.HasSuffix(got, "(in 2h)") {
		t.Errorf("in 2h: %q", got)
	}
}

func TestExplain(t *testing.T) {
	x := Explanations{Unauthorized: "not signed in: run ferry login", Forbidden: errors.New("needs the admin role")}
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("GET /v1/me: %w", &client.Error{Status: http.StatusUnauthorized, Message: "session expired"}), "not signed in: run ferry login"},
		{&client.Error{Status: http.StatusForbidden, Message: "admin role required"}, "needs the admin role"},
		{&client.Error{Status: http.StatusBadRequest, Message: "rules[0].cidr: bad"}, "rules[0].cidr: bad"},
		{errors.New("dial tcp: refused"), "dial tcp: refused"},
	}
	for _, tt := range tests {
		if got := Explain(tt.err, x); got.Error() != tt.want {
			t.Errorf("Explain(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	if Explain(nil, x) != nil {
		t.Error("Explain(nil) != nil")
	}
}
