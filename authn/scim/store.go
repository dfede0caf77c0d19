package scim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/cluster"
)

const recordVersion = 1

const (
	prefixUsers    = "scim/users/"
	prefixGroups   = "scim/groups/"
	prefixUserName = "scim/idx/username/"
	prefixExternal = "scim/idx/external/"
)

func userKey(id string) string  { return prefixUsers + id }
func groupKey(id string) string { return prefixGroups + id }
func userNameKey(name string) string {
	return prefixUserName + url.PathEscape(strings.ToLower(name))
}
func externalKey(ext string) string { return prefixExternal + url.PathEscape(ext) }

// maxCASAttempts bounds compare-and-swap retries of one request.
const maxCASAttempts = 8

// resource is a stored SCIM resource: its attributes as validated by the
// protocol layer (without id, meta and schemas, which are derived).
type resource struct {
	V        int            `json:"v"`
	ID       string         `json:"id"`
	Attrs    map[string]any `json:"attrs"`
	Created  time.Time      `json:"created"`
	Modified time.Time      `json:"modified"`
	// User is the ferry user ID a SCIM user is bound to (users only).
	User string `json:"user,omitempty"`
}

func (r *resource) check(key string) error {
	if r.V != recordVersion || r.ID == "" || r.Attrs == nil {
		return fmt.Errorf("%w: %s", ErrCorrupt, key)
	}
	return nil
}

func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// validID reports whether id could be one of ours (so no path tricks reach
// the store).
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func (s *Service) get(ctx context.Context, key string) (resource, uint64, bool, error) {
	kv, ok, err := s.store.Get(ctx, key, cluster.Linearizable)
	if err != nil || !ok {
		return resource{}, 0, false, err
	}
	var r resource
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return resource{}, 0, false, fmt.Errorf("%w: %s", ErrCorrupt, key)
	}
	if err := r.check(key); err != nil {
		return resource{}, 0, false, err
	}
	return r, kv.Version, true, nil
}

func (s *Service) list(ctx context.Context, prefix string) ([]resource, error) {
	kvs, _, err := s.store.List(ctx, prefix, cluster.Linearizable)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", prefix, err)
	}
	out := make([]resource, 0, len(kvs))
	for _, kv := range kvs {
		var r resource
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrCorrupt, kv.Key)
		}
		if err := r.check(kv.Key); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func encode(r *resource) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("scim: encoding a resource: %v", err))
	}
	return b
}

// str returns attrs[name] as a string, matching the name
// case-insensitively as RFC 7643 section 2.1 asks.
func str(attrs map[string]any, name string) string {
	s, _ := lookup(attrs, name).(string)
	return s
}

func lookup(attrs map[string]any, name string) any {
	if v, ok := attrs[name]; ok {
		return v
	}
	for k, v := range attrs {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// deepCopy copies a JSON-shaped value.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = deepCopy(e)
		}
		return l
	}
	return v
}

// normalizeJSON round-trips attrs through JSON, so what is compared and
// filtered is what is stored (json.Number and typed slices become plain
// JSON values).
func normalizeJSON(attrs map[string]any) (map[string]any, error) {
	b, err := json.Marshal(attrs)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}
