package api

import (
	"regexp"
	"strings"
	"testing"
)

// TestConfFileNameFitsWgQuick: wg-quick takes the interface name from the
// file name, and Linux allows 15 characters (issue: ferry-<profile>.conf
// could exceed it).
func TestConfFileNameFitsWgQuick(t *testing.T) {
	iface := regexp.MustCompile(`^[a-zA-Z0-9_=+.-]{1,15}$`)
	for _, profile := range []string{"eng", "engineering-production", "a b/c", strings.Repeat("x", 64), "données"} {
		name := confFileName(profile)
		base, ok := strings.CutSuffix(name, ".conf")
		if !ok || !iface.MatchString(base) {
			t.Errorf("profile %q: file %q is not a wg-quick interface name", profile, name)
		}
	}
	if got := confFileName("eng"); got != "ferry-eng.conf" {
		t.Errorf("short names stay as they were: %q", got)
	}
}
