package profiles_test

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/ferryvpn/ferry/profiles"
)

// TestParseFileErrorLine: every error of a profile file names its line
// as data (FileError), so an editor can show it there: YAML syntax,
// unknown fields, field validation and duplicate names.
func TestParseFileErrorLine(t *testing.T) {
	pool := netip.MustParsePrefix("100.64.0.0/16")
	for _, tc := range []struct {
		name, file string
		line       int
	}{
		{"syntax", "profiles:\n  - name: a\n    rules: [\n", 3},
		{"unknown field", "profiles:\n  - name: a\n    colour: red\n", 3},
		{"bad port", "profiles:\n  - name: a\n    rules:\n      - {cidr: 10.0.0.0/8, protocol: tcp, ports: [22]}\n      - {cidr: 10.0.0.0/8, protocol: tcp, ports: [99999]}\n", 5},
		{"duplicate", "profiles:\n  - name: a\n    rules: [{cidr: 10.0.0.0/8, protocol: any}]\n  - name: a\n    rules: [{cidr: 10.0.0.0/8, protocol: any}]\n", 4},
	} {
		_, err := profiles.ParseFile([]byte(tc.file), pool)
		var fe *profiles.FileError
		if !errors.As(err, &fe) || !errors.Is(err, profiles.ErrInvalid) {
			t.Errorf("%s: %v, want a FileError wrapping ErrInvalid", tc.name, err)
			continue
		}
		if fe.Line != tc.line {
			t.Errorf("%s: line %d, want %d (%v)", tc.name, fe.Line, tc.line, err)
		}
	}
}

// TestMarshalFileRoundTrip: the file MarshalFile writes parses back to
// the same profiles.
func TestMarshalFileRoundTrip(t *testing.T) {
	pool := netip.MustParsePrefix("100.64.0.0/16")
	src := "profiles:\n  - name: eng\n    description: engineers\n    rules:\n      - {cidr: 10.20.0.0/16, protocol: tcp, ports: [22, 8000-8080]}\n      - {cidr: 10.30.0.0/24, protocol: any}\n" +
		"    dns: [10.0.0.2]\n    max_session: 8h\n    max_devices: 3\n    groups: [engineering]\n    users: [bob@example.com]\n"
	want, err := profiles.ParseFile([]byte(src), pool)
	if err != nil {
		t.Fatal(err)
	}
	out, err := profiles.MarshalFile(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := profiles.ParseFile(out, pool)
	if err != nil {
		t.Fatalf("reading back:\n%s\n%v", out, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n%s\ngot  %+v\nwant %+v", out, got, want)
	}
}
