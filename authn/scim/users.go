package scim

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/scim2/filter-parser/v2"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
)

// userHandler serves /Users.
type userHandler struct{ s *Service }

var _ scim.ResourceHandler = userHandler{}

// Attributes never stored: write-only or read-only ones an identity
// provider sends anyway (Okta sends a random password and an empty groups
// list on create).
var dropped = []string{"password", "groups", "id", "meta", "schemas"}

func clean(attrs scim.ResourceAttributes) (map[string]any, error) {
	m, err := normalizeJSON(attrs)
	if err != nil {
		return nil, err
	}
	for _, d := range dropped {
		delete(m, keyOf(m, d))
	}
	return m, nil
}

func fail(r *http.Request, action string, err error) error {
	ri := reqInfo(r)
	ri.action = action
	var se scimerrors.ScimError
	if errors.As(err, &se) {
		ri.detail = strings.TrimSpace(string(se.ScimType) + " " + se.Detail)
		return se
	}
	ri.detail = err.Error()
	return scimerrors.ScimError{Status: http.StatusInternalServerError, Detail: "Internal error; see ferryd's log."}
}

func notFound(id string) error { return scimerrors.ScimErrorResourceNotFound(id) }

func (h userHandler) toResource(rec resource) scim.Resource {
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

// checkUser checks what ferry needs of a user resource.
func (s *Service) checkUser(attrs map[string]any) error {
	if ext := str(attrs, "externalId"); len(authn.UserKey(s.issuer, ext)) > maxUserKey || strings.IndexFunc(ext, unicode.IsControl) >= 0 || !utf8.ValidString(ext) {
		return badPatch(scimerrors.ScimTypeInvalidValue, "externalId: too long or not printable text")
	}
	if str(attrs, "userName") == "" {
		return badPatch(scimerrors.ScimTypeInvalidValue, "userName is required")
	}
	if str(attrs, "externalId") == "" {
		return badPatch(scimerrors.ScimTypeInvalidValue, "externalId is required: it binds the user to their sign-ins (see ferry's IdP documentation)")
	}
	if v := lookup(attrs, "active"); v != nil {
		if _, ok := v.(bool); !ok {
			return badPatch(scimerrors.ScimTypeInvalidValue, "active must be a boolean")
		}
	}
	return nil
}

// maxUserKey is authn's bound on user IDs (the key issuer#externalId).
const maxUserKey = 256

func active(attrs map[string]any) bool {
	b, ok := lookup(attrs, "active").(bool)
	return !ok || b
}

func (h userHandler) Create(r *http.Request, in scim.ResourceAttributes) (scim.Resource, error) {
	const action = "scim.user.create"
	attrs, err := clean(in)
	if err != nil {
		return scim.Resource{}, fail(r, action, err)
	}
	if err := h.s.checkUser(attrs); err != nil {
		return scim.Resource{}, fail(r, action, err)
	}
	id, err := newID()
	if err != nil {
		return scim.Resource{}, fail(r, action, err)
	}
	now := h.s.now().UTC().Round(0)
	ext := str(attrs, "externalId")
	rec := resource{V: recordVersion, ID: id, Attrs: attrs, Created: now, Modified: now, User: authn.UserKey(h.s.issuer, ext)}
	ri := reqInfo(r)
	ri.action, ri.scimID, ri.user = action, id, rec.User
	res, err := h.s.store.Txn(r.Context(), cluster.Txn{
		Compares: []cluster.Compare{
			cluster.IfAbsent(userNameKey(str(attrs, "userName"))),
			cluster.IfAbsent(externalKey(ext)),
		},
		Ops: []cluster.Op{
			cluster.Put(userKey(id), encode(&rec)),
			cluster.Put(userNameKey(str(attrs, "userName")), []byte(id)),
			cluster.Put(externalKey(ext), []byte(id)),
		},
	})
	if err != nil {
		return scim.Resource{}, fail(r, action, err)
	}
	if !res.Succeeded {
		return scim.Resource{}, fail(r, action, scimerrors.ScimError{
			ScimType: scimerrors.ScimTypeUniqueness, Status: http.StatusConflict,
			Detail: "A user with this userName or externalId exists.",
		})
	}
	if err := h.s.syncUser(r, rec); err != nil {
		// Undo the resource, so the provider's retry starts afresh rather
		// than meeting a user that never reached ferry's record.
		if _, derr := h.s.store.Txn(r.Context(), cluster.Txn{Ops: []cluster.Op{
			cluster.Delete(userKey(id)), cluster.Delete(userNameKey(str(attrs, "userName"))), cluster.Delete(externalKey(ext)),
		}}); derr != nil {
			h.s.log.Error("removing a SCIM user that failed to reach its ferry record", "scim_id", id, "err", derr)
		}
		return scim.Resource{}, fail(r, action, err)
	}
	return h.toResource(rec), nil
}

func (h userHandler) Get(r *http.Request, id string) (scim.Resource, error) {
	if !validID(id) {
		return scim.Resource{}, notFound(id)
	}
	rec, _, ok, err := h.s.get(r.Context(), userKey(id))
	if err != nil {
		return scim.Resource{}, fail(r, "scim.user.get", err)
	}
	if !ok {
		return scim.Resource{}, notFound(id)
	}
	return h.toResource(rec), nil
}

// GetAll lists users. The filter identity providers send before creating
// a user, userName eq "...", is answered from the userName index; other
// filters are evaluated over every user.
func (h userHandler) GetAll(r *http.Request, p scim.ListRequestParams) (scim.Page, error) {
	var recs []resource
	if name, ok := userNameEquality(p); ok {
		kv, found, err := h.s.store.Get(r.Context(), userNameKey(name), cluster.Linearizable)
		if err != nil {
			return scim.Page{}, fail(r, "scim.user.list", err)
		}
		if found {
			rec, _, ok, err := h.s.get(r.Context(), userKey(string(kv.Value)))
			if err != nil {
				return scim.Page{}, fail(r, "scim.user.list", err)
			}
			if ok {
				recs = append(recs, rec)
			}
		}
	} else {
		all, err := h.s.list(r.Context(), prefixUsers)
		if err != nil {
			return scim.Page{}, fail(r, "scim.user.list", err)
		}
		recs = all
	}
	return page(recs, p, userFilters, h.toResource), nil
}

// userNameEquality reports whether the filter is exactly userName eq "x".
func userNameEquality(p scim.ListRequestParams) (string, bool) {
	if p.FilterValidator == nil {
		return "", false
	}
	e, ok := p.FilterValidator.GetFilter().(*filter.AttributeExpression)
	if !ok || e.Operator != filter.EQ || e.AttributePath.URI() != "" || e.AttributePath.SubAttribute != nil ||
		!strings.EqualFold(e.AttributePath.AttributeName, "userName") {
		return "", false
	}
	s, ok := e.CompareValue.(string)
	return s, ok
}

// page filters, then cuts one page (startIndex is 1-based).
func page(recs []resource, p scim.ListRequestParams, fs filterSchema, conv func(resource) scim.Resource) scim.Page {
	out := scim.Page{Resources: []scim.Resource{}}
	for _, rec := range recs {
		res := conv(rec)
		if p.FilterValidator != nil {
			full := map[string]any{}
			for k, v := range res.Attributes {
				full[k] = v
			}
			full["id"] = rec.ID
			if !fs.passes(full, p.FilterValidator.GetFilter()) {
				continue
			}
		}
		out.TotalResults++
		if out.TotalResults >= p.StartIndex && len(out.Resources) < p.Count {
			out.Resources = append(out.Resources, res)
		}
	}
	return out
}

func (h userHandler) Replace(r *http.Request, id string, in scim.ResourceAttributes) (scim.Resource, error) {
	const action = "scim.user.replace"
	attrs, err := clean(in)
	if err != nil {
		return scim.Resource{}, fail(r, action, err)
	}
	return h.update(r, action, id, func(map[string]any) (map[string]any, error) { return attrs, nil })
}

func (h userHandler) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	return h.update(r, "scim.user.patch", id, func(cur map[string]any) (map[string]any, error) {
		next, err := applyPatch(cur, ops)
		if err != nil {
			return nil, err
		}
		return clean(next)
	})
}

