package scim

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/scim2/filter-parser/v2"
)

// applyPatch applies validated PATCH operations (RFC 7644 section 3.5.2)
// to a copy of attrs and returns it. Removing a value that is not there is
// not an error: identity providers repeat removals, and the outcome they
// want already holds.
func applyPatch(attrs map[string]any, ops []scim.PatchOperation) (map[string]any, error) {
	out, _ := deepCopy(attrs).(map[string]any)
	for i, op := range ops {
		if err := applyOp(out, op); err != nil {
			return nil, fmt.Errorf("operation %d: %w", i, err)
		}
	}
	return out, nil
}

func badPatch(t scimerrors.ScimType, detail string) error {
	return scimerrors.ScimError{ScimType: t, Detail: detail, Status: http.StatusBadRequest}
}

func applyOp(attrs map[string]any, op scim.PatchOperation) error {
	if op.Path == nil {
		if op.Op == scim.PatchOperationRemove {
			return badPatch(scimerrors.ScimTypeNoTarget, "remove requires a path")
		}
		m, ok := op.Value.(map[string]any)
		if !ok {
			return badPatch(scimerrors.ScimTypeInvalidValue, "a value without a path must be an object of attributes")
		}
		for k, v := range m {
			container, name := attrs, k
			if !strings.HasPrefix(strings.ToLower(k), "urn:") {
				// Path-less values may name sub-attributes ("name.givenName").
				if parent, sub, ok := strings.Cut(k, "."); ok {
					container, name = child(attrs, parent), sub
				}
			}
			if sub, ok := v.(map[string]any); ok && strings.HasPrefix(strings.ToLower(k), "urn:") {
				ext := child(attrs, k)
				for sk, sv := range sub {
					setAttr(ext, sk, sv, op.Op)
				}
				continue
			}
			setAttr(container, name, v, op.Op)
		}
		return nil
	}
	container := attrs
	if uri := op.Path.AttributePath.URI(); uri != "" {
		container = child(attrs, uri)
	}
	name := op.Path.AttributePath.AttributeName
	if sub := op.Path.AttributePath.SubAttributeName(); sub != "" {
		container, name = child(container, name), sub
	}
	if op.Path.ValueExpression == nil {
		if op.Op == scim.PatchOperationRemove {
			return removeAttr(container, name, op.Value)
		}
		setAttr(container, name, op.Value, op.Op)
		return nil
	}
	return applyFiltered(container, name, op)
}

// child returns attrs[name] as an object, creating it when missing.
func child(attrs map[string]any, name string) map[string]any {
	k := keyOf(attrs, name)
	if m, ok := attrs[k].(map[string]any); ok {
		return m
	}
	m := map[string]any{}
	attrs[k] = m
	return m
}

