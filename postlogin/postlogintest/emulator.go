package postlogintest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// Lifetimes of what the Authentication API issues.
const (
	// CodeLifetime is how long an authorization code can be exchanged.
	CodeLifetime = time.Minute
	// IDTokenLifetime is the lifetime of ID tokens, Auth0's default
	// (36,000 s).
	IDTokenLifetime = 10 * time.Hour
	// AccessTokenLifetime is the expires_in of access tokens.
	AccessTokenLifetime = 24 * time.Hour
)

// SessionCookie is the name of the cookie of the tenant's login session,
// which lets a later /authorize log in silently (single sign-on).
const SessionCookie = "auth0"

// ActionFunc runs one execution of the tenant's post-login Action and
// returns what it did; NodeAction.Run is one. An error fails the request
// that started the execution (500): it is for the harness's own failures,
// not the Action's (those are ActionRun.Error).
type ActionFunc func(ctx context.Context, in ActionInput) (ActionRun, error)

// Client is an application registered with the tenant's Authentication
// API.
type Client struct {
	// ID is the client_id.
	ID string
	// Secret is the client_secret that /oauth/token requires, sent with
	// client_secret_post or client_secret_basic. Empty makes a public
	// client, which proves itself with PKCE alone.
	Secret string
	// Name is the application's name (event.client.name).
	Name string
	// RedirectURIs are the allowed callback URLs; /authorize accepts
	// exactly these.
	RedirectURIs []string
}

// MFA is what happens at the second factor of a scripted login.
type MFA int

const (
	// MFANone: no second factor is asked.
	MFANone MFA = iota
	// MFAPassed: the person passes the second factor; the ID token's amr
	// claim is ["mfa"].
	MFAPassed
	// MFAFailed: the tenant requires a second factor and the person does
	// not pass it; the login ends with error=access_denied and the
	// error_description "Multifactor authentication required", and the
	// Action does not run.
	MFAFailed
)

// Outcome scripts how the person ends one login page (Emulator.Script).
type Outcome struct {
	// Email, when set, is the account the person logs into whatever the
	// form says or the login_hint asked for: the connection's user with
	// that email (for the email connection, a passwordless login of it),
	// without a password or code. A database connection must have a user
	// with that email.
	Email string
	// Cancel: the person cancels at the first submission; the client gets
	// error=access_denied.
	Cancel bool
	// MFA is the second factor, once the person authenticated.
	MFA MFA
}

// Option configures an Emulator.
type Option func(*Emulator)

// WithClock sets the Authentication API's clock: authorization codes,
// sessions, auth_time, and the iat and exp of ID tokens. The default is
// time.Now. (The Action's runtime keeps Node's clock; give the
// Management API emulator a clock of its own with mgmttest.WithClock.)
func WithClock(now func() time.Time) Option {
	return func(e *Emulator) { e.now = now }
}

