package scim

import (
	"bytes"
	"encoding/json"
	"strings"
)

// NormalizePatch rewrites the one PATCH shape Microsoft Entra ID sends that
// RFC 7644 does not allow: boolean values as the strings "True" and
// "False" (Entra ID's provisioning before its 2020 SCIM compliance fixes,
// still sent by applications created without the aadOptscim062020 flag),
// for "active" given by path or inside a path-less value object. Any other
// body, valid or not, is returned unchanged for the protocol layer to
// judge.
func NormalizePatch(body []byte) []byte {
	var req map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&req); err != nil {
		return body
	}
	rawOps, ok := req["Operations"]
	if !ok {
		return body
	}
	var ops []map[string]any
	d = json.NewDecoder(bytes.NewReader(rawOps))
	d.UseNumber()
	if err := d.Decode(&ops); err != nil {
		return body
	}
	changed := false
	for _, op := range ops {
		path, _ := op["path"].(string)
		switch v := op["value"].(type) {
		case string:
			if strings.EqualFold(path, "active") {
				if b, ok := boolString(v); ok {
					op["value"], changed = b, true
				}
			}
		case map[string]any:
			for k, x := range v {
				s, isStr := x.(string)
				if !isStr || !strings.EqualFold(k, "active") {
					continue
				}
				if b, ok := boolString(s); ok {
					v[k], changed = b, true
				}
			}
		}
	}
	if !changed {
		return body
	}
	out, err := json.Marshal(ops)
	if err != nil {
		return body
	}
	req["Operations"] = out
	b, err := json.Marshal(req)
	if err != nil {
		return body
	}
	return b
}

func boolString(s string) (bool, bool) {
	switch {
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}
