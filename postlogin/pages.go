package postlogin

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"html/template"
	"net/http"
	"net/url"
)

//go:embed pages.html
var pagesHTML string

// pages are the confirm pages: server-side HTML, no external assets, usable
// without JavaScript.
var pages = template.Must(template.New("pages").Parse(pagesHTML))

// errorPage is the message of an error page: a fixed text, safe to show.
type errorPage string

const (
	pageInvalid     errorPage = "This link is not valid. Please go back to the application and sign in again."
	pageUsed        errorPage = "This link was already used. Please go back to the application and sign in again."
	pageExpired     errorPage = "This step has expired or is already complete. Please go back to the application and sign in again."
	pageUnavailable errorPage = "Sign-in is temporarily unavailable. Please try again in a moment."
)

// notices are the messages of the consent page after a proof failed.
var notices = map[notice]string{
	noticeOtherAccount: "You signed in to another account than the one you chose. Nothing was linked. Choose again, or continue without linking.",
	noticeNotProven:    "We could not confirm that sign-in. Nothing was linked. You can try again, or continue without linking.",
	noticeRefused:      "This account cannot be linked to this sign-in. Nothing was linked.",
}

// socialNames name the social providers an account description mentions.
var socialNames = map[string]string{
	"google-oauth2": "Google", "github": "GitHub", "facebook": "Facebook", "apple": "Apple",
	"windowslive": "Microsoft", "linkedin": "LinkedIn", "twitter": "X",
}

// describe says what kind of account u is, for the consent page: "a
// password account created March 2024".
func describe(u User) string {
	var main Identity
	for _, id := range u.Identities {
		if id.Provider+"|"+id.UserID == u.UserID {
			main = id
			break
		}
	}
	var s string
	switch {
	case main.Provider == "auth0":
		s = "a password account"
	case main.Provider == "email":
		s = "an account that signs in with an email code"
	case main.Provider == "sms":
		s = "an account that signs in with a text message code"
	case socialNames[main.Provider] != "":
		s = "a " + socialNames[main.Provider] + " account"
	case main.Connection != "":
		s = "an account of " + main.Connection
	default:
		s = "an account"
	}
	if !u.CreatedAt.IsZero() {
		s += " created " + u.CreatedAt.UTC().Format("January 2006")
	}
	return s
}

// page is what every page's template needs.
type page struct {
	Title string
	// Nonce allows the page's own style and script, and nothing else.
	Nonce string
}

func (c *confirmer) consentPage(w http.ResponseWriter, f flow) {
	data := struct {
		page
		Action, CSRF, Email, Notice string
		Accounts                    []string
	}{page: page{Title: "Link your accounts"}, Action: ConfirmPath, CSRF: f.CSRF, Email: f.Login.User.Email, Notice: notices[f.Notice]}
	for _, u := range f.Candidates {
		data.Accounts = append(data.Accounts, describe(u))
	}
	c.render(w, http.StatusOK, "consent", &data.page, &data)
}

func (c *confirmer) continuePage(w http.ResponseWriter, state, token string) {
	data := struct {
		page
		Action, State, Token string
	}{page: page{Title: "Continuing sign-in"}, Action: c.continueURL + "?state=" + url.QueryEscape(state), State: state, Token: token}
	c.render(w, http.StatusOK, "continue", &data.page, &data)
}

func (c *confirmer) errorPage(w http.ResponseWriter, status int, msg errorPage) {
	data := struct {
		page
		Message string
	}{page: page{Title: "Sign-in"}, Message: string(msg)}
	c.render(w, status, "error", &data.page, &data)
}

// render writes the template name with data, whose page p gets a fresh
// nonce, under headers that keep the page from being cached, framed, or
// sending a referrer, and that run only its own style and script. The policy
// has no form-action: browsers apply it to every redirect that follows a
// form's submission, and the tenant answers the return form with a redirect
// to the application (and a proof login of a social account with one to its
// provider); the pages' forms have fixed actions.
func (c *confirmer) render(w http.ResponseWriter, status int, name string, p *page, data any) {
	p.Nonce = rand.Text()
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, string(pageUnavailable), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	noStore(w)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+p.Nonce+"'; script-src 'nonce-"+p.Nonce+
		"'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// noStore marks a response as not to be cached, nor to send a referrer.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
}
