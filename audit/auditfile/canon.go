package auditfile

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Canonical JSON (RFC 8785, the JSON Canonicalization Scheme).
//
// Journal records are stored in canonical form and hashed as such, so a
// receiver that re-encodes them — escapes `<` differently, reorders keys,
// adds whitespace, writes non-ASCII as \u escapes (jq -c, Python's
// json.loads/json.dumps, a SIEM's pipeline) — still holds a record whose
// canonical form is the hashed one. The verifier canonicalizes a record
// whose bytes do not match their hash and tries again.
//
// One extension: an integer written without fraction or exponent keeps its
// exact digits (RFC 8785 would round integers beyond 2^53 through a double).
// ferry's records hold counters that may pass 2^53; re-encoders that keep
// integers exact (Python, jq 1.7) keep them verifiable.

// errCanon is wrapped by canonicalization errors.
var errCanon = fmt.Errorf("%w: not canonicalizable JSON", ErrMalformed)

// maxDepth bounds nesting, so hostile input cannot exhaust the stack.
const maxDepth = 64

// Canonical returns the RFC 8785 canonical form of the JSON text b.
func Canonical(b []byte) ([]byte, error) { return AppendCanonical(nil, b) }

// AppendCanonical appends the RFC 8785 canonical form of the JSON text b
// to dst. It fails on invalid JSON, invalid UTF-8, lone surrogates,
// duplicate object keys and non-finite numbers.
func AppendCanonical(dst, b []byte) ([]byte, error) {
	var c canon
	return c.append(dst, b)
}

// append is AppendCanonical reusing c's buffers.
func (c *canon) append(dst, b []byte) ([]byte, error) {
	c.in, c.pos = b, 0
	c.ws()
	out, err := c.value(dst, 0)
	if err != nil {
		return dst, err
	}
	c.ws()
	if c.pos != len(c.in) {
		return dst, fmt.Errorf("%w: trailing data at offset %d", errCanon, c.pos)
	}
	return out, nil
}

type canon struct {
	in  []byte
	pos int
	// spare holds buffers for reordering object members, one per depth,
	// and spareMembers their member lists.
	spare        [][]byte
	spareMembers [][]member
	// scratch holds a string value while it is decoded.
	scratch []byte
}

func (c *canon) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errCanon, what, c.pos)
}

func (c *canon) ws() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *canon) value(dst []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, c.fail("nested too deeply")
	}
	if c.pos >= len(c.in) {
		return dst, c.fail("unexpected end")
	}
	switch ch := c.in[c.pos]; {
	case ch == '{':
		return c.object(dst, depth)
	case ch == '[':
		return c.array(dst, depth)
	case ch == '"':
		s, err := c.str(c.scratch[:0])
		c.scratch = s[:0]
		if err != nil {
			return dst, err
		}
		return appendCanonString(dst, s), nil
	case ch == 't':
		return c.literal(dst, "true")
	case ch == 'f':
		return c.literal(dst, "false")
	case ch == 'n':
		return c.literal(dst, "null")
	case ch == '-' || (ch >= '0' && ch <= '9'):
		return c.number(dst)
	}
	return dst, c.fail("unexpected character")
}

func (c *canon) literal(dst []byte, lit string) ([]byte, error) {
	if len(c.in)-c.pos < len(lit) || string(c.in[c.pos:c.pos+len(lit)]) != lit {
		return dst, c.fail("bad literal")
	}
	c.pos += len(lit)
	return append(dst, lit...), nil
}

type member struct {
	key        []byte // decoded UTF-8
	wide       bool   // key holds characters beyond the BMP
	start, end int    // the canonical "key":value in the staging buffer
}

func (c *canon) object(dst []byte, depth int) ([]byte, error) {
	c.pos++ // {
	var stage []byte
	var members []member
	if depth < len(c.spare) {
		stage, members = c.spare[depth][:0], c.spareMembers[depth][:0]
	}
	c.ws()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		return append(dst, '{', '}'), nil
	}
	for {
		c.ws()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return dst, c.fail("want an object key")
		}
		var key []byte
		var err error
		if len(members) > 0 {
			stage = append(stage, ',') // members in order are copied at once
		}
		start := len(stage)
		if key, err = c.key(); err != nil {
			return dst, err
		}
		stage = appendCanonString(stage, key)
		c.ws()
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return dst, c.fail("want ':'")
		}
		c.pos++
		c.ws()
		stage = append(stage, ':')
		if stage, err = c.value(stage, depth+1); err != nil {
			return dst, err
		}
		members = append(members, member{key: key, wide: hasFourByte(key), start: start, end: len(stage)})
		c.ws()
		if c.pos >= len(c.in) {
			return dst, c.fail("unterminated object")
		}
		if c.in[c.pos] == ',' {
			c.pos++
			continue
		}
		if c.in[c.pos] != '}' {
			return dst, c.fail("want ',' or '}'")
		}
		c.pos++
		break
	}
	// Members already in canonical order (as stored, and as most
	// re-encoders keep them) need no sort; strictly increasing keys have no
	// duplicates either.
	sorted := true
	for i := 1; i < len(members) && sorted; i++ {
		sorted = compareMembers(members[i-1], members[i]) < 0
	}
	if sorted {
		dst = append(dst, '{')
		dst = append(dst, stage[members[0].start:]...)
		dst = append(dst, '}')
	} else {
		slices.SortFunc(members, compareMembers)
		dst = append(dst, '{')
		for i, m := range members {
			if i > 0 {
				if compareKeys(members[i-1].key, m.key) == 0 {
					return dst, fmt.Errorf("%w: duplicate key %q", errCanon, m.key)
				}
				dst = append(dst, ',')
			}
			dst = append(dst, stage[m.start:m.end]...)
		}
		dst = append(dst, '}')
	}
	for len(c.spare) <= depth {
		c.spare = append(c.spare, nil)
		c.spareMembers = append(c.spareMembers, nil)
	}
	c.spare[depth], c.spareMembers[depth] = stage, members
	return dst, nil
}

