package authn

import (
	"testing"
	"time"
)

func TestRefusalBudget(t *testing.T) {
	var b RefusalBudget
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recorded := 0
	for range refusalBudget + 30 {
		if b.Allow(now, map[string]string{}) {
			recorded++
		}
	}
	if recorded != refusalBudget {
		t.Fatalf("recorded %d of %d refusals in one window, want %d", recorded, refusalBudget+30, refusalBudget)
	}
	d := map[string]string{}
	if !b.Allow(now.Add(refusalWindow), d) || d["suppressed"] != "30" {
		t.Errorf("first refusal of the next window: details %v, want suppressed 30", d)
	}
	d = map[string]string{}
	if !b.Allow(now.Add(refusalWindow+time.Second), d) || d["suppressed"] != "" {
		t.Errorf("second refusal of the next window: details %v", d)
	}
}
