// Package console is ferryd's administration console in the browser, at
// /admin on the API's TLS listener: the cluster and its audit sinks at a
// glance, the people and why they hold each profile, live sessions and
// peers, profile edits previewed against recorded traffic, traffic
// charts, access reports and audit search.
//
// Every page is rendered on the server with html/template in the shared
// layout and stylesheet (authn/webpage); the stylesheet and the small
// shared script are served as files under /admin/static, so the
// Content-Security-Policy allows no inline script or style at all. The
// console signs nobody in: it uses the browser session (the __Host-
// cookie) that the sign-in flow sets, checks the administrator role on
// every request, and binds every form to the session with a token and an
// Origin check. An action that changes access asks for a fresh TOTP code
// when the last one is older than Config.StepUpWindow (step-up), and
// calls the same domain method as its ferryctl twin, so it is the same
// audit event.
//
// It decides nothing itself: who may hold what, what a change would do
// and what the audit log says are the domain packages' answers; the
// console only shows them and passes the administrator's choices on. It
// does not serve the /v1 API, which stays bearer-token only.
package console