// update reads user id, computes its new attributes and stores them,
// keeping the userName index right; externalId may not change.
func (h userHandler) update(r *http.Request, action, id string, change func(map[string]any) (map[string]any, error)) (scim.Resource, error) {
	ri := reqInfo(r)
	ri.action, ri.scimID = action, id
	if !validID(id) {
		return scim.Resource{}, fail(r, action, notFound(id))
	}
	for range maxCASAttempts {
		rec, ver, ok, err := h.s.get(r.Context(), userKey(id))
		if err != nil {
			return scim.Resource{}, fail(r, action, err)
		}
		if !ok {
			return scim.Resource{}, fail(r, action, notFound(id))
		}
		ri.user = rec.User
		attrs, err := change(rec.Attrs)
		if err != nil {
			return scim.Resource{}, fail(r, action, err)
		}
		if err := h.s.checkUser(attrs); err != nil {
			return scim.Resource{}, fail(r, action, err)
		}
		if str(attrs, "externalId") != str(rec.Attrs, "externalId") {
			return scim.Resource{}, fail(r, action, scimerrors.ScimError{
				ScimType: scimerrors.ScimTypeMutability, Status: http.StatusBadRequest,
				Detail: "externalId cannot change: it binds the user to their sign-ins; delete the user and create it again",
			})
		}
		oldName, newName := str(rec.Attrs, "userName"), str(attrs, "userName")
		next := rec
		next.Attrs, next.Modified = attrs, h.s.now().UTC().Round(0)
		txn := cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(userKey(id), ver)},
			Ops:      []cluster.Op{cluster.Put(userKey(id), encode(&next))},
		}
		if !strings.EqualFold(oldName, newName) {
			txn.Compares = append(txn.Compares, cluster.IfAbsent(userNameKey(newName)))
			txn.Ops = append(txn.Ops, cluster.Delete(userNameKey(oldName)), cluster.Put(userNameKey(newName), []byte(id)))
		}
		res, err := h.s.store.Txn(r.Context(), txn)
		if err != nil {
			return scim.Resource{}, fail(r, action, err)
		}
		if !res.Succeeded {
			if !strings.EqualFold(oldName, newName) {
				if _, taken, _ := h.s.store.Get(r.Context(), userNameKey(newName), cluster.Linearizable); taken {
					return scim.Resource{}, fail(r, action, scimerrors.ScimError{
						ScimType: scimerrors.ScimTypeUniqueness, Status: http.StatusConflict,
						Detail: "A user with this userName exists.",
					})
				}
			}
			continue
		}
		if err := h.s.syncUser(r, next); err != nil {
			return scim.Resource{}, fail(r, action, err)
		}
		return h.toResource(next), nil
	}
	return scim.Resource{}, fail(r, action, errors.New("too many concurrent updates"))
}