// Emulator is the pipeline emulator: an Auth0 tenant's Authentication API,
// login pipeline and Management API on one origin, as an http.Handler:
//
//	GET  /.well-known/openid-configuration  OpenID Connect discovery
//	GET  /.well-known/jwks.json             the RS256 public keys, with kid
//	GET  /authorize                         authorization code flow with PKCE (S256, required)
//	POST /u/login                           the login page's form
//	GET  /continue, POST /continue          resumes a login the Action redirected
//	POST /oauth/token                       grant_type=authorization_code; any other grant goes to Mgmt
//	everything else                         Mgmt (the Management API: /api/v2/...)
//
// /authorize takes response_type=code, client_id, redirect_uri (one of the
// client's RedirectURIs; otherwise an error page, no redirect), scope (with
// openid), state, nonce, code_challenge with code_challenge_method=S256,
// connection (a connection of the tenant with strategy "auth0", a database
// with passwords set by SetPassword, or "email", passwordless with a code
// read by LastCode; default: the first database connection by name),
// login_hint (fills the email field), prompt (login forces the login page,
// none fails with login_required unless the session allows a silent login)
// and max_age (0 forces the login page). Without prompt=login or max_age=0,
// a session cookie from an earlier login to the same connection logs in
// silently, with that login's auth_time, whatever the login_hint: only a
// fresh login proves who is at the keyboard now.
//
// The login page is plain HTML without external assets: a form posted to
// /u/login with the fields email and password (database), or email then
// code (passwordless), a submit button with id "submit" and a Cancel
// button with id "cancel", which ends the login with error=access_denied.
//
// Every login, silent or not, goes through the pipeline: the Emulator
// starts a Transaction of Flow for it (its Client is the client that called
// /authorize), runs the Action set with SetAction (none: the login goes
// on), and Finishes it. A login the Action redirects sends the browser to
// LoginResult.Redirect, and resumes at /continue, where the Action's
// onContinuePostLogin runs. When the login ends, the browser goes back to
// the redirect_uri with a code and the state, or with error=access_denied
// (interaction_required when the Action redirected a login that cannot
// redirect) and an error_description. A /continue for a Transaction a test
// started with Flow directly, not at /authorize, ends with a page that
// says how the login ended (200 or 403); Transaction.Result has it too.
//
// /oauth/token authenticates the client (client_secret_post or
// client_secret_basic; a public client sends its client_id), checks the
// code (single use, CodeLifetime, issued to that client and redirect_uri)
// and the code_verifier against the code_challenge, and answers an
// id_token (RS256, signed by the current key: iss, sub = the login's final
// subject, which is the primary's id for a linked identity, aud and azp =
// client_id, iat, exp, auth_time = when the person authenticated, nonce,
// email and email_verified of the final subject, amr ["mfa"] after MFA)
// and an opaque access_token.
//
// An Emulator is safe for concurrent use.
type Emulator struct {
	// Flow is the login pipeline over the Management API's tenant: every
	// login at /authorize is one of its transactions. Tests can start
	// logins with it directly and resume them at /continue.
	Flow *LoginFlow
	// Mgmt is the Management API.
	Mgmt *mgmttest.Emulator

	base   string // e.g. "https://127.0.0.1:41234"
	now    func() time.Time
	mux    *http.ServeMux
	secure bool // the session cookie is Secure

	mu        sync.Mutex
	action    ActionFunc
	clients   map[string]Client
	passwords map[string]string // by identity, "auth0|63d1"
	codes     map[string]string // one-time codes, by email
	scripts   []Outcome
	pages     map[string]*loginPage // login pages in progress, by id
	logins    map[string]*authLogin // /authorize logins in the pipeline, by transaction id
	grants    map[string]*grant     // authorization codes
	sessions  map[string]session    // by cookie value
	keys      []signingKey          // the last one signs
}

// authRequest is a valid /authorize request.
type authRequest struct {
	client                           Client
	redirectURI, state, nonce, scope string
	challenge, loginHint             string
	connection                       linkingtest.Connection
	prompt                           []string
	maxAge                           int // seconds; -1 when absent
	explicitConnection               bool
}

// loginPage is a login page in progress.
type loginPage struct {
	req     *authRequest
	outcome Outcome
	email   string // passwordless: where the code was sent
}

// authLogin is an /authorize login in the pipeline: its request and how
// the person authenticated.
type authLogin struct {
	req      *authRequest
	authTime time.Time
	amr      []string
}

// grant is what an authorization code stands for.
type grant struct {
	req      *authRequest
	subject  string
	authTime time.Time
	amr      []string
	expires  time.Time
}

// session is the tenant's login session of a browser.
type session struct {
	identity   linking.Identity
	connection string
	authTime   time.Time
	amr        []string
}

