package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

const profilesFile = `profiles:
  - name: eng
    description: Engineers
    rules:
      - {cidr: 10.0.0.0/16, protocol: tcp, ports: [22, 443, 8000-8080]}
    groups: [engineering]
  - name: ops
    rules:
      - {cidr: 10.2.0.0/16, protocol: any}
    users: [alice]
`

// changedFile edits eng and drops ops.
const changedFile = `profiles:
  - name: eng
    description: Engineers
    rules:
      - {cidr: 10.0.0.0/16, protocol: tcp, ports: [22, 443, 8000-8080]}
    groups: [engineering]
    max_session: 8h
`

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "profiles.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestApply: the dry run prints the plan and changes nothing, the apply
// prints what it did, and applying again changes nothing.
func TestApply(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	file, changed := writeFile(t, profilesFile), writeFile(t, changedFile)

	steps := []struct {
		name string
		args []string
		want string
	}{
		{"dry run creates", []string{"-f", file, "--dry-run"}, "Dry run: nothing was changed.\nwould create profile eng\nwould create profile ops\nRun again without --dry-run to apply.\n"},
		{"dry run again, still nothing applied", []string{"-f", file, "--dry-run"}, "Dry run: nothing was changed.\nwould create profile eng\nwould create profile ops\nRun again without --dry-run to apply.\n"},
		{"apply", []string{"-f", file}, "+ profile eng\n+ profile ops\n"},
		{"apply again", []string{"-f", file}, "no changes\n"},
		{"dry run of the same file", []string{"-f", file, "--dry-run"}, "Dry run: nothing was changed.\nApplying this file would change nothing.\n"},
		{"dry run of a change", []string{"-f", changed, "--dry-run"}, "Dry run: nothing was changed.\nwould update profile eng: max_session\nwould delete profile ops and revoke its devices\nRun again without --dry-run to apply.\n"},
		{"apply the change", []string{"-f", changed}, "~ profile eng: max_session\n- profile ops\n"},
		{"apply the change again", []string{"-f", changed}, "no changes\n"},
	}
	for _, s := range steps {
		out, err := ctl(t, "", append([]string{"profile", "apply"}, s.args...)...)
		if err != nil || out != s.want {
			t.Fatalf("%s: got %q, %v; want %q", s.name, out, err, s.want)
		}
	}
	ps, err := srv.Profiles.List(t.Context())
	if err != nil || len(ps) != 1 || ps[0].Name != "eng" || ps[0].MaxSession.String() != "8h0m0s" {
		t.Errorf("profiles after apply: %+v %v", ps, err)
	}

	// From standard input, and as JSON.
	var res wire.ApplyResponse
	out, err := ctl(t, profilesFile, "profile", "apply", "-f", "-", "--dry-run", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeStrict(out, &res); err != nil {
		t.Fatalf("apply -o json: %v\n%s", err, out)
	}
	if len(res.Create) != 1 || res.Create[0].Name != "ops" || len(res.Update) != 1 || res.Update[0].Name != "eng" ||
		res.Diff != "+ profile ops\n~ profile eng: max_session\n" || res.Delete == nil {
		t.Errorf("apply -o json: %+v", res)
	}
}

// TestApplyRejectsBadFile: a bad file is rejected whole, with the
// server's message naming the line and field, and nothing changes.
func TestApplyRejectsBadFile(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	if out, err := ctl(t, "", "profile", "apply", "-f", writeFile(t, changedFile)); err != nil {
		t.Fatal(out, err)
	}
	tests := []struct {
		name, file, want string
	}{
		{"bad port", strings.Replace(profilesFile, "8000-8080", "8000-80800", 1), "line 5: "},
		{"bad cidr on a later profile", strings.Replace(profilesFile, "10.2.0.0/16", "10.2.0.0/33", 1), "line 9: "},
		{"unknown field", strings.Replace(profilesFile, "groups:", "groupz:", 1), "line 6: "},
		{"overlaps the client pool", strings.Replace(profilesFile, "10.2.0.0/16", "100.64.0.0/10", 1), "line 9: "},
		{"not YAML", "profiles: [", "yaml: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, dry := range []bool{true, false} {
				args := []string{"profile", "apply", "-f", writeFile(t, tt.file)}
				if dry {
					args = append(args, "--dry-run")
				}
				out, err := ctl(t, "", args...)
				if err == nil || !strings.Contains(err.Error(), tt.want) || out != "" {
					t.Fatalf("dry run %v: %q, %v; want an error with %q", dry, out, err, tt.want)
				}
				if strings.Contains(err.Error(), "HTTP 400") {
					t.Errorf("the server's message is not printed as is: %v", err)
				}
			}
		})
	}
	ps, err := srv.Profiles.List(t.Context())
	if err != nil || len(ps) != 1 || ps[0].Name != "eng" || ps[0].MaxSession.String() != "8h0m0s" {
		t.Errorf("a rejected file changed the profiles: %+v %v", ps, err)
	}
	if _, err := ctl(t, "", "profile", "apply", "-f", filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "reading the profile file") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ctl(t, "", "profile", "apply"); err == nil || !strings.Contains(err.Error(), `required flag(s) "file" not set`) {
		t.Errorf("no -f: %v", err)
	}
}

// TestBinaryExitCodes runs the built ferryctl: errors go to standard
// error as "ferryctl: message" with exit code 1; success is 0.
func TestBinaryExitCodes(t *testing.T) {
	isolate(t)
	bin := ferryctlBin
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	good, bad := writeFile(t, profilesFile), writeFile(t, strings.Replace(profilesFile, "8000-8080", "8000-80800", 1))
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderrPref string // and, for errors, one line
	}{
		{"dry run", []string{"profile", "apply", "-f", good, "--dry-run"}, 0, "Dry run: nothing was changed.\nwould create profile eng\nwould create profile ops\nRun again without --dry-run to apply.\n", ""},
		{"bad file", []string{"profile", "apply", "-f", bad}, 1, "", "ferryctl: profiles: invalid: rules: ports: line 5: "},
		{"bad flag", []string{"profile", "list", "--bogus"}, 1, "", "ferryctl: unknown flag: --bogus (see ferryctl profile list --help)"},
		{"bad output", []string{"profile", "list", "-o", "yaml"}, 1, "", `ferryctl: -o "yaml": want table or json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			var so, se strings.Builder
			cmd.Stdout, cmd.Stderr = &so, &se
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || so.String() != tt.stdout || !strings.HasPrefix(se.String(), tt.stderrPref) || (tt.stderrPref == "") != (se.String() == "") {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q…", code, so.String(), se.String(), tt.code, tt.stdout, tt.stderrPref)
			}
		})
	}
	// A user's session: the admin-role message, exit 1.
	signIn(t, srv, srv.Token(t, alice))
	out, err := exec.Command(bin, "user", "list").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || string(out) != "ferryctl: your session lacks the admin role\n" {
		t.Errorf("non-admin: %v %q", err, out)
	}
}
