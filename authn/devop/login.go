package devop

import (
	"context"
	"html/template"
	"log/slog"
	"net/http"
)

const (
	loginPath      = "/ui/login"
	paramRequestID = "authRequestID"
	// maxFormBytes bounds the login form body.
	maxFormBytes = 8 << 10
)

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in — ferry development IdP</title>
</head>
<body>
<main>
<h1>Development identity provider</h1>
<p>This is ferry's built-in OpenID Provider for development. Try <code>demo</code> / <code>demo</code>.</p>
{{if .Error}}<p role="alert" id="error">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="{{.Param}}" value="{{.ID}}">
<p><label for="username">Username</label><br>
<input id="username" name="username" autocomplete="username" required autofocus></p>
<p><label for="password">Password</label><br>
<input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit" id="submit">Sign in</button></p>
</form>
</main>
</body>
</html>
`))

// loginUI is the username/password form the OP sends browsers to.
type loginUI struct {
	storage  *storage
	callback func(ctx context.Context, requestID string) string
	log      *slog.Logger
}

type loginData struct {
	Action, Param, ID, Error string
}

func (l *loginUI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// No form-action: browsers apply it to the redirects after the POST,
	// and those lead to the client's redirect URI on another origin.
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodGet:
		id := r.URL.Query().Get(paramRequestID)
		if !l.storage.requestKnown(id) {
			http.Error(w, "This sign-in request is unknown or has expired. Start again from the application.", http.StatusBadRequest)
			return
		}
		l.render(w, http.StatusOK, id, "")
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "Malformed form.", http.StatusBadRequest)
			return
		}
		id := r.PostForm.Get(paramRequestID)
		user := r.PostForm.Get("username")
		switch err := l.storage.checkLogin(id, user, r.PostForm.Get("password")); err {
		case nil:
			l.log.Info("devop login", "user", user)
			http.Redirect(w, r, l.callback(r.Context(), id), http.StatusFound)
		case errBadLogin:
			l.log.Info("devop login failed", "user", user)
			l.render(w, http.StatusUnauthorized, id, "Wrong username or password.")
		default:
			http.Error(w, "This sign-in request is unknown or has expired. Start again from the application.", http.StatusBadRequest)
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "Method not allowed.", http.StatusMethodNotAllowed)
	}
}

func (l *loginUI) render(w http.ResponseWriter, status int, id, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := loginPage.Execute(w, loginData{Action: loginPath, Param: paramRequestID, ID: id, Error: msg}); err != nil {
		l.log.Warn("devop rendering login page", "err", err)
	}
}