// NewEmulator returns an Emulator serving the tenant of mg at baseURL, the
// tenant's origin, e.g. "https://127.0.0.1:41234": the issuer is baseURL
// followed by "/", and Flow.Domain its host. It has one signing key, no
// client and no Action.
func NewEmulator(mg *mgmttest.Emulator, baseURL string, opts ...Option) (*Emulator, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("postlogintest: the base URL %q is not an origin, like https://127.0.0.1:41234", baseURL)
	}
	key, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	e := &Emulator{
		Flow:      &LoginFlow{Tenant: mg.Tenant, Domain: u.Host},
		Mgmt:      mg,
		base:      u.Scheme + "://" + u.Host,
		secure:    u.Scheme == "https",
		now:       time.Now,
		clients:   make(map[string]Client),
		passwords: make(map[string]string),
		codes:     make(map[string]string),
		pages:     make(map[string]*loginPage),
		logins:    make(map[string]*authLogin),
		grants:    make(map[string]*grant),
		sessions:  make(map[string]session),
		keys:      []signingKey{key},
	}
	for _, opt := range opts {
		opt(e)
	}
	e.mux = http.NewServeMux()
	e.mux.HandleFunc("GET /.well-known/openid-configuration", e.discovery)
	e.mux.HandleFunc("GET /.well-known/jwks.json", e.jwksHandler)
	e.mux.HandleFunc("GET /authorize", e.authorize)
	e.mux.HandleFunc("POST /u/login", e.submitLogin)
	e.mux.HandleFunc("GET /continue", e.continueLogin)
	e.mux.HandleFunc("POST /continue", e.continueLogin)
	e.mux.HandleFunc("POST /oauth/token", e.token)
	e.mux.Handle("/", mg)
	return e, nil
}

// ServeHTTP answers a request to the tenant.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mux.ServeHTTP(w, r)
}

// Issuer returns the issuer of the tenant's ID tokens, its origin followed
// by "/", as Auth0's is.
func (e *Emulator) Issuer() string { return e.base + "/" }

// Domain returns the tenant's domain: the host and port of its origin.
func (e *Emulator) Domain() string { return e.Flow.Domain }

// SetAction sets the post-login Action that runs for every login; nil
// removes it.
func (e *Emulator) SetAction(f ActionFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.action = f
}

// AddClient registers c, replacing a client with the same ID.
func (e *Emulator) AddClient(c Client) {
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clients[c.ID] = c
}

// SetPassword sets the password of the database identity userID, e.g.
// "auth0|63d1": the password its login page accepts, also after it was
// linked into another user.
func (e *Emulator) SetPassword(userID, password string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.passwords[userID] = password
}

// LastCode returns the last one-time code sent to email by a passwordless
// login page, and whether one was sent and not yet used.
func (e *Emulator) LastCode(email string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	code, ok := e.codes[strings.ToLower(strings.TrimSpace(email))]
	return code, ok
}

// Script queues outcomes: each login page shown from now on takes the
// next one, and ends as it says. Pages shown with an empty queue are
// filled in by the person.
func (e *Emulator) Script(outcomes ...Outcome) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.scripts = append(e.scripts, outcomes...)
}

func (e *Emulator) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                e.Issuer(),
		"authorization_endpoint":                e.base + "/authorize",
		"token_endpoint":                        e.base + "/oauth/token",
		"jwks_uri":                              e.base + "/.well-known/jwks.json",
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code", "client_credentials"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":      []string{"S256"},
		"scopes_supported":                      []string{"openid", "profile", "email"},
		"claims_supported":                      []string{"aud", "auth_time", "amr", "azp", "email", "email_verified", "exp", "iat", "iss", "nonce", "sub"},
	})
}

func (e *Emulator) jwksHandler(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, e.jwks())
}

