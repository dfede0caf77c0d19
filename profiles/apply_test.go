package profiles_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/profiles"
)

const goodFile = `profiles:
  - name: engineering
    description: Engineers reach the dev VPC
    rules:
      - cidr: 10.20.0.0/16
        protocol: tcp
        ports: [22, 443, 8000-8080]
      - cidr: 10.20.5.0/24
        protocol: icmp
    dns: [10.20.0.2]
    search_domains: [dev.internal]
    groups: [engineering]
  - name: ops
    rules:
      - {cidr: 10.30.0.0/16, protocol: any}
    full_tunnel: true
    max_session: 8h
    max_devices: 2
    groups: [operations]
    users: [alice@example.com]
`

func TestApplyIdempotentAndDryRunExact(t *testing.T) {
	e := newEnv(t, 1, "100.64.0.0/16")
	s := e.stores[0]
	e.putProfile(t, "legacy", "old")
	want, err := profiles.ParseFile([]byte(goodFile), s.Pool())
	if err != nil {
		t.Fatal(err)
	}
	plan, err := s.Apply(ctx(t), want, true, admin)
	if err != nil {
		t.Fatal(err)
	}
	if got, exp := plan.String(), "+ profile engineering\n+ profile ops\n- profile legacy\n"; got != exp {
		t.Fatalf("dry run plan:\n%s\nwant:\n%s", got, exp)
	}
	if all, _ := s.List(ctx(t)); len(all) != 1 || all[0].Name != "legacy" {
		t.Fatalf("dry run changed profiles: %+v", all)
	}
	if _, err := s.Apply(ctx(t), want, false, admin); err != nil {
		t.Fatal(err)
	}
	again, err := s.Apply(ctx(t), want, false, admin)
	if err != nil || !again.Empty() {
		t.Fatalf("second apply: %v, %v; want no changes", again, err)
	}
	// One edited field shows as exactly that field.
	edited := strings.Replace(goodFile, "max_devices: 2", "max_devices: 3", 1)
	want2, err := profiles.ParseFile([]byte(edited), s.Pool())
	if err != nil {
		t.Fatal(err)
	}
	plan, err = s.Apply(ctx(t), want2, true, admin)
	if err != nil || plan.String() != "~ profile ops: max_devices\n" {
		t.Fatalf("edit plan %q, %v", plan.String(), err)
	}
	got, err := s.Get(ctx(t), "ops")
	if err != nil || got.MaxSession != 8*time.Hour || !got.FullTunnel || got.Rules[0].Protocol != "any" {
		t.Fatalf("stored ops: %+v %v", got, err)
	}
}

func TestApplyBadFileChangesNothing(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"bad cidr", strings.Replace(goodFile, "10.30.0.0/16", "10.30.0.0/33", 1), "line 15: rule: cidr \"10.30.0.0/33\" is not a CIDR"},
		{"port out of range", strings.Replace(goodFile, "8000-8080", "8000-80800", 1), "line 7: port \"80800\" out of range"},
		{"unknown protocol", strings.Replace(goodFile, "protocol: icmp", "protocol: gre", 1), `line 9: profile "engineering": rules[1].protocol: unknown protocol "gre"`},
		{"pool overlap", strings.Replace(goodFile, "10.20.5.0/24", "100.64.1.0/24", 1), `line 8: profile "engineering": rules[1].cidr: 100.64.1.0/24 overlaps the client address pool`},
		{"empty rules", "profiles:\n  - name: x\n    rules: []\n", `line 3: profile "x": rules: at least one rule is required`},
		{"unknown field", strings.Replace(goodFile, "full_tunnel: true", "full_tunel: true", 1), "line 16: field full_tunel not found"},
		{"duplicate name", strings.Replace(goodFile, "name: ops", "name: engineering", 1), `line 13: profile "engineering": name: already defined on line 2`},
		{"not yaml", "profiles: [", "did not find expected node content"},
		{"empty", "", "empty file"},
	}
	e := newEnv(t, 1, "100.64.0.0/16")
	s := e.stores[0]
	e.putProfile(t, "legacy", "old")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := profiles.ParseFile([]byte(tt.file), s.Pool())
			if !errors.Is(err, profiles.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
	if all, _ := s.List(ctx(t)); len(all) != 1 {
		t.Fatalf("profiles changed: %+v", all)
	}
}

func TestRenderConfigGolden(t *testing.T) {
	prof, err := profiles.ParseFile([]byte(goodFile), netip.MustParsePrefix("100.64.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	peer := profiles.Peer{
		UserID: "https://idp.example.com#CiQwOGE4", Email: "alice@example.com", Device: "laptop", Address: netip.MustParseAddr("100.64.3.7"),
		ProfileVersion: 42, Expires: time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC),
	}
	srv := profiles.Server{PublicKey: "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=", Endpoint: "vpn.example.com:51820"}
	for _, p := range prof {
		got := profiles.RenderConfig(peer, p, srv, "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=")
		golden := filepath.Join("testdata", p.Name+".conf")
		if os.Getenv("UPDATE_GOLDEN") != "" {
			if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create)", err)
		}
		if got != string(want) {
			t.Fatalf("%s differs from golden:\n%s\nwant:\n%s", p.Name, got, want)
		}
	}
}

func FuzzParseFile(f *testing.F) {
	f.Add([]byte(goodFile))
	f.Add([]byte("profiles:\n  - name: a\n    rules: [{cidr: 1.2.3.0/24, ports: [1-2]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := profiles.ParseFile(data, netip.MustParsePrefix("100.64.0.0/16"))
		if err != nil {
			if !errors.Is(err, profiles.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, p := range ps {
			if err := p.Validate(netip.MustParsePrefix("100.64.0.0/16")); err != nil {
				t.Fatalf("accepted an invalid profile: %v", err)
			}
		}
	})
}
