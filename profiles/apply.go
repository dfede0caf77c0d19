package profiles

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ferryvpn/ferry/audit"
)

// File is a declarative profile file: the complete set of profiles the
// cluster should have.
//
//	profiles:
//	  - name: engineering
//	    rules:
//	      - {cidr: 10.0.0.0/16, protocol: tcp, ports: [22, 443, 8000-8080]}
//	    groups: [engineering]
type File struct {
	Profiles []Profile `yaml:"profiles"`
}

// maxFileBytes bounds a profile file.
const maxFileBytes = 8 << 20

// ParseFile decodes and validates a profile file whole. Errors name the
// file's line and the field: "line 12: profile "ops": rules[1].ports[0]: ...".
func ParseFile(data []byte, pool netip.Prefix) ([]Profile, error) {
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%w: file larger than %d bytes", ErrInvalid, maxFileBytes)
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty file (want a top-level 'profiles:' list)", ErrInvalid)
		}
		return nil, &FileError{Line: yamlLine(err), Err: fmt.Errorf("%w: %v", ErrInvalid, err)}
	}
	var f File
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&f); err != nil {
		return nil, &FileError{Line: yamlLine(err), Err: fmt.Errorf("%w: %v", ErrInvalid, err)}
	}
	list := profilesNode(&root)
	seen := map[string]int{}
	for i := range f.Profiles {
		p := &f.Profiles[i]
		p.Normalize()
		line := 0
		if list != nil && i < len(list.Content) {
			line = list.Content[i].Line
		}
		if err := p.Validate(pool); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) && list != nil && i < len(list.Content) {
				if n := lookup(list.Content[i], fe.Field); n != nil {
					line = n.Line
				}
			}
			return nil, &FileError{Line: line, Err: fmt.Errorf("line %d: %w", line, err)}
		}
		if prev, dup := seen[p.Name]; dup {
			return nil, &FileError{Line: line, Err: fmt.Errorf("%w: line %d: profile %q: name: already defined on line %d", ErrInvalid, line, p.Name, prev)}
		}
		seen[p.Name] = line
	}
	return f.Profiles, nil
}

// MarshalFile writes ps as a profile file that ParseFile reads back to
// the same profiles (what the admin console's editor starts from). The
// store's own fields (version, updated) are left out.
func MarshalFile(ps []Profile) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(File{Profiles: ps}); err != nil {
		return nil, fmt.Errorf("writing profile file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("writing profile file: %w", err)
	}
	return b.Bytes(), nil
}

// FileError is an error of a profile file at a line, for showing it
// there (the admin console's editor). Its text is the wrapped error's,
// which names the line too.
type FileError struct {
	// Line is the 1-based line of the file; 0 when not known.
	Line int
	Err  error
}

func (e *FileError) Error() string { return e.Err.Error() }

// Unwrap returns the error, which wraps ErrInvalid.
func (e *FileError) Unwrap() error { return e.Err }

// yamlLinePattern finds the line yaml.v3 names in its errors ("yaml:
// line 3: ...", "line 7: field x not found in type ...").
var yamlLinePattern = regexp.MustCompile(`line (\d+):`)

// yamlLine returns the first line a YAML decoding error names, or 0.
func yamlLine(err error) int {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLinePattern.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func profilesNode(root *yaml.Node) *yaml.Node {
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "profiles" && root.Content[i+1].Kind == yaml.SequenceNode {
			return root.Content[i+1]
		}
	}
	return nil
}

var segment = regexp.MustCompile(`^([a-z_]+)(?:\[(\d+)\])?$`)

// lookup finds the node of a field path like "rules[2].ports[0]".
func lookup(n *yaml.Node, path string) *yaml.Node {
	for _, part := range strings.Split(path, ".") {
		m := segment.FindStringSubmatch(part)
		if m == nil || n.Kind != yaml.MappingNode {
			return n
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == m[1] {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return n
		}
		n = next
		if m[2] != "" {
			idx, _ := strconv.Atoi(m[2])
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return n
			}
			n = n.Content[idx]
		}
	}
	return n
}

// Change is one profile that differs between the cluster and the file.
type Change struct {
	Name   string
	Fields []string // for updates: the fields that differ
}

// Plan is what applying a file does.
type Plan struct {
	Create, Update, Delete []Change
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool { return len(p.Create)+len(p.Update)+len(p.Delete) == 0 }

// String renders the plan as a diff, one line per profile.
func (p Plan) String() string {
	if p.Empty() {
		return "no changes\n"
	}
	var b strings.Builder
	for _, c := range p.Create {
		fmt.Fprintf(&b, "+ profile %s\n", c.Name)
	}
	for _, c := range p.Update {
		fmt.Fprintf(&b, "~ profile %s: %s\n", c.Name, strings.Join(c.Fields, ", "))
	}
	for _, c := range p.Delete {
		fmt.Fprintf(&b, "- profile %s\n", c.Name)
	}
	return b.String()
}

// Apply makes the cluster's profiles match want exactly: creates, updates
// and deletes (deleting a profile revokes its peers). With dryRun it only
// returns the plan. Applying the same file twice changes nothing.
func (s *Store) Apply(ctx context.Context, want []Profile, dryRun bool, actor audit.Actor) (Plan, error) {
	for i := range want {
		want[i].Normalize()
		if err := want[i].Validate(s.pool, s.pool6); err != nil {
			return Plan{}, err
		}
	}
	have, err := s.List(ctx)
	if err != nil {
		return Plan{}, err
	}
	byName := map[string]Profile{}
	for _, p := range have {
		byName[p.Name] = p
	}
	var plan Plan
	var puts []Profile
	var versions []uint64
	for _, w := range want {
		h, ok := byName[w.Name]
		delete(byName, w.Name)
		if !ok {
			plan.Create = append(plan.Create, Change{Name: w.Name})
			puts, versions = append(puts, w), append(versions, 0)
			continue
		}
		if fields := diffFields(h, w); len(fields) > 0 {
			plan.Update = append(plan.Update, Change{Name: w.Name, Fields: fields})
			puts, versions = append(puts, w), append(versions, h.Version)
		}
	}
	for name := range byName {
		plan.Delete = append(plan.Delete, Change{Name: name})
	}
	for _, l := range [][]Change{plan.Create, plan.Update, plan.Delete} {
		slices.SortFunc(l, func(a, b Change) int { return strings.Compare(a.Name, b.Name) })
	}
	if dryRun {
		return plan, nil
	}
	for i, p := range puts {
		v := versions[i]
		if _, err := s.Put(ctx, p, &v, actor); err != nil {
			return plan, fmt.Errorf("applying profile %q: %w", p.Name, err)
		}
	}
	for _, c := range plan.Delete {
		if err := s.Delete(ctx, c.Name, actor); err != nil {
			return plan, fmt.Errorf("deleting profile %q: %w", c.Name, err)
		}
	}
	return plan, nil
}

// diffFields names the fields (by their JSON names) in which two profiles
// differ, ignoring the store's own version, time and author.
func diffFields(a, b Profile) []string {
	var out []string
	ta := reflect.TypeOf(a)
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := 0; i < ta.NumField(); i++ {
		f := ta.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "version" || name == "updated" || name == "updated_by" {
			continue
		}
		x, _ := json.Marshal(va.Field(i).Interface())
		y, _ := json.Marshal(vb.Field(i).Interface())
		if !bytes.Equal(x, y) {
			out = append(out, name)
		}
	}
	return out
}