// authorize answers GET /authorize: an error page for an unknown client or
// redirect_uri, an error back to the redirect_uri for a bad request, a
// silent login, or the login page.
func (e *Emulator) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	e.mu.Lock()
	client, ok := e.clients[q.Get("client_id")]
	e.mu.Unlock()
	if !ok {
		errorPage(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("Unknown client: %q", q.Get("client_id")))
		return
	}
	req := &authRequest{
		client: client, redirectURI: q.Get("redirect_uri"), state: q.Get("state"), nonce: q.Get("nonce"),
		scope: q.Get("scope"), challenge: q.Get("code_challenge"), loginHint: q.Get("login_hint"),
		prompt: strings.Fields(q.Get("prompt")), maxAge: -1,
	}
	if !slices.Contains(client.RedirectURIs, req.redirectURI) {
		errorPage(w, http.StatusBadRequest, "invalid_request",
			fmt.Sprintf("Callback URL mismatch. %q is not in the list of allowed callback URLs of %s", req.redirectURI, client.ID))
		return
	}
	fail := func(code, description string) { redirectError(w, r, req, code, description) }
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", fmt.Sprintf("Unsupported response type: %q", q.Get("response_type")))
		return
	case !slices.Contains(strings.Fields(req.scope), "openid"):
		fail("invalid_scope", "The scope must include openid")
		return
	case req.challenge == "" || q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256")
		return
	}
	if raw := q.Get("max_age"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			fail("invalid_request", fmt.Sprintf("Invalid max_age: %q", raw))
			return
		}
		req.maxAge = n
	}
	conn, err := e.connection(q.Get("connection"))
	if err != nil {
		fail("invalid_request", err.Error())
		return
	}
	req.connection, req.explicitConnection = conn, q.Get("connection") != ""

	if tx, s, ok := e.silentLogin(r, req); ok {
		e.startPipeline(w, r, req, tx, s.authTime, s.amr)
		return
	}
	if slices.Contains(req.prompt, "none") {
		fail("login_required", "Login required")
		return
	}
	page := &loginPage{req: req, email: req.loginHint}
	id := randomHex(16)
	e.mu.Lock()
	if len(e.scripts) > 0 {
		page.outcome, e.scripts = e.scripts[0], e.scripts[1:]
	}
	e.pages[id] = page
	e.mu.Unlock()
	step := stepPassword
	if conn.Strategy == "email" {
		step = stepEmail
	}
	renderLogin(w, http.StatusOK, loginView{ID: id, Step: step, Client: client.Name, Email: req.loginHint})
}

// connection returns the tenant's connection named name, or its first
// database connection when name is empty. Only database ("auth0") and
// passwordless email connections have a login page.
func (e *Emulator) connection(name string) (linkingtest.Connection, error) {
	if name == "" {
		for _, c := range e.Flow.Tenant.Connections() {
			if c.Strategy == "auth0" {
				return c, nil
			}
		}
		return linkingtest.Connection{}, errors.New("postlogintest: the tenant has no database connection")
	}
	c, ok := e.Flow.Tenant.ConnectionByName(name)
	switch {
	case !ok:
		return c, fmt.Errorf("postlogintest: the connection %q was not found", name)
	case c.Strategy != "auth0" && c.Strategy != "email":
		return c, fmt.Errorf("postlogintest: the connection %q (strategy %s) has no login page in the emulator", name, c.Strategy)
	}
	return c, nil
}

// silentLogin starts the login of the browser's session, when it has one
// that req lets log in without the login page: no prompt=login, a max_age
// (other than 0) the session's auth_time meets, and the same connection
// when req names one.
func (e *Emulator) silentLogin(r *http.Request, req *authRequest) (*Transaction, session, bool) {
	if slices.Contains(req.prompt, "login") || req.maxAge == 0 {
		return nil, session{}, false
	}
	cookie, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil, session{}, false
	}
	e.mu.Lock()
	s, ok := e.sessions[cookie.Value]
	e.mu.Unlock()
	switch {
	case !ok,
		req.explicitConnection && s.connection != req.connection.Name,
		req.maxAge > 0 && e.now().Sub(s.authTime) > time.Duration(req.maxAge)*time.Second:
		return nil, session{}, false
	}
	tx, err := e.Flow.SignIn(r.Context(), s.identity)
	if err != nil {
		return nil, session{}, false // the identity is gone
	}
	return tx, s, true
}

