package scim

import (
	"slices"

	scimfilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/schema"
	"github.com/scim2/filter-parser/v2"
)

// filterSchema is what filters on a resource type are evaluated against:
// its schema with the common attributes (id, externalId, meta), and its
// extensions.
type filterSchema struct {
	schema schema.Schema
	exts   []schema.Schema
}

func newFilterSchema(s schema.Schema, exts ...schema.Schema) filterSchema {
	s.Attributes = append(slices.Clone(s.Attributes), schema.CommonAttributes()...)
	return filterSchema{schema: s, exts: exts}
}

var (
	userFilters  = newFilterSchema(schema.CoreUserSchema(), schema.ExtensionEnterpriseUser())
	groupFilters = newFilterSchema(schema.CoreGroupSchema())
)

// passes evaluates a validated filter on a resource. The protocol
// library evaluates each comparison, except one on a sub-attribute of a
// multi-valued attribute (emails.value eq "x"), which it cannot: RFC 7644
// section 3.4.2.2 has it match when any value matches, which is done
// here.
func (fs filterSchema) passes(res map[string]any, exp filter.Expression) bool {
	switch e := exp.(type) {
	case *filter.LogicalExpression:
		if e.Operator == filter.AND {
			return fs.passes(res, e.Left) && fs.passes(res, e.Right)
		}
		return fs.passes(res, e.Left) || fs.passes(res, e.Right)
	case *filter.NotExpression:
		return !fs.passes(res, e.Expression)
	case *filter.AttributeExpression:
		if sub := e.AttributePath.SubAttributeName(); sub != "" && e.AttributePath.URI() == "" {
			if list, ok := lookup(res, e.AttributePath.AttributeName).([]any); ok {
				one := &filter.AttributeExpression{AttributePath: filter.AttributePath{AttributeName: sub}, Operator: e.Operator, CompareValue: e.CompareValue}
				for _, x := range list {
					if m, ok := x.(map[string]any); ok && matches(m, one) {
						return true
					}
				}
				return false
			}
		}
	}
	return scimfilter.NewFilterValidator(exp, fs.schema, fs.exts...).PassesFilter(res) == nil
}
