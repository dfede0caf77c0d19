// Package webpage is the one look of every HTML page ferry serves: the
// sign-in pages (authn), the portal and the admin console
// (cmd/internal/api). It holds the shared stylesheet, a small script
// that shows times in the viewer's own time zone, the page layout, and
// the hashes a Content-Security-Policy needs to allow exactly these.
//
// A page template defines "content" (and may define "nav"); the layout
// wraps it. The data given to the layout must have the string fields
// Title, Error and Org (the organisation's name; empty shows "ferry").
// The stylesheet and script are inlined (allowed by StyleHash and
// ScriptHash) unless a page set redefines the "style" and "script"
// templates, as the admin console does to load them as files (Stylesheet,
// Script) under a CSP with no inline script at all.
//
// It does not serve anything, set headers or know about sessions: each
// server sets its own headers (the sign-in pages no-referrer, the portal
// same-origin so that form posts carry their Origin). It imports only the
// standard library.
package webpage