// Delete removes the SCIM user and disables the ferry user: their sessions
// end and their peers are revoked. The ferry user record stays, disabled,
// for the audit trail; creating the user again with the same externalId
// enables it.
func (h userHandler) Delete(r *http.Request, id string) error {
	const action = "scim.user.delete"
	ri := reqInfo(r)
	ri.action, ri.scimID = action, id
	if !validID(id) {
		return fail(r, action, notFound(id))
	}
	rec, ver, ok, err := h.s.get(r.Context(), userKey(id))
	if err != nil {
		return fail(r, action, err)
	}
	if !ok {
		return fail(r, action, notFound(id))
	}
	ri.user = rec.User
	// Disable first: a failure after it leaves the user disabled, never a
	// deleted resource whose person still has access.
	if err := h.s.disable(r, rec); err != nil {
		return fail(r, action, err)
	}
	res, err := h.s.store.Txn(r.Context(), cluster.Txn{
		Compares: []cluster.Compare{cluster.IfVersion(userKey(id), ver)},
		Ops: []cluster.Op{
			cluster.Delete(userKey(id)),
			cluster.Delete(userNameKey(str(rec.Attrs, "userName"))),
			cluster.Delete(externalKey(str(rec.Attrs, "externalId"))),
		},
	})
	if err != nil {
		return fail(r, action, err)
	}
	if !res.Succeeded {
		return fail(r, action, scimerrors.ScimError{Status: http.StatusConflict, Detail: "The user changed meanwhile; retry."})
	}
	if err := h.s.dropMember(r.Context(), id); err != nil {
		return fail(r, action, err)
	}
	return nil
}