// key decodes an object key: a view of the input when it holds no escape
// or non-ASCII byte, a copy otherwise.
func (c *canon) key() ([]byte, error) {
	for i := c.pos + 1; i < len(c.in); i++ {
		switch ch := c.in[i]; {
		case ch == '"':
			k := c.in[c.pos+1 : i]
			c.pos = i + 1
			return k, nil
		case ch == '\\' || ch < 0x20 || ch >= 0x80:
			return c.str(nil)
		}
	}
	return c.str(nil)
}

func (c *canon) array(dst []byte, depth int) ([]byte, error) {
	c.pos++ // [
	dst = append(dst, '[')
	c.ws()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		return append(dst, ']'), nil
	}
	for first := true; ; first = false {
		if !first {
			dst = append(dst, ',')
		}
		c.ws()
		var err error
		if dst, err = c.value(dst, depth+1); err != nil {
			return dst, err
		}
		c.ws()
		if c.pos >= len(c.in) {
			return dst, c.fail("unterminated array")
		}
		if c.in[c.pos] == ',' {
			c.pos++
			continue
		}
		if c.in[c.pos] != ']' {
			return dst, c.fail("want ',' or ']'")
		}
		c.pos++
		return append(dst, ']'), nil
	}
}

// str decodes the JSON string at pos, appending its UTF-8 to dst.
func (c *canon) str(dst []byte) ([]byte, error) {
	c.pos++ // "
	for {
		// Copy the run of plain bytes at once.
		i := c.pos
		for i < len(c.in) {
			ch := c.in[i]
			if ch == '"' || ch == '\\' || ch < 0x20 || ch >= 0x80 {
				break
			}
			i++
		}
		dst = append(dst, c.in[c.pos:i]...)
		c.pos = i
		if c.pos >= len(c.in) {
			return dst, c.fail("unterminated string")
		}
		switch ch := c.in[c.pos]; {
		case ch == '"':
			c.pos++
			return dst, nil
		case ch < 0x20:
			return dst, c.fail("control character in string")
		case ch >= 0x80:
			r, n := utf8.DecodeRune(c.in[c.pos:])
			if r == utf8.RuneError && n <= 1 {
				return dst, c.fail("invalid UTF-8")
			}
			dst = append(dst, c.in[c.pos:c.pos+n]...)
			c.pos += n
		default: // backslash
			if c.pos+1 >= len(c.in) {
				return dst, c.fail("unterminated escape")
			}
			e := c.in[c.pos+1]
			c.pos += 2
			switch e {
			case '"', '\\', '/':
				dst = append(dst, e)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, ok := c.hex4()
				if !ok {
					return dst, c.fail("bad \\u escape")
				}
				if utf16.IsSurrogate(r) {
					if r >= 0xdc00 || c.pos+1 >= len(c.in) || c.in[c.pos] != '\\' || c.in[c.pos+1] != 'u' {
						return dst, c.fail("lone surrogate")
					}
					c.pos += 2
					lo, ok := c.hex4()
					if !ok {
						return dst, c.fail("bad \\u escape")
					}
					if r = utf16.DecodeRune(r, lo); r == utf8.RuneError {
						return dst, c.fail("lone surrogate")
					}
				}
				dst = utf8.AppendRune(dst, r)
			default:
				return dst, c.fail("bad escape")
			}
		}
	}
}

func (c *canon) hex4() (rune, bool) {
	if len(c.in)-c.pos < 4 {
		return 0, false
	}
	var r rune
	for _, ch := range c.in[c.pos : c.pos+4] {
		r <<= 4
		switch {
		case ch >= '0' && ch <= '9':
			r |= rune(ch - '0')
		case ch >= 'a' && ch <= 'f':
			r |= rune(ch - 'a' + 10)
		case ch >= 'A' && ch <= 'F':
			r |= rune(ch - 'A' + 10)
		default:
			return 0, false
		}
	}
	c.pos += 4
	return r, true
}

