package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestDNSPlan: the embedded tunnel applies the profile's DNS the way
// wg-quick does: resolvconf -a ferry0 -m 0 -x when resolvconf is
// installed, else systemd-resolved through resolvectl (dns, and domain with
// "~." as resolvconf -x means there), else nothing and a plain warning; each
// with the commands that undo it.
func TestDNSPlan(t *testing.T) {
	withDNS := localConf(t, same) // DNS = 10.0.0.2, corp.example.com
	dual := localConf(t, func(s string) string {
		return strings.Replace(s, "DNS = 10.0.0.2, corp.example.com", "DNS = 10.0.0.2, fd00::2, corp.example.com, svc.example.com", 1)
	})
	noDNS := localConf(t, func(s string) string { return strings.Replace(s, "DNS = 10.0.0.2, corp.example.com\n", "", 1) })
	has := func(names ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			if slices.Contains(names, name) {
				return "/usr/bin/" + name, nil
			}
			return "", errors.New("not found")
		}
	}
	tests := []struct {
		name     string
		conf     wgConf
		look     func(string) (string, error)
		via      string
		up       []string
		stdin    []string
		down     []string
		warnings []string
	}{
		{name: "resolvconf first", conf: withDNS, look: has("resolvconf", "resolvectl"), via: "resolvconf",
			up: []string{"resolvconf -a ferry0 -m 0 -x"}, stdin: []string{"nameserver 10.0.0.2\nsearch corp.example.com\n"},
			down: []string{"resolvconf -d ferry0 -f"}},
		{name: "systemd-resolved", conf: dual, look: has("resolvectl"), via: "resolvectl",
			up:    []string{"resolvectl dns ferry0 10.0.0.2 fd00::2", "resolvectl domain ferry0 corp.example.com svc.example.com ~."},
			stdin: []string{"", ""}, down: []string{"resolvectl revert ferry0"}},
		{name: "neither", conf: withDNS, look: has(), warnings: []string{"10.0.0.2", "DNS was not configured", "resolvconf", "resolvectl"}},
		{name: "no DNS in the profile", conf: noDNS, look: has()},
	}
	for _, tt := range tests {
		p := planDNS(ifaceName, tt.conf, tt.look)
		var up, stdin, down []string
		for _, s := range p.Up {
			up, stdin = append(up, strings.Join(s.Argv, " ")), append(stdin, s.Stdin)
		}
		for _, c := range p.Down {
			down = append(down, strings.Join(c, " "))
		}
		if p.Via != tt.via || !slices.Equal(up, tt.up) || !slices.Equal(stdin, tt.stdin) || !slices.Equal(down, tt.down) {
			t.Errorf("%s: via %q\nup    %q\nstdin %q\ndown  %q\nwant %q %q %q %q", tt.name, p.Via, up, stdin, down, tt.via, tt.up, tt.stdin, tt.down)
		}
		for _, w := range tt.warnings {
			if !strings.Contains(p.Warning, w) {
				t.Errorf("%s: warning %q lacks %q", tt.name, p.Warning, w)
			}
		}
		if len(tt.warnings) == 0 && p.Warning != "" {
			t.Errorf("%s: unexpected warning %q", tt.name, p.Warning)
		}
	}
}