// syncUser pushes a SCIM user's state to its ferry user record: its
// attributes and groups through Users.Provision (which notes a change of
// groups for the entitlement watcher), its active state through
// Users.SetDisabled, the one path that disables (ending sessions; the
// watcher revokes peers).
func (s *Service) syncUser(r *http.Request, rec resource) error {
	ctx := r.Context()
	groups, managed, err := s.groupsOf(ctx, rec.ID)
	if err != nil {
		return err
	}
	id := authn.Identity{
		UserID: rec.User, Issuer: s.issuer, Subject: str(rec.Attrs, "externalId"),
		Email: primaryEmail(rec.Attrs), Name: displayName(rec.Attrs), Groups: groups,
	}
	// SCIM says nothing of verification: a verified email stays verified
	// while it is unchanged. Without pushed groups, sign-ins' stand.
	cur, ok, err := s.users.Get(ctx, rec.User)
	if err != nil {
		return err
	}
	if ok && strings.EqualFold(cur.Email, id.Email) {
		id.EmailVerified = cur.EmailVerified
	}
	if !managed {
		id.Groups = cur.Groups
	}
	u, err := s.users.Provision(ctx, id, "SCIM")
	if errors.Is(err, authn.ErrInvalidInput) {
		return badPatch(scimerrors.ScimTypeInvalidValue, strings.TrimPrefix(err.Error(), "resolving user: "))
	}
	if err != nil {
		return err
	}
	src := authn.Source{Addr: sourceOf(r).Addr}
	switch want := active(rec.Attrs); {
	case !want && !u.Disabled:
		return s.setDisabled(ctx, u.ID, true, src)
	case want && u.Disabled && disabledBySCIM(u):
		return s.setDisabled(ctx, u.ID, false, src)
	}
	// An administrator's disable (or anyone's but SCIM's) sticks: the
	// provider saying active again does not undo it.
	return nil
}

// disabledBySCIM reports whether the user's last change was SCIM's (its
// disable), which SCIM may therefore undo.
func disabledBySCIM(u authn.User) bool {
	return u.Change != nil && u.Change.By == Actor.UserID
}

func (s *Service) setDisabled(ctx context.Context, userID string, disabled bool, src authn.Source) error {
	if s.disabler != nil {
		_, err := s.disabler.SetUserDisabled(ctx, userID, disabled, Actor, src)
		return err
	}
	return s.users.SetDisabled(ctx, userID, disabled, Actor, src)
}

// disable disables the ferry user of a SCIM user (deleted at the
// provider). A user stored before keys named the issuer keeps its bare
// subject as ID.
func (s *Service) disable(r *http.Request, rec resource) error {
	src := authn.Source{Addr: sourceOf(r).Addr}
	err := s.setDisabled(r.Context(), rec.User, true, src)
	if errors.Is(err, authn.ErrUnknownUser) {
		err = s.setDisabled(r.Context(), str(rec.Attrs, "externalId"), true, src)
	}
	if errors.Is(err, authn.ErrUnknownUser) {
		return nil
	}
	return err
}

func primaryEmail(attrs map[string]any) string {
	list, _ := lookup(attrs, "emails").([]any)
	first := ""
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		if p, _ := lookup(m, "primary").(bool); p {
			return str(m, "value")
		}
		if first == "" {
			first = str(m, "value")
		}
	}
	return first
}

func displayName(attrs map[string]any) string {
	if d := str(attrs, "displayName"); d != "" {
		return d
	}
	if n, ok := lookup(attrs, "name").(map[string]any); ok {
		if f := str(n, "formatted"); f != "" {
			return f
		}
		return strings.TrimSpace(str(n, "givenName") + " " + str(n, "familyName"))
	}
	return ""
}
