// Package webpagetest checks ferry's HTML pages in headless Chromium, the
// way a person on a desktop or a phone sees them: the sizes to test at,
// and a Check that a page has a viewport, does not scroll sideways, shows
// no text under 16 px, and passes axe-core's automated accessibility rules
// (labels, roles, contrast of at least 4.5:1, focus order). Screenshots go
// to the test's artefact directory (go test -artifacts).
//
// It is for tests only. Tests that use it skip when Chromium is missing.
package webpagetest