func (c *canon) number(dst []byte) ([]byte, error) {
	start := c.pos
	if c.in[c.pos] == '-' {
		c.pos++
	}
	digits := c.pos
	for c.pos < len(c.in) && c.in[c.pos] >= '0' && c.in[c.pos] <= '9' {
		c.pos++
	}
	if c.pos == digits || (c.in[digits] == '0' && c.pos-digits > 1) {
		return dst, c.fail("bad number")
	}
	integer := true
	if c.pos < len(c.in) && c.in[c.pos] == '.' {
		integer = false
		c.pos++
		f := c.pos
		for c.pos < len(c.in) && c.in[c.pos] >= '0' && c.in[c.pos] <= '9' {
			c.pos++
		}
		if c.pos == f {
			return dst, c.fail("bad number")
		}
	}
	if c.pos < len(c.in) && (c.in[c.pos] == 'e' || c.in[c.pos] == 'E') {
		integer = false
		c.pos++
		if c.pos < len(c.in) && (c.in[c.pos] == '+' || c.in[c.pos] == '-') {
			c.pos++
		}
		e := c.pos
		for c.pos < len(c.in) && c.in[c.pos] >= '0' && c.in[c.pos] <= '9' {
			c.pos++
		}
		if c.pos == e {
			return dst, c.fail("bad number")
		}
	}
	lit := c.in[start:c.pos]
	if integer {
		if string(lit) == "-0" {
			return append(dst, '0'), nil
		}
		return append(dst, lit...), nil
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, c.fail("number out of range")
	}
	return appendES6Number(dst, f), nil
}

// appendES6Number formats f the way ECMAScript's Number.prototype.toString
// does, as RFC 8785 requires.
func appendES6Number(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0')
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	s := strconv.AppendFloat(nil, f, 'e', -1, 64)
	// Go writes e-07 and e+21; ECMAScript writes e-7 and e+21.
	for i := len(s) - 1; i > 0; i-- {
		if s[i] == 'e' {
			exp := s[i+2:]
			for len(exp) > 1 && exp[0] == '0' {
				exp = exp[1:]
			}
			s = append(s[:i+2], exp...)
			break
		}
	}
	return append(dst, s...)
}

// appendCanonString appends the canonical encoding of the UTF-8 string s:
// only '"', '\\' and control characters are escaped.
func appendCanonString(dst, s []byte) []byte {
	const hexdig = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 0x20 && ch != '"' && ch != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch ch {
		case '"', '\\':
			dst = append(dst, '\\', ch)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexdig[ch>>4], hexdig[ch&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func compareMembers(a, b member) int {
	if !a.wide && !b.wide {
		return bytes.Compare(a.key, b.key)
	}
	return compareKeys(a.key, b.key)
}

// compareKeys orders object keys by their UTF-16 code units, as RFC 8785
// requires. UTF-8 byte order is the same except for characters beyond the
// Basic Multilingual Plane, so those alone take the slow path.
func compareKeys(a, b []byte) int {
	if !hasFourByte(a) && !hasFourByte(b) {
		return bytes.Compare(a, b)
	}
	ua, ub := utf16.Encode([]rune(string(a))), utf16.Encode([]rune(string(b)))
	return slices.Compare(ua, ub)
}

func hasFourByte(s []byte) bool {
	for _, ch := range s {
		if ch >= 0xf0 {
			return true
		}
	}
	return false
}

// skipWS returns the index of the first non-whitespace byte at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the JSON string starting at i.
func skipString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index just past the JSON value starting at i. It
// checks structure only (brackets and strings), not every detail: callers
// hash or fully decode what they keep.
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, ok := skipString(b, i)
				if !ok {
					return 0, false
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
		}
		return 0, false
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j, j > i
}

// objectMembers calls fn with each member's raw key (between the quotes,
// undecoded) and raw value of the JSON object b, stopping when fn returns
// false. It reports whether b was a well-formed object as far as it read.
func objectMembers(b []byte, fn func(key, val []byte) bool) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		ke, ok := skipString(b, i)
		if !ok {
			return false
		}
		key := b[i+1 : ke-1]
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipWS(b, i+1)
		ve, ok := skipValue(b, i)
		if !ok {
			return false
		}
		if !fn(key, b[i:ve]) {
			return true
		}
		i = skipWS(b, ve)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			return skipWS(b, i+1) == len(b)
		}
		if b[i] != ',' {
			return false
		}
		i = skipWS(b, i+1)
	}
}

// eventID returns the raw "id" string of an event record (between the
// quotes, as stored: canonical records hold it unescaped).
func eventID(data []byte) []byte {
	var id []byte
	objectMembers(data, func(k, v []byte) bool {
		if string(k) == "id" {
			if len(v) >= 2 && v[0] == '"' {
				id = v[1 : len(v)-1]
			}
			return false
		}
		return true
	})
	return id
}
