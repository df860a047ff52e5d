package postlogintest

import (
	"html/template"
	"net/http"
)

// Steps of the login page.
const (
	stepPassword = "password" // database: email and password
	stepEmail    = "email"    // passwordless: the email to send a code to
	stepCode     = "code"     // passwordless: the code sent
)

// loginView is what the login page shows.
type loginView struct {
	ID     string // the page's id, posted back as "login"
	Step   string
	Client string // the application's name
	Email  string // pre-filled, or where the code went
	Error  string
}

var pages = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Log in</title></head>
<body>
<main>
<h1>Log in</h1>
<p>to continue to <span id="client">{{.Client}}</span></p>
{{if .Error}}<p id="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/u/login">
<input type="hidden" name="login" value="{{.ID}}">
{{- if eq .Step "password"}}
<p><label for="email">Email address</label> <input id="email" name="email" type="email" value="{{.Email}}" autocomplete="username" required></p>
<p><label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button id="submit" type="submit" name="action" value="login">Continue</button>
{{- else if eq .Step "email"}}
<p><label for="email">Email address</label> <input id="email" name="email" type="email" value="{{.Email}}" autocomplete="email" required></p>
<p><button id="submit" type="submit" name="action" value="send">Send a code</button>
{{- else}}
<p>We sent a code to <span id="sent-to">{{.Email}}</span>.</p>
<p><label for="code">Code</label> <input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required></p>
<p><button id="submit" type="submit" name="action" value="verify">Continue</button>
{{- end}}
<button id="cancel" type="submit" name="action" value="cancel" formnovalidate>Cancel</button></p>
</form>
</main>
</body>
</html>
`))

var messagePage = template.Must(template.New("message").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body>
<main>
<h1>{{.Title}}</h1>
<p id="message">{{.Message}}</p>
</main>
</body>
</html>
`))

func renderLogin(w http.ResponseWriter, status int, v loginView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = pages.Execute(w, v)
}

func renderMessage(w http.ResponseWriter, status int, title, message string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = messagePage.Execute(w, struct{ Title, Message string }{title, message})
}

// errorPage shows an error that cannot go back to the client.
func errorPage(w http.ResponseWriter, status int, code, description string) {
	renderMessage(w, status, "Error: "+code, description)
}

// resultPage shows how a login that no client started ended.
func resultPage(w http.ResponseWriter, res LoginResult) {
	if res.Succeeded {
		renderMessage(w, http.StatusOK, "Logged in", "Logged in as "+res.Subject)
		return
	}
	renderMessage(w, http.StatusForbidden, "Login failed", res.Err.Error())
}
