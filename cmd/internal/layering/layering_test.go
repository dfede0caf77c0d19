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
	// report sits between profiles and tunnel: it derives its rollups from
	// the journal and the profiles, and the data plane's flow tests check
	// their records against it.
	"report": {"cluster", "audit", "authn", "profiles"},
	"tunnel": {"profiles", "audit", "cluster", "report"},
	"cmd":    {"cluster", "audit", "authn", "profiles", "tunnel", "report"},
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

// clientBanned are modules of the server's data plane and identity
// provider side that no client-side package may link.
var clientBanned = []string{"github.com/hashicorp/raft", "go.etcd.io/bbolt", "github.com/boltdb", "github.com/google/nftables", "github.com/ti-mo/conntrack", "github.com/zitadel", "github.com/coreos/go-oidc"}

// depRule narrows what one package may link, directly or indirectly,
// beyond its layer's rule. It replaces the per-package deps tests that
// used to live beside the packages.
type depRule struct {
	// pkg is the module-relative package the rule is about.
	pkg string
	// project lists the module-relative packages (and their subtrees,
	// when they end in "/...") the package may link; the package itself
	// is always allowed.
	project []string
	// stdlibOnly forbids every dependency outside the standard library.
	stdlibOnly bool
	// banned are module paths (and their subpackages) it must not link.
	banned []string
	// why is printed with every breach.
	why string
}

// depRules are the package-specific rules (STYLE.md §1).
var depRules = []depRule{
	{pkg: "authn/devop", project: []string{}, why: "devop stands alone, so ferryd dev and tests can run it without the rest"},
	{pkg: "authn/webpage", stdlibOnly: true, why: "the shared page layout is used by authn and the API alike: standard library only"},
	{pkg: "audit", project: []string{"audit/...", "cluster/..."}, why: "audit sits on layer 2: it may link only cluster"},
	{pkg: "audit/audittest", project: []string{"audit/...", "cluster/..."}, why: "audit sits on layer 2: it may link only cluster"},
	{
		pkg:     "cmd/internal/console",
		project: []string{"cluster/...", "audit/...", "authn/...", "profiles/...", "report/..."},
		banned:  []string{"github.com/google/nftables", "github.com/ti-mo/conntrack", "golang.zx2c4.com/wireguard"},
		why:     "the admin console shows and changes state through the domain packages; it does not go through the /v1 handlers or drive the data plane",
	},
	{pkg: "audit/auditfile", stdlibOnly: true, why: "clients link auditfile to verify exports offline: standard library only"},
	{
		pkg:     "cmd/ferryctl",
		project: []string{"cmd/internal/cli", "cmd/internal/client", "cmd/internal/wire", "cmd/internal/loginflow", "audit/auditfile"},
		banned:  append([]string{"golang.zx2c4.com/wireguard"}, clientBanned...),
		why:     "ferryctl speaks to ferryd through the HTTP API only",
	},
	{
		pkg:     "cmd/ferry",
		project: []string{"cmd/internal/cli", "cmd/internal/client", "cmd/internal/wire", "cmd/internal/loginflow"},
		banned:  clientBanned, // WireGuard itself it may link: it runs the tunnel
		why:     "ferry speaks to ferryd through the HTTP API only",
	},
	{
		pkg:     "cmd/internal/cli",
		project: []string{"cmd/internal/client", "cmd/internal/wire"},
		banned:  append([]string{"golang.zx2c4.com/wireguard"}, clientBanned...),
		why:     "the client-CLI package is linked into both clients",
	},
	{
		pkg: "cmd/internal/assembly",
		project: []string{"cluster/...", "audit/...", "authn/...", "profiles/...", "report/...", "tunnel/...",
			"cmd/internal/api", "cmd/internal/console", "cmd/internal/wire", "cmd/internal/wgkey"},
		why: "the service assembly is built from the domain packages and the API alone; it reads no configuration file, so the test harnesses build a node exactly as ferryd does",
	},
	{
		pkg:     "cmd/internal/loginflow",
		project: []string{"cmd/internal/wire"},
		banned:  append([]string{"golang.zx2c4.com/wireguard"}, clientBanned...),
		why:     "loginflow is linked into both clients",
	},
}

