package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ferryvpn/ferry"

// allowed maps each top-level directory of the module to the others its
// packages may import directly (STYLE.md §1). A package may always import
// its own tree (cluster/pki imports cluster/seal). A directory missing here
// is an error: add it to STYLE.md's table first.
var allowed = map[string][]string{
	"cluster":  nil,
	"audit":    {"cluster"},
	"authn":    {"cluster", "audit"},
	"profiles": {"cluster", "audit", "authn"},
	"tunnel":   {"profiles", "audit", "cluster"},
	"cmd":      {"cluster", "audit", "authn", "profiles", "tunnel"},
	// deploy holds no library: its one Go package is deploy/local's
	// end-to-end drill, which drives the built binaries from outside, as
	// operators and people do, and imports nothing of the project.
	"deploy": nil,
}

// clientSide are the packages that must not link the store or raft, even
// indirectly: the client binaries and what they are built from.
var clientSide = []string{"cmd/ferry", "cmd/ferryctl", "cmd/internal/wire", "cmd/internal/client"}

// serverOnly are module paths (and their subpackages) clients must not
// link.
var serverOnly = []string{"github.com/hashicorp/raft", "go.etcd.io/bbolt", "github.com/boltdb/bolt"}

// pkg is what the test needs of `go list -json`.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
}

// rel returns path relative to the module, or "" if it is outside it.
func rel(path string) string {
	if path == module {
		return "."
	}
	r, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	return r
}

// root returns the top-level directory of a module-relative path.
func root(r string) string {
	top, _, _ := strings.Cut(r, "/")
	return top
}

// under reports whether path is p or inside p.
func under(path, p string) bool { return path == p || strings.HasPrefix(path, p+"/") }

// violations returns every breach of the rules, one line each.
func violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		r := rel(p.ImportPath)
		if r == "" {
			continue
		}
		layer := root(r)
		may, ok := allowed[layer]
		if !ok {
			out = append(out, fmt.Sprintf("%s: top-level directory %q is in no layer of STYLE.md's table", r, layer))
			continue
		}
		imports := slices.Concat(p.Imports, p.TestImports, p.XTestImports)
		slices.Sort(imports)
		for _, imp := range slices.Compact(imports) {
			ir := rel(imp)
			if ir == "" || root(ir) == layer || slices.Contains(may, root(ir)) {
				continue
			}
			out = append(out, fmt.Sprintf("%s imports %s: layer %s may import only %v and itself", r, ir, layer, may))
		}
		for _, c := range clientSide {
			if !under(r, c) {
				continue
			}
			for _, d := range p.Deps {
				for _, s := range serverOnly {
					if under(d, s) {
						out = append(out, fmt.Sprintf("%s depends on %s: clients speak to ferryd through the HTTP API only", r, d))
					}
				}
			}
		}
	}
	return out
}

// TestLayering checks the module's real packages.
func TestLayering(t *testing.T) {
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports,Deps", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// TestViolations checks that the rules catch what they should.
func TestViolations(t *testing.T) {
	m := func(r string) string { return module + "/" + r }
	tests := []struct {
		name string
		pkgs []pkg
		want []string
	}{
		{
			name: "allowed imports",
			pkgs: []pkg{
				{ImportPath: m("cluster/pki"), Imports: []string{"crypto/x509", m("cluster/seal")}},
				{ImportPath: m("tunnel"), Imports: []string{m("profiles"), m("cluster/seal")}, Deps: []string{m("authn")}},
				{ImportPath: m("cmd/ferryd"), Imports: []string{m("tunnel"), m("cmd/internal/api")}, Deps: []string{"github.com/hashicorp/raft"}},
				{ImportPath: m("cmd/ferry"), Imports: []string{m("cmd/internal/client")}, Deps: []string{"github.com/spf13/cobra"}},
				{ImportPath: "example.com/other", Imports: []string{m("cmd/ferryd")}},
			},
		},
		{
			name: "cluster imports a higher layer",
			pkgs: []pkg{{ImportPath: m("cluster"), Imports: []string{m("audit")}}},
			want: []string{"cluster imports audit: layer cluster may import only [] and itself"},
		},
		{
			name: "test of a lower layer imports cmd",
			pkgs: []pkg{{ImportPath: m("audit"), XTestImports: []string{m("cmd/internal/api")}}},
			want: []string{"audit imports cmd/internal/api: layer audit may import only [cluster] and itself"},
		},
		{
			name: "tunnel skips a layer",
			pkgs: []pkg{{ImportPath: m("tunnel/nft"), Imports: []string{m("authn")}}},
			want: []string{"tunnel/nft imports authn: layer tunnel may import only [profiles audit cluster] and itself"},
		},
		{
			name: "client links raft",
			pkgs: []pkg{{ImportPath: m("cmd/ferryctl"), Deps: []string{"github.com/hashicorp/raft", "go.etcd.io/bbolt/errors"}}},
			want: []string{
				"cmd/ferryctl depends on github.com/hashicorp/raft: clients speak to ferryd through the HTTP API only",
				"cmd/ferryctl depends on go.etcd.io/bbolt/errors: clients speak to ferryd through the HTTP API only",
			},
		},
		{
			name: "unknown top-level package",
			pkgs: []pkg{{ImportPath: m("util")}},
			want: []string{`util: top-level directory "util" is in no layer of STYLE.md's table`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := violations(tt.pkgs)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}
