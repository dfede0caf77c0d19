package layering

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// assemblyPkg is the one place in cmd/ that builds a node's services.
const assemblyPkg = "cmd/internal/assembly"

// harnesses are the packages whose test files build nodes for other tests;
// like production code, they must build them through the assembly.
var harnesses = []string{"cmd/internal/apitest", "cmd/internal/continuous"}

// serviceBuilders are the constructors of a node's services, by import
// path (module-relative) and function name. Outside the assembly, cmd/
// code and the harnesses must not call them: a node built by hand is a
// node that can drift from ferryd's.
var serviceBuilders = map[string][]string{
	"audit":              {"New", "NewCheckpointer", "NewExporter", "NewTrimmer", "LoadSigner"},
	"authn":              {"NewStack", "NewUsers", "NewSessions", "NewMFA", "NewRevalidator", "NewFlow"},
	"authn/scim":         {"New"},
	"authn/signals":      {"New"},
	"profiles":           {"New"},
	"report":             {"Open"},
	"tunnel":             {"New"},
	"tunnel/capture":     {"New"},
	"cmd/internal/wgkey": {"Ensure"},
}

// builderCalls returns "file:line: calls pkg.Func" for every call of a
// service builder in the Go source src (file is its name).
func builderCalls(file string, src []byte) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	names := map[string]string{} // local name -> module-relative import path
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		r := rel(path)
		if _, ok := serviceBuilders[r]; !ok {
			continue
		}
		name := r[strings.LastIndex(r, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		names[name] = r
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		if r, ok := names[id.Name]; ok && slices.Contains(serviceBuilders[r], sel.Sel.Name) {
			out = append(out, fmt.Sprintf("%s:%d: calls %s.%s", file, fset.Position(call.Pos()).Line, r, sel.Sel.Name))
		}
		return true
	})
	return out, nil
}

// TestOneServiceAssembly checks that ferryd and the test harnesses build a
// node's services only through cmd/internal/assembly: no non-test file
// under cmd/ and no file of a harness package calls a service builder
// itself.
func TestOneServiceAssembly(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	checked := 0
	err := filepath.WalkDir(filepath.Join(root, "cmd"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(root, path)
		r = filepath.ToSlash(r)
		if d.IsDir() {
			if r == assemblyPkg || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(r, ".go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(r))
		if strings.HasSuffix(r, "_test.go") && !slices.Contains(harnesses, dir) {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		calls, err := builderCalls(r, src)
		if err != nil {
			return err
		}
		checked++
		for _, c := range calls {
			t.Errorf("%s: build a node's services through %s (assembly.Start), as ferryd and every harness do", c, assemblyPkg)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking cmd/: %v", err)
	}
	if checked < 20 {
		t.Fatalf("checked only %d files under cmd/: the rule would check nothing", checked)
	}
}

// TestBuilderCalls checks that the source check sees renamed imports and
// ignores what is not a builder.
func TestBuilderCalls(t *testing.T) {
	src := `package x
import (
	au "github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/authn/scim"
)
func f() {
	au.New(au.Config{})
	profiles.New(profiles.Config{})
	profiles.ParsePeer(nil)
	scim.New(scim.Config{})
}`
	got, err := builderCalls("x.go", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"x.go:8: calls audit.New", "x.go:9: calls profiles.New", "x.go:11: calls authn/scim.New"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
