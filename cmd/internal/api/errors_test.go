package api

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/ferryvpn/ferry"

// domainRoots are the directories, relative to the module root, whose
// exported sentinels handlers may meet: the domain packages of STYLE.md's
// table and the cmd/internal packages handlers call.
var domainRoots = []string{"cluster", "audit", "authn", "profiles", "tunnel", "report"}

// domainSentinels returns every exported package-level variable named
// Err... in the non-test source of the domain packages, as
// "import/path.ErrName". Test-helper packages (…test) are left out.
func domainSentinels(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	fset := token.NewFileSet()
	for _, dr := range domainRoots {
		err := filepath.WalkDir(filepath.Join(root, dr), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if b := d.Name(); b == "testdata" || (strings.HasSuffix(b, "test") && p != filepath.Join(root, dr)) {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, filepath.Dir(p))
			pkg := module + "/" + filepath.ToSlash(rel)
			for _, decl := range f.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.VAR {
					continue
				}
				for _, spec := range gd.Specs {
					for _, n := range spec.(*ast.ValueSpec).Names {
						if n.IsExported() && strings.HasPrefix(n.Name, "Err") {
							out = append(out, pkg+"."+n.Name)
						}
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walking %s: %v", dr, err)
		}
	}
	slices.Sort(out)
	return out
}

// tableSentinels returns the sentinels named in errors.go's table, as
// "import/path.ErrName", read from the source like domainSentinels.
func tableSentinels(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	imports := map[string]string{}
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		name := path.Base(p)
		if im.Name != nil {
			name = im.Name.Name
		}
		imports[name] = p
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "sentinels" {
			return true
		}
		for _, elt := range vs.Values[0].(*ast.CompositeLit).Elts {
			row := elt.(*ast.CompositeLit)
			if sel, ok := row.Elts[0].(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok {
					out = append(out, imports[x.Name]+"."+sel.Sel.Name)
				}
			}
		}
		return false
	})
	return out
}

// TestEveryDomainSentinelIsMapped fails when an exported sentinel of a
// domain package is missing from the error table: it would be answered
// as a 500 "internal error" and logged as an ERROR.
func TestEveryDomainSentinelIsMapped(t *testing.T) {
	all := domainSentinels(t, filepath.Join("..", "..", ".."))
	// Fail loudly rather than pass over nothing.
	if len(all) < 30 {
		t.Fatalf("found only %d sentinels in %v: the walk is broken", len(all), domainRoots)
	}
	table := tableSentinels(t)
	if len(table) < len(all)/2 {
		t.Fatalf("read only %d rows of the error table: the parse is broken", len(table))
	}
	for _, s := range all {
		if !slices.Contains(table, s) {
			t.Errorf("%s is not in the API's error table (errors.go): it would be answered as a 500", s)
		}
	}
}

// TestErrorTable checks each row: it is reached (no earlier row shadows
// it) through wrapping, and none is a 500.
func TestErrorTable(t *testing.T) {
	for _, s := range sentinels {
		t.Run(s.err.Error(), func(t *testing.T) {
			if s.status >= 500 && s.status != http.StatusServiceUnavailable && s.status != http.StatusBadGateway {
				t.Errorf("status %d: a known error must not be answered as an internal error", s.status)
			}
			status, msg, ok := statusOf(fmt.Errorf("doing something: %w", s.err))
			if !ok || status != s.status {
				t.Errorf("statusOf = %d, %v; want %d (shadowed by an earlier row?)", status, ok, s.status)
			}
			if msg == "" || msg == "internal error" {
				t.Errorf("message %q says nothing", msg)
			}
		})
	}
	if status, _, ok := statusOf(errors.New("surprise")); ok || status != http.StatusInternalServerError {
		t.Errorf("an unknown error: %d, %v; want 500, false", status, ok)
	}
	if status, msg, _ := statusOf(fmt.Errorf("x: %w", errorf(http.StatusTeapot, "short and %s", "stout"))); status != http.StatusTeapot || msg != "short and stout" {
		t.Errorf("a statusError: %d %q", status, msg)
	}
}
