package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxFileSize bounds how much of a configuration file is read: a real one
// is a few hundred bytes, so a huge file is a mistake.
const maxFileSize = 1 << 20

// Load reads the configuration file at path, resolves relative paths
// against its directory, applies the overrides and the defaults, and
// validates the result. Errors name the file and the field.
func Load(path string, o Overrides) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("config %s: %w", path, invalid(fmt.Sprintf("larger than %d bytes", maxFileSize)))
	}
	c, err := Parse(data, filepath.Dir(abs), o)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse is Load for a file's contents; relative paths resolve against dir.
func Parse(data []byte, dir string, o Overrides) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, invalid("the file is empty")
		}
		return nil, decodeError(data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, invalid("want one YAML document, found more")
	}
	c.resolvePaths(dir)
	c.apply(o)
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// resolvePaths makes every relative path of c relative to dir.
func (c *Config) resolvePaths(dir string) {
	for _, p := range []*string{
		&c.DataDir, &c.MasterKeyFile,
		&c.TLS.CAFile, &c.TLS.CertFile, &c.TLS.KeyFile, &c.TLS.CAKeyFile,
		&c.API.CertFile, &c.API.KeyFile,
	} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for _, p := range c.servicePaths() {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

var (
	yamlLineMsg      = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	yamlCannot       = regexp.MustCompile(`^cannot unmarshal (\S+)`)
	yamlIntoStruct   = regexp.MustCompile(`^cannot unmarshal (\S+)(?: .*)? into config\.\w+$`)
)

// decodeError rewrites a YAML decoding error so that each problem names the
// field path and line, such as "cluster.bootstrap (line 6): ...", and no Go
// type names leak into it.
func decodeError(data []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return invalid(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	// The document parsed far enough to be typed, so it parses as a tree.
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		root = yaml.Node{}
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		msgs = append(msgs, describe(&root, e))
	}
	return invalid(strings.Join(msgs, "; "))
}

// describe turns one "line N: message" from yaml.v3 into "path (line N):
// message".
func describe(root *yaml.Node, e string) string {
	m := yamlLineMsg.FindStringSubmatch(e)
	if m == nil {
		return e
	}
	line, _ := strconv.Atoi(m[1])
	msg := m[2]
	// match picks the key/value pair on the line that the message is about;
	// several pairs share a line in a flow mapping such as {a: 1, b: 2}.
	match := func(k, v *yaml.Node) bool { return true }
	if u := yamlUnknownField.FindStringSubmatch(msg); u != nil {
		msg = "unknown field"
		match = func(k, v *yaml.Node) bool { return k.Value == u[1] }
	} else if s := yamlIntoStruct.FindStringSubmatch(msg); s != nil {
		msg = "want a mapping of fields, found " + s[1]
		match = func(k, v *yaml.Node) bool { return v.ShortTag() == s[1] }
	} else if s := yamlCannot.FindStringSubmatch(msg); s != nil {
		match = func(k, v *yaml.Node) bool { return v.ShortTag() == s[1] }
	}
	path := pathAt(root, line, match, "")
	if path == "" {
		return fmt.Sprintf("line %d: %s", line, msg)
	}
	return fmt.Sprintf("%s (line %d): %s", path, line, msg)
}

// pathAt returns the dotted path of the first key on line whose pair
// satisfies match, preferring the deepest.
func pathAt(n *yaml.Node, line int, match func(k, v *yaml.Node) bool, prefix string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p := pathAt(c, line, match, prefix); p != "" {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			if sub := pathAt(v, line, match, p); sub != "" {
				return sub
			}
			if k.Line == line && match(k, v) {
				return p
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p := pathAt(c, line, match, fmt.Sprintf("%s[%d]", prefix, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// UnmarshalYAML parses a duration string such as "1s" or "500ms", or a
// whole number of days such as "400d".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	bad := func(format string, args ...any) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
	}
	if n.Kind != yaml.ScalarNode {
		return bad("want a duration such as \"1s\" or \"500ms\"")
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return bad("%.64q is not a duration: want a number and a unit, such as \"1s\" or \"500ms\"", n.Value)
	}
	*d = Duration(v)
	return nil
}

// parseDuration is time.ParseDuration that also takes whole days ("400d"),
// the unit retention periods are thought in.
func parseDuration(s string) (time.Duration, error) {
	days, ok := strings.CutSuffix(s, "d")
	if !ok {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseUint(days, 10, 16)
	if err != nil {
		return 0, err
	}
	return time.Duration(n) * 24 * time.Hour, nil
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Marshal returns c as a configuration file that Load reads back, headed by
// comment, a text whose lines are written as YAML comments.
func (c *Config) Marshal(comment string) ([]byte, error) {
	var b bytes.Buffer
	for _, l := range strings.Split(strings.TrimRight(comment, "\n"), "\n") {
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return b.Bytes(), nil
}