// keyOf returns the key under which name is stored (attribute names are
// case-insensitive), or name when absent.
func keyOf(attrs map[string]any, name string) string {
	if _, ok := attrs[name]; ok {
		return name
	}
	for k := range attrs {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return name
}

func setAttr(attrs map[string]any, name string, v any, op string) {
	k := keyOf(attrs, name)
	if op == scim.PatchOperationAdd {
		if cur, ok := attrs[k].([]any); ok {
			if add, ok := v.([]any); ok {
				attrs[k] = appendNew(cur, add)
				return
			}
		}
		if cur, ok := attrs[k].(map[string]any); ok {
			if add, ok := v.(map[string]any); ok {
				for ak, av := range add {
					cur[keyOf(cur, ak)] = av
				}
				return
			}
		}
	}
	attrs[k] = v
}

// appendNew appends the elements of add that cur lacks (by their "value"
// sub-attribute when they have one, as members do).
func appendNew(cur, add []any) []any {
	for _, a := range add {
		if !containsValue(cur, a) {
			cur = append(cur, a)
		}
	}
	return cur
}

func containsValue(list []any, a any) bool {
	av, aok := a.(map[string]any)
	for _, c := range list {
		cv, cok := c.(map[string]any)
		if aok && cok {
			if x, y := str(av, "value"), str(cv, "value"); x != "" && x == y {
				return true
			}
			continue
		}
		if c == a {
			return true
		}
	}
	return false
}

// removeAttr removes an attribute, or with a value list (as Entra ID sends
// to remove group members) only the listed elements.
func removeAttr(attrs map[string]any, name string, v any) error {
	k := keyOf(attrs, name)
	rm, ok := v.([]any)
	cur, isList := attrs[k].([]any)
	if !ok || len(rm) == 0 || !isList {
		delete(attrs, k)
		return nil
	}
	kept := cur[:0:0]
	for _, c := range cur {
		if !containsValue(rm, c) {
			kept = append(kept, c)
		}
	}
	attrs[k] = kept
	return nil
}

// applyFiltered handles paths with a value filter: members[value eq "x"],
// emails[type eq "work"].value.
func applyFiltered(attrs map[string]any, name string, op scim.PatchOperation) error {
	k := keyOf(attrs, name)
	var list []any
	if cur, ok := attrs[k].([]any); ok {
		list = cur
	} else if attrs[k] != nil {
		return badPatch(scimerrors.ScimTypeInvalidPath, "a value filter needs a multi-valued attribute: "+name)
	}
	sub := op.Path.SubAttributeName()
	matched := false
	kept := list[:0:0]
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok || !matches(m, op.Path.ValueExpression) {
			kept = append(kept, e)
			continue
		}
		matched = true
		switch {
		case op.Op == scim.PatchOperationRemove && sub == "":
			continue // drop the element
		case op.Op == scim.PatchOperationRemove:
			delete(m, keyOf(m, sub))
		case sub != "":
			m[keyOf(m, sub)] = op.Value
		default:
			if nv, ok := op.Value.(map[string]any); ok {
				for vk, vv := range nv {
					m[keyOf(m, vk)] = vv
				}
			}
		}
		kept = append(kept, m)
	}
	if !matched && op.Op != scim.PatchOperationRemove {
		// Nothing matched: add an element made of the filter's equalities
		// and the value (Entra ID sets emails[type eq "work"].value so on a
		// user without a work email).
		e := equalities(op.Path.ValueExpression)
		if e == nil {
			return badPatch(scimerrors.ScimTypeNoTarget, "the value filter matched nothing: "+op.Path.String())
		}
		if sub != "" {
			e[sub] = op.Value
		} else if nv, ok := op.Value.(map[string]any); ok {
			for vk, vv := range nv {
				e[vk] = vv
			}
		}
		kept = append(kept, e)
	}
	attrs[k] = kept
	return nil
}

// equalities returns the attr eq value comparisons of an and-expression, or
// nil when the expression is anything else.
func equalities(exp filter.Expression) map[string]any {
	switch e := exp.(type) {
	case *filter.AttributeExpression:
		if e.Operator != filter.EQ {
			return nil
		}
		return map[string]any{e.AttributePath.AttributeName: e.CompareValue}
	case *filter.LogicalExpression:
		if e.Operator != filter.AND {
			return nil
		}
		l, r := equalities(e.Left), equalities(e.Right)
		if l == nil || r == nil {
			return nil
		}
		for k, v := range r {
			l[k] = v
		}
		return l
	}
	return nil
}

// matches evaluates a value filter against one element of a multi-valued
// attribute. Strings compare case-insensitively (caseExact is false for
// the sub-attributes identity providers filter on: value, type, display).
func matches(m map[string]any, exp filter.Expression) bool {
	switch e := exp.(type) {
	case *filter.LogicalExpression:
		if e.Operator == filter.AND {
			return matches(m, e.Left) && matches(m, e.Right)
		}
		return matches(m, e.Left) || matches(m, e.Right)
	case *filter.NotExpression:
		return !matches(m, e.Expression)
	case *filter.AttributeExpression:
		name := e.AttributePath.AttributeName
		if sub := e.AttributePath.SubAttributeName(); sub != "" {
			name = sub
		}
		v := lookup(m, name)
		if e.Operator == filter.PR {
			return v != nil && v != ""
		}
		return compare(v, e.Operator, e.CompareValue)
	}
	return false
}

func compare(v any, op filter.CompareOperator, want any) bool {
	switch w := want.(type) {
	case string:
		s, ok := v.(string)
		if !ok {
			return op == filter.NE
		}
		s, w = strings.ToLower(s), strings.ToLower(w)
		switch op {
		case filter.EQ:
			return s == w
		case filter.NE:
			return s != w
		case filter.CO:
			return strings.Contains(s, w)
		case filter.SW:
			return strings.HasPrefix(s, w)
		case filter.EW:
			return strings.HasSuffix(s, w)
		case filter.GT:
			return s > w
		case filter.GE:
			return s >= w
		case filter.LT:
			return s < w
		case filter.LE:
			return s <= w
		}
	case bool:
		b, ok := v.(bool)
		switch op {
		case filter.EQ:
			return ok && b == w
		case filter.NE:
			return !ok || b != w
		}
	case nil:
		switch op {
		case filter.EQ:
			return v == nil
		case filter.NE:
			return v != nil
		}
	}
	return false
}
