package authn_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
	"github.com/ferryvpn/ferry/cluster"
)

// TestSweep removes sign-in state once it has expired, and only then.
func TestSweep(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{})
	for range 3 {
		if _, err := e.NewBrowser().StartLogin(e.URLOf(authn.PathLogin)); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		kvs, _, err := e.Cluster.Node(0).List(t.Context(), "signin/", cluster.Linearizable)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range kvs {
			if !strings.HasPrefix(kv.Key, "signin/state/") {
				t.Errorf("unexpected key %s", kv.Key)
			}
		}
		return len(kvs)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d pending logins, want 3", n)
	}
	if n, err := e.Flows[1].Sweep(t.Context()); err != nil || n != 0 {
		t.Fatalf("Sweep before expiry removed %d, %v", n, err)
	}
	e.Clock.Advance(10*time.Minute + time.Second)
	if n, err := e.Flows[1].Sweep(t.Context()); err != nil || n != 3 {
		t.Fatalf("Sweep after expiry removed %d, %v; want 3", n, err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d records left after Sweep", n)
	}
}

func TestFlowConfigValidate(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{Nodes: 1})
	good := func() authn.FlowConfig {
		return authn.FlowConfig{
			OIDC:  authn.OIDCConfig{Issuer: e.OPURL, ClientID: "c", ClientSecret: "s", RedirectURL: e.URL + "/callback"},
			Store: e.Cluster.Node(0), MFA: e.MFA[0], Sessions: e.Sessions[0], Users: e.Users[0], Recorder: e.Recorder,
		}
	}
	tests := []struct {
		name string
		edit func(*authn.FlowConfig)
		ok   bool
	}{
		{"good", func(*authn.FlowConfig) {}, true},
		{"no store", func(c *authn.FlowConfig) { c.Store = nil }, false},
		{"no mfa", func(c *authn.FlowConfig) { c.MFA = nil }, false},
		{"no sessions", func(c *authn.FlowConfig) { c.Sessions = nil }, false},
		{"no users", func(c *authn.FlowConfig) { c.Users = nil }, false},
		{"no recorder", func(c *authn.FlowConfig) { c.Recorder = nil }, false},
		{"bad oidc", func(c *authn.FlowConfig) { c.OIDC.RedirectURL = "" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.edit(&c)
			_, err := authn.NewFlow(c)
			if (err == nil) != tt.ok {
				t.Fatalf("NewFlow: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