// submitLogin answers POST /u/login: the login page's form.
func (e *Emulator) submitLogin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		errorPage(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	id := r.PostForm.Get("login")
	e.mu.Lock()
	page, ok := e.pages[id]
	e.mu.Unlock()
	if !ok {
		errorPage(w, http.StatusBadRequest, "invalid_request", "This login page has expired; start again from the application")
		return
	}
	req := page.req
	ctx := r.Context()
	end := func() {
		e.mu.Lock()
		delete(e.pages, id)
		e.mu.Unlock()
	}
	if page.outcome.Cancel || r.PostForm.Get("action") == "cancel" {
		end()
		redirectError(w, r, req, "access_denied", "The user cancelled the login")
		return
	}
	authTime := e.now()

	var (
		tx  *Transaction
		err error
	)
	email := strings.ToLower(strings.TrimSpace(r.PostForm.Get("email")))
	switch {
	case page.outcome.Email != "" && req.connection.Strategy == "email":
		tx, err = e.Flow.PasswordlessEmail(ctx, page.outcome.Email)
	case page.outcome.Email != "":
		tx, err = e.databaseLogin(ctx, req.connection, page.outcome.Email, "", false)
	case req.connection.Strategy == "auth0":
		tx, err = e.databaseLogin(ctx, req.connection, email, r.PostForm.Get("password"), true)
		if errors.Is(err, errWrongCredentials) {
			renderLogin(w, http.StatusUnauthorized, loginView{ID: id, Step: stepPassword, Client: req.client.Name, Email: email, Error: "Wrong email or password."})
			return
		}
	case r.PostForm.Get("action") == "send":
		if email == "" {
			renderLogin(w, http.StatusBadRequest, loginView{ID: id, Step: stepEmail, Client: req.client.Name, Error: "Enter your email address."})
			return
		}
		e.mu.Lock()
		page.email = email
		e.codes[email] = oneTimeCode()
		e.mu.Unlock()
		renderLogin(w, http.StatusOK, loginView{ID: id, Step: stepCode, Client: req.client.Name, Email: email})
		return
	default:
		e.mu.Lock()
		email = page.email
		want, sent := e.codes[email]
		good := sent && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(r.PostForm.Get("code"))), []byte(want)) == 1
		if good {
			delete(e.codes, email)
		}
		e.mu.Unlock()
		if !good {
			renderLogin(w, http.StatusUnauthorized, loginView{ID: id, Step: stepCode, Client: req.client.Name, Email: email, Error: "Wrong or expired code."})
			return
		}
		tx, err = e.Flow.PasswordlessEmail(ctx, email)
	}
	end()
	if err != nil {
		errorPage(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	var amr []string
	switch page.outcome.MFA {
	case MFAPassed:
		amr = []string{"mfa"}
	case MFAFailed:
		redirectError(w, r, req, "access_denied", "Multifactor authentication required")
		return
	}
	e.startPipeline(w, r, req, tx, authTime, amr)
}

var errWrongCredentials = errors.New("wrong email or password")

// databaseLogin starts the login of the identity of database connection
// conn with email, checking its password when check is set.
func (e *Emulator) databaseLogin(ctx context.Context, conn linkingtest.Connection, email, password string, check bool) (*Transaction, error) {
	_, id, ok := e.Flow.holder(conn, strings.ToLower(strings.TrimSpace(email)))
	if !ok {
		return nil, errWrongCredentials
	}
	if check {
		e.mu.Lock()
		want, set := e.passwords[id.UserIDOf()]
		e.mu.Unlock()
		if !set || subtle.ConstantTimeCompare([]byte(password), []byte(want)) != 1 {
			return nil, errWrongCredentials
		}
	}
	return e.Flow.SignIn(ctx, id)
}

// oneTimeCode returns six random digits.
func oneTimeCode() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000))
	return fmt.Sprintf("%06d", n.Int64())
}

