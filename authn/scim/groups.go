package scim

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sort"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"

	"github.com/ferryvpn/ferry/cluster"
)

// groupHandler serves /Groups. A group's members are SCIM user IDs; every
// member added or removed gets its ferry group list recomputed.
type groupHandler struct{ s *Service }

var _ scim.ResourceHandler = groupHandler{}

func (h groupHandler) toResource(rec resource) scim.Resource {
	attrs := make(scim.ResourceAttributes, len(rec.Attrs))
	for k, v := range rec.Attrs {
		attrs[k] = v
	}
	res := scim.Resource{ID: rec.ID, Attributes: attrs, Meta: scim.Meta{Created: &rec.Created, LastModified: &rec.Modified}}
	if ext := str(rec.Attrs, "externalId"); ext != "" {
		res.ExternalID = optional.NewString(ext)
	}
	return res
}

// members returns the user IDs a group's attributes list.
func members(attrs map[string]any) []string {
	list, _ := lookup(attrs, "members").([]any)
	var out []string
	for _, m := range list {
		if mm, ok := m.(map[string]any); ok {
			if v := str(mm, "value"); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

func checkGroup(attrs map[string]any) error {
	if str(attrs, "displayName") == "" {
		return badPatch(scimerrors.ScimTypeInvalidValue, "displayName is required")
	}
	if len(members(attrs)) > maxMembers {
		return scimerrors.ScimError{ScimType: scimerrors.ScimTypeTooMany, Status: http.StatusBadRequest, Detail: "A group holds at most 10000 members here."}
	}
	return nil
}

// maxMembers bounds a group's size, so one record stays small enough for a
// Raft entry.
const maxMembers = 10000

func (h groupHandler) Create(r *http.Request, in scim.ResourceAttributes) (scim.Resource, error) {
	const action = "scim.group.create"
	attrs, err := clean(in)
	if err != nil {
		return scim.Resource{}, fail(r, action, err)
	}
	if err := checkGroup(attrs); err != nil {
		return scim.Resource{}, fail(r, action, err)
	}
	id, err := newID()
	if err != nil {
		return scim.Resource{}, fail(r, action, err)
	}
	ri := reqInfo(r)
	ri.action, ri.scimID = action, id
	now := h.s.now().UTC().Round(0)
	rec := resource{V: recordVersion, ID: id, Attrs: attrs, Created: now, Modified: now}
	if _, err := h.s.store.Txn(r.Context(), cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent(groupKey(id))},
		Ops:      []cluster.Op{cluster.Put(groupKey(id), encode(&rec))},
	}); err != nil {
		return scim.Resource{}, fail(r, action, err)
	}
	if err := h.s.syncMembers(r, members(attrs)); err != nil {
		return scim.Resource{}, fail(r, action, err)
	}
	return h.toResource(rec), nil
}

func (h groupHandler) Get(r *http.Request, id string) (scim.Resource, error) {
	if !validID(id) {
		return scim.Resource{}, notFound(id)
	}
	rec, _, ok, err := h.s.get(r.Context(), groupKey(id))
	if err != nil {
		return scim.Resource{}, fail(r, "scim.group.get", err)
	}
	if !ok {
		return scim.Resource{}, notFound(id)
	}
	return h.toResource(rec), nil
}

func (h groupHandler) GetAll(r *http.Request, p scim.ListRequestParams) (scim.Page, error) {
	recs, err := h.s.list(r.Context(), prefixGroups)
	if err != nil {
		return scim.Page{}, fail(r, "scim.group.list", err)
	}
	// Entra ID asks with excludedAttributes=members; lists never need
	// members, which can be large.
	if r.URL.Query().Get("excludedAttributes") == "members" {
		for i := range recs {
			delete(recs[i].Attrs, keyOf(recs[i].Attrs, "members"))
		}
	}
	return page(recs, p, groupFilters, h.toResource), nil
}

func (h groupHandler) Replace(r *http.Request, id string, in scim.ResourceAttributes) (scim.Resource, error) {
	const action = "scim.group.replace"
	attrs, err := clean(in)
	if err != nil {
		return scim.Resource{}, fail(r, action, err)
	}
	return h.update(r, action, id, func(map[string]any) (map[string]any, error) { return attrs, nil })
}

// Patch answers 204 No Content, as Okta and Entra ID document for group
// updates (RFC 7644 section 3.5.2 allows it): a group's full member list
// can be large, and neither reads it back.
func (h groupHandler) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	_, err := h.update(r, "scim.group.patch", id, func(cur map[string]any) (map[string]any, error) {
		next, err := applyPatch(cur, ops)
		if err != nil {
			return nil, err
		}
		return clean(next)
	})
	return scim.Resource{}, err
}

