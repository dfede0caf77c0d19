package authn

import (
	"net/url"
	"strings"
)

// A browser sign-in may carry a return address: where the person was
// going when they were sent to sign in (a portal or console page). It
// travels in the sign-in's stored state, never in anything the IdP
// echoes, and the browser is sent there once signed in. Only a path on
// this server is accepted: an absolute URL, a scheme, or anything a
// browser may read as another host ("//evil", "/\evil", "/<TAB>/evil",
// since browsers drop tabs and newlines and read a backslash as a slash)
// would make the sign-in an open redirect.

// maxReturn bounds a return address.
const maxReturn = 512

// checkReturn reports whether s is an acceptable return address and
// returns it: an absolute path on this server ("/portal",
// "/admin/people?user=x"), not a page of the sign-in itself.
func checkReturn(s string) (string, bool) {
	if s == "" || len(s) > maxReturn || s[0] != '/' {
		return "", false
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "", false
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "", false
	}
	// The decoded path too: a percent-encoded control character or
	// backslash has no business in a page address of ours.
	if strings.ContainsFunc(u.Path, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "", false
	}
	for _, p := range FlowPaths() {
		if u.Path == p || strings.HasPrefix(u.Path, p+"/") {
			return "", false
		}
	}
	return s, true
}

// LoginURL returns the sign-in address that comes back to returnTo (a
// path with its query, such as r.URL.RequestURI()) once signed in; a
// return address checkReturn refuses is left out, and the browser then
// ends at the Flow's Home.
func LoginURL(returnTo string) string {
	ret, ok := checkReturn(returnTo)
	if !ok {
		return PathLogin
	}
	return PathLogin + "?" + url.Values{paramReturn: {ret}}.Encode()
}