// startPipeline runs the post-login pipeline for the /authorize login tx of
// req, in which the person authenticated at authTime.
func (e *Emulator) startPipeline(w http.ResponseWriter, r *http.Request, req *authRequest, tx *Transaction, authTime time.Time, amr []string) {
	tx.Client = EventClient{ClientID: req.client.ID, Name: req.client.Name}
	tx.Prompt = slices.Clone(req.prompt)
	e.mu.Lock()
	e.logins[tx.ID] = &authLogin{req: req, authTime: authTime, amr: amr}
	e.mu.Unlock()
	e.execute(w, r, tx)
}

// continueLogin answers /continue: it resumes the login its state names
// and runs the Action's onContinuePostLogin.
func (e *Emulator) continueLogin(w http.ResponseWriter, r *http.Request) {
	tx, err := e.Flow.Continue(r)
	if err != nil {
		errorPage(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	e.execute(w, r, tx)
}

// execute runs the Action's next execution for tx, finishes it, and sends
// the browser where the login goes next.
func (e *Emulator) execute(w http.ResponseWriter, r *http.Request, tx *Transaction) {
	e.mu.Lock()
	action := e.action
	e.mu.Unlock()
	in := tx.Input()
	run := ActionRun{}
	switch {
	case action != nil:
		var err error
		if run, err = action(r.Context(), in); err != nil {
			errorPage(w, http.StatusInternalServerError, "server_error", err.Error())
			return
		}
	case in.Function == OnContinuePostLogin:
		errorPage(w, http.StatusInternalServerError, "server_error", "The tenant has no Action to continue the login with")
		return
	}
	res, err := tx.Finish(r.Context(), run)
	if err != nil {
		errorPage(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	if res.Redirect != "" {
		http.Redirect(w, r, res.Redirect, http.StatusFound)
		return
	}
	e.mu.Lock()
	login := e.logins[tx.ID]
	delete(e.logins, tx.ID)
	e.mu.Unlock()
	if login == nil {
		resultPage(w, res)
		return
	}
	if !res.Succeeded {
		code, description := "access_denied", res.Denied
		if description == "" {
			description = res.Err.Error()
		}
		if errors.Is(res.Err, ErrRedirectNotAllowed) {
			code = "interaction_required"
		}
		redirectError(w, r, login.req, code, description)
		return
	}
	e.finishLogin(w, r, tx, res.Subject, login)
}

// finishLogin issues the code of a login that succeeded as subject, opens
// the browser's session, and sends the browser back to the client.
func (e *Emulator) finishLogin(w http.ResponseWriter, r *http.Request, tx *Transaction, subject string, login *authLogin) {
	code, cookie := randomHex(20), randomHex(20)
	now := e.now()
	e.mu.Lock()
	e.grants[code] = &grant{req: login.req, subject: subject, authTime: login.authTime, amr: login.amr, expires: now.Add(CodeLifetime)}
	e.sessions[cookie] = session{identity: tx.Identity, connection: tx.Connection.Name, authTime: login.authTime, amr: login.amr}
	e.mu.Unlock()
	sameSite := http.SameSiteNoneMode
	if !e.secure {
		sameSite = http.SameSiteLaxMode
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: cookie, Path: "/", HttpOnly: true, Secure: e.secure, SameSite: sameSite})
	redirectBack(w, r, login.req, url.Values{"code": {code}})
}

// redirectBack sends the browser to req's redirect_uri with params and
// req's state.
func redirectBack(w http.ResponseWriter, r *http.Request, req *authRequest, params url.Values) {
	u, _ := url.Parse(req.redirectURI) // registered, so valid
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if req.state != "" {
		q.Set("state", req.state)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// redirectError sends the browser to req's redirect_uri with an OAuth
// error.
func redirectError(w http.ResponseWriter, r *http.Request, req *authRequest, code, description string) {
	redirectBack(w, r, req, url.Values{"error": {code}, "error_description": {description}})
}

// token answers POST /oauth/token: the authorization code grant here,
// every other grant by the Management API emulator.
func (e *Emulator) token(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	params, err := tokenParams(r.Header.Get("Content-Type"), body)
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if params.Get("grant_type") != "authorization_code" {
		r.Body = io.NopCloser(bytes.NewReader(body))
		e.Mgmt.ServeHTTP(w, r)
		return
	}
	e.exchange(w, r, params)
}

// tokenParams returns the parameters of a token request body, a form or a
// JSON object.
func tokenParams(contentType string, body []byte) (url.Values, error) {
	if !strings.HasPrefix(contentType, "application/json") {
		return url.ParseQuery(string(body))
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("the body is not a JSON object: %w", err)
	}
	v := url.Values{}
	for k, x := range m {
		if s, ok := x.(string); ok {
			v.Set(k, s)
		}
	}
	return v, nil
}

// exchange answers the authorization code grant.
func (e *Emulator) exchange(w http.ResponseWriter, r *http.Request, params url.Values) {
	client, ok := e.authenticateClient(r, params)
	if !ok {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	code := params.Get("code")
	e.mu.Lock()
	g, ok := e.grants[code]
	delete(e.grants, code) // a code is tried once
	e.mu.Unlock()
	switch {
	case !ok:
		writeOAuthError(w, http.StatusForbidden, "invalid_grant", "Invalid authorization code")
		return
	case !e.now().Before(g.expires):
		writeOAuthError(w, http.StatusForbidden, "invalid_grant", "Invalid authorization code: expired")
		return
	case g.req.client.ID != client.ID:
		writeOAuthError(w, http.StatusForbidden, "invalid_grant", "Invalid authorization code: issued to another client")
		return
	case params.Get("redirect_uri") != g.req.redirectURI:
		writeOAuthError(w, http.StatusForbidden, "invalid_grant", "The redirect_uri does not match the one of the authorization request")
		return
	case !verifierMatches(params.Get("code_verifier"), g.req.challenge):
		writeOAuthError(w, http.StatusForbidden, "invalid_grant", "Failed to verify code verifier")
		return
	}
	user, found := findUser(e.Flow.Tenant.Users(), g.subject)
	if !found {
		writeOAuthError(w, http.StatusForbidden, "invalid_grant", "The user of the authorization code no longer exists")
		return
	}
	now := e.now()
	claims := map[string]any{
		"iss": e.Issuer(), "sub": user.ID, "aud": client.ID, "azp": client.ID,
		"iat": now.Unix(), "exp": now.Add(IDTokenLifetime).Unix(), "auth_time": g.authTime.Unix(),
		"email": user.Email, "email_verified": user.EmailVerified,
	}
	if g.req.nonce != "" {
		claims["nonce"] = g.req.nonce
	}
	if len(g.amr) > 0 {
		claims["amr"] = g.amr
	}
	idToken, err := e.sign(claims)
	if err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": randomHex(24),
		"id_token":     idToken,
		"token_type":   "Bearer",
		"expires_in":   int(AccessTokenLifetime / time.Second),
		"scope":        g.req.scope,
	})
}

// authenticateClient returns the registered client the token request
// authenticates: with HTTP basic authentication or client_id and
// client_secret in the body, or, for a public client, its client_id alone.
func (e *Emulator) authenticateClient(r *http.Request, params url.Values) (Client, bool) {
	id, secret := params.Get("client_id"), params.Get("client_secret")
	if user, pass, ok := r.BasicAuth(); ok {
		// RFC 6749 §2.3.1: both are form-encoded first.
		var err1, err2 error
		id, err1 = url.QueryUnescape(user)
		secret, err2 = url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return Client{}, false
		}
	}
	e.mu.Lock()
	c, ok := e.clients[id]
	e.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1 {
		return Client{}, false
	}
	return c, true
}

// verifierMatches reports whether the PKCE code_verifier matches the S256
// code_challenge (RFC 7636): 43 to 128 characters whose SHA-256, base64url
// encoded without padding, is the challenge.
func verifierMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeOAuthError writes an OAuth 2.0 error answer of the token endpoint.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}