// isStd reports whether an import path is of the standard library (its
// first element has no dot).
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// depViolations returns every breach of the package-specific rules.
func depViolations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		r := rel(p.ImportPath)
		for _, rule := range depRules {
			if r != rule.pkg {
				continue
			}
			for _, d := range p.Deps {
				dr := rel(d)
				switch {
				case dr == r:
				case rule.stdlibOnly && !isStd(d):
					out = append(out, fmt.Sprintf("%s links %s: %s", r, d, rule.why))
				case dr != "" && rule.project != nil && !allowedIn(dr, rule.project):
					out = append(out, fmt.Sprintf("%s links %s: %s (allowed of the project: %v)", r, dr, rule.why, rule.project))
				}
				for _, b := range rule.banned {
					if under(d, b) {
						out = append(out, fmt.Sprintf("%s links %s: %s", r, d, rule.why))
					}
				}
			}
		}
	}
	return out
}

// allowedIn reports whether the module-relative path r is one of the
// patterns ("x" or "x/...").
func allowedIn(r string, patterns []string) bool {
	for _, p := range patterns {
		if tree, ok := strings.CutSuffix(p, "/..."); ok && under(r, tree) || r == p {
			return true
		}
	}
	return false
}

// pkg is what the test needs of `go list -json`.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
	Error        *struct{ Err string }
	DepsErrors   []struct{ Err string }
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
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports,Deps,Error,DepsErrors", module+"/...")
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
	// Fail loudly: a package go list cannot load would otherwise pass
	// every rule unseen.
	for _, p := range pkgs {
		if p.Error != nil {
			t.Fatalf("go list cannot load %s: %s", p.ImportPath, p.Error.Err)
		}
		for _, e := range p.DepsErrors {
			t.Fatalf("go list cannot load a dependency of %s: %s", p.ImportPath, e.Err)
		}
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages of %s/...: the rules would check nothing", len(pkgs), module)
	}
	for _, rule := range depRules {
		if !slices.ContainsFunc(pkgs, func(p pkg) bool { return rel(p.ImportPath) == rule.pkg }) {
			t.Errorf("rule for %s: no such package (remove the rule or fix its path)", rule.pkg)
		}
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
	for _, v := range depViolations(pkgs) {
		t.Error(v)
	}
}

// TestDepViolations checks that the package-specific rules catch what
// they should.
func TestDepViolations(t *testing.T) {
	m := func(r string) string { return module + "/" + r }
	tests := []struct {
		name string
		pkgs []pkg
		want []string
	}{
		{
			name: "allowed",
			pkgs: []pkg{
				{ImportPath: m("audit"), Deps: []string{"fmt", m("cluster"), m("cluster/seal"), m("audit/auditfile")}},
				{ImportPath: m("audit/auditfile"), Deps: []string{"crypto/sha256", m("audit/auditfile")}},
				{ImportPath: m("cmd/ferry"), Deps: []string{m("cmd/internal/client"), "golang.zx2c4.com/wireguard/device"}},
			},
		},
		{
			name: "devop links the project",
			pkgs: []pkg{{ImportPath: m("authn/devop"), Deps: []string{m("cluster")}}},
			want: []string{"authn/devop links cluster: devop stands alone, so ferryd dev and tests can run it without the rest (allowed of the project: [])"},
		},
		{
			name: "auditfile links a module",
			pkgs: []pkg{{ImportPath: m("audit/auditfile"), Deps: []string{"github.com/x/y"}}},
			want: []string{"audit/auditfile links github.com/x/y: clients link auditfile to verify exports offline: standard library only"},
		},
		{
			name: "ferryctl links raft through a domain package",
			pkgs: []pkg{{ImportPath: m("cmd/ferryctl"), Deps: []string{m("authn"), "github.com/hashicorp/raft"}}},
			want: []string{
				"cmd/ferryctl links authn: ferryctl speaks to ferryd through the HTTP API only (allowed of the project: [cmd/internal/cli cmd/internal/client cmd/internal/wire cmd/internal/loginflow audit/auditfile])",
				"cmd/ferryctl links github.com/hashicorp/raft: ferryctl speaks to ferryd through the HTTP API only",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := depViolations(tt.pkgs)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
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
			want: []string{"tunnel/nft imports authn: layer tunnel may import only [profiles audit cluster report] and itself"},
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
