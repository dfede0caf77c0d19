package main

import (
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// TestDryRunSaysWould: a dry run's output cannot be mistaken for a real
// apply (issue: profile apply --dry-run looked like a real apply).
func TestDryRunSaysWould(t *testing.T) {
	res := wire.ApplyResponse{
		Create: []wire.Change{{Name: "eng"}},
		Update: []wire.Change{{Name: "ops", Fields: []string{"rules"}}},
		Delete: []wire.Change{{Name: "old"}},
		Diff:   "+ profile eng\n~ profile ops: rules\n- profile old\n",
	}
	got := dryRunText(res)
	for _, want := range []string{"Dry run: nothing was changed.", "would create profile eng", "would update profile ops: rules", "would delete profile old"} {
		if !strings.Contains(got, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, got)
		}
	}
	if got == planText(res) || strings.Contains(got, "+ profile") {
		t.Errorf("dry run output looks like an apply:\n%s", got)
	}
	if got := dryRunText(wire.ApplyResponse{}); !strings.Contains(got, "would change nothing") {
		t.Errorf("empty dry run: %q", got)
	}
}