func (h groupHandler) update(r *http.Request, action, id string, change func(map[string]any) (map[string]any, error)) (scim.Resource, error) {
	ri := reqInfo(r)
	ri.action, ri.scimID = action, id
	if !validID(id) {
		return scim.Resource{}, fail(r, action, notFound(id))
	}
	for range maxCASAttempts {
		rec, ver, ok, err := h.s.get(r.Context(), groupKey(id))
		if err != nil {
			return scim.Resource{}, fail(r, action, err)
		}
		if !ok {
			return scim.Resource{}, fail(r, action, notFound(id))
		}
		attrs, err := change(rec.Attrs)
		if err != nil {
			return scim.Resource{}, fail(r, action, err)
		}
		if err := checkGroup(attrs); err != nil {
			return scim.Resource{}, fail(r, action, err)
		}
		next := rec
		next.Attrs, next.Modified = attrs, h.s.now().UTC().Round(0)
		res, err := h.s.store.Txn(r.Context(), cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(groupKey(id), ver)},
			Ops:      []cluster.Op{cluster.Put(groupKey(id), encode(&next))},
		})
		if err != nil {
			return scim.Resource{}, fail(r, action, err)
		}
		if !res.Succeeded {
			continue
		}
		// Members added or removed are recomputed; a rename changes every
		// member's group names, so then all are.
		touched := changed(members(rec.Attrs), members(attrs))
		if str(rec.Attrs, h.s.groupName) != str(attrs, h.s.groupName) || str(rec.Attrs, "displayName") != str(attrs, "displayName") {
			touched = union(members(rec.Attrs), members(attrs))
		}
		if err := h.s.syncMembers(r, touched); err != nil {
			return scim.Resource{}, fail(r, action, err)
		}
		return h.toResource(next), nil
	}
	return scim.Resource{}, fail(r, action, errors.New("too many concurrent updates"))
}

func (h groupHandler) Delete(r *http.Request, id string) error {
	const action = "scim.group.delete"
	ri := reqInfo(r)
	ri.action, ri.scimID = action, id
	if !validID(id) {
		return fail(r, action, notFound(id))
	}
	rec, ver, ok, err := h.s.get(r.Context(), groupKey(id))
	if err != nil {
		return fail(r, action, err)
	}
	if !ok {
		return fail(r, action, notFound(id))
	}
	res, err := h.s.store.Txn(r.Context(), cluster.Txn{
		Compares: []cluster.Compare{cluster.IfVersion(groupKey(id), ver)},
		Ops:      []cluster.Op{cluster.Delete(groupKey(id))},
	})
	if err != nil {
		return fail(r, action, err)
	}
	if !res.Succeeded {
		return fail(r, action, scimerrors.ScimError{Status: http.StatusConflict, Detail: "The group changed meanwhile; retry."})
	}
	return h.s.syncMembers(r, members(rec.Attrs))
}

// changed returns the IDs in exactly one of a and b.
func changed(a, b []string) []string {
	in := func(l []string) map[string]bool {
		m := make(map[string]bool, len(l))
		for _, x := range l {
			m[x] = true
		}
		return m
	}
	ia, ib := in(a), in(b)
	var out []string
	for _, x := range a {
		if !ib[x] {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if !ia[x] {
			out = append(out, x)
		}
	}
	return out
}

func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	sort.Strings(out)
	return slices.Compact(out)
}

// syncMembers recomputes the ferry groups of each listed SCIM user.
// Unknown users (a member ID an identity provider sent for a user deleted
// meanwhile) are skipped.
func (s *Service) syncMembers(r *http.Request, ids []string) error {
	for _, id := range ids {
		if !validID(id) {
			continue
		}
		rec, _, ok, err := s.get(r.Context(), userKey(id))
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := s.syncUser(r, rec); err != nil {
			return err
		}
	}
	return nil
}

// groupsOf returns the names of the groups listing SCIM user id, sorted;
// managed is false when the provider pushes no groups at all (Okta
// without Push Groups, Entra ID scoped to users), and then group
// membership stays what sign-ins say.
func (s *Service) groupsOf(ctx context.Context, id string) (names []string, managed bool, err error) {
	groups, err := s.list(ctx, prefixGroups)
	if err != nil || len(groups) == 0 {
		return nil, false, err
	}
	out := []string{}
	for _, g := range groups {
		if !slices.Contains(members(g.Attrs), id) {
			continue
		}
		name := str(g.Attrs, s.groupName)
		if name == "" {
			name = str(g.Attrs, "displayName")
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return slices.Compact(out), true, nil
}

// dropMember removes a deleted user from every group listing it.
func (s *Service) dropMember(ctx context.Context, id string) error {
	for range maxCASAttempts {
		kvs, _, err := s.store.List(ctx, prefixGroups, cluster.Linearizable)
		if err != nil {
			return err
		}
		var txn cluster.Txn
		for _, kv := range kvs {
			rec, _, _, err := s.get(ctx, kv.Key)
			if err != nil {
				return err
			}
			if !slices.Contains(members(rec.Attrs), id) {
				continue
			}
			list, _ := lookup(rec.Attrs, "members").([]any)
			kept := list[:0:0]
			for _, m := range list {
				if mm, ok := m.(map[string]any); ok && str(mm, "value") == id {
					continue
				}
				kept = append(kept, m)
			}
			rec.Attrs[keyOf(rec.Attrs, "members")] = kept
			txn.Compares = append(txn.Compares, cluster.IfVersion(kv.Key, kv.Version))
			txn.Ops = append(txn.Ops, cluster.Put(kv.Key, encode(&rec)))
		}
		if len(txn.Ops) == 0 {
			return nil
		}
		res, err := s.store.Txn(ctx, txn)
		if err != nil {
			return err
		}
		if res.Succeeded {
			return nil
		}
	}
	return errors.New("too many concurrent updates")
}
