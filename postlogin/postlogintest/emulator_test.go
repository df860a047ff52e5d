package postlogintest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
	"github.com/idlink/linking/postlogin/postlogintest"
)

// The tenant's applications: the application Jane signs in to, and the
// linking service, which asks for a proof login.
const (
	appID          = "app"
	appSecret      = "app-secret"
	appCallback    = "https://app.example/callback"
	linkerID       = "linker"
	linkerSecret   = "linker-secret"
	linkerCallback = "https://linking.example/callback"
	janePassword   = "correct horse battery staple"
	dbConnection   = "Username-Password-Authentication"
)

// bobDB is another person's database user.
var bobDB = linking.User{
	ID: "auth0|77aa", Email: "bob@example.com", EmailVerified: true,
	Identities: []linking.Identity{{Provider: "auth0", UserID: "77aa", Connection: dbConnection}},
}

// newTenant starts the pipeline emulator over a tenant holding Jane's and
// Bob's database users, with passwords, and the two applications.
func newTenant(t *testing.T, opts ...postlogintest.Option) *postlogintest.Server {
	t.Helper()
	s := postlogintest.NewServer(mgmttest.NewEmulator(linkingtest.NewTenant(dbUser, bobDB)), opts...)
	t.Cleanup(s.Close)
	s.AddClient(postlogintest.Client{ID: appID, Secret: appSecret, Name: "My App", RedirectURIs: []string{appCallback}})
	s.AddClient(postlogintest.Client{ID: linkerID, Secret: linkerSecret, Name: "Linking", RedirectURIs: []string{linkerCallback}})
	s.SetPassword(dbUser.ID, janePassword)
	s.SetPassword(bobDB.ID, "bob's password")
	return s
}

// relyingParty is an OpenID Connect client of the tenant, built as a Go
// service builds one: go-oidc's discovery and verifier, x/oauth2's code
// flow.
type relyingParty struct {
	ctx      context.Context // carries the HTTP client that trusts the tenant
	conf     oauth2.Config
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

func newRelyingParty(t *testing.T, s *postlogintest.Server, clientID, secret, callback string, cfg oidc.Config) *relyingParty {
	t.Helper()
	ctx := oidc.ClientContext(t.Context(), s.Client())
	provider, err := oidc.NewProvider(ctx, s.Issuer())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	cfg.ClientID = clientID
	return &relyingParty{
		ctx: ctx,
		conf: oauth2.Config{
			ClientID: clientID, ClientSecret: secret, RedirectURL: callback,
			Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email"},
		},
		provider: provider,
		verifier: provider.Verifier(&cfg),
	}
}

// authorization is one /authorize request of a relying party: its URL and
// the secrets it keeps for the callback.
type authorization struct {
	url, state, nonce, verifier string
}

func (rp *relyingParty) authorize(params ...string) authorization {
	a := authorization{state: randomString(), nonce: randomString(), verifier: oauth2.GenerateVerifier()}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(a.verifier), oidc.Nonce(a.nonce)}
	for i := 0; i+1 < len(params); i += 2 {
		opts = append(opts, oauth2.SetAuthURLParam(params[i], params[i+1]))
	}
	a.url = rp.conf.AuthCodeURL(a.state, opts...)
	return a
}

func randomString() string { return oauth2.GenerateVerifier()[:22] }

// code returns the code of the callback to a, failing on an error answer.
func (a authorization) code(t *testing.T, callback *url.URL) string {
	t.Helper()
	q := callback.Query()
	if q.Get("error") != "" || q.Get("code") == "" {
		t.Fatalf("callback %s: want a code", callback)
	}
	if got := q.Get("state"); got != a.state {
		t.Fatalf("callback state: got %q, want %q", got, a.state)
	}
	return q.Get("code")
}

// exchange trades the code of callback for tokens and verifies the ID
// token.
func (rp *relyingParty) exchange(t *testing.T, a authorization, callback *url.URL) (*oidc.IDToken, idClaims, string) {
	t.Helper()
	tok, err := rp.conf.Exchange(rp.ctx, a.code(t, callback), oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(rp.ctx, raw)
	if err != nil {
		t.Fatalf("verify the ID token: %v", err)
	}
	if idt.Nonce != a.nonce {
		t.Errorf("nonce: got %q, want %q", idt.Nonce, a.nonce)
	}
	if tok.AccessToken == "" {
		t.Errorf("no access token")
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return idt, c, raw
}

// idClaims are the ID token's claims besides those go-oidc checks.
type idClaims struct {
	AuthTime      int64    `json:"auth_time"`
	Azp           string   `json:"azp"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	AMR           []string `json:"amr"`
}

// browser is a person's browser, as far as the tenant can tell: it keeps
// the tenant's cookies, follows the tenant's redirects, and fills in its
// login page.
type browser struct {
	t *testing.T
	s *postlogintest.Server
	c *http.Client
}

func newBrowser(t *testing.T, s *postlogintest.Server) *browser {
	return &browser{t: t, s: s, c: s.Client()}
}

// page is a page of the tenant the browser shows.
type page struct {
	status int
	body   string
}

var loginField = regexp.MustCompile(`name="login" value="([0-9a-f]+)"`)

// visit sends a request (a GET, or a POST of form) and follows the
// tenant's redirects; it returns the tenant's page the browser stops at,
// or the URL outside the tenant it is sent to.
func (b *browser) visit(method, target string, form url.Values) (page, *url.URL) {
	b.t.Helper()
	for {
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(b.t.Context(), method, target, body)
		if err != nil {
			b.t.Fatal(err)
		}
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		res, err := b.c.Do(req)
		if err != nil {
			b.t.Fatal(err)
		}
		text, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			b.t.Fatal(err)
		}
		if res.StatusCode != http.StatusFound {
			return page{res.StatusCode, string(text)}, nil
		}
		loc, err := res.Location()
		if err != nil {
			b.t.Fatal(err)
		}
		if !strings.HasPrefix(loc.String(), b.s.URL+"/") {
			return page{}, loc
		}
		method, target = http.MethodGet, loc.String()
	}
}

// submit posts the login page p with the fields of form.
func (b *browser) submit(p page, form url.Values) (page, *url.URL) {
	b.t.Helper()
	m := loginField.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("not a login page (%d):\n%s", p.status, p.body)
	}
	form.Set("login", m[1])
	return b.visit(http.MethodPost, b.s.URL+"/u/login", form)
}

// passwordLogin opens a's URL, expects the login page, and logs in with
// email and password; it returns where the tenant sends the browser.
func (b *browser) passwordLogin(a authorization, email, password string) *url.URL {
	b.t.Helper()
	p, away := b.visit(http.MethodGet, a.url, nil)
	if away != nil {
		b.t.Fatalf("GET /authorize went to %s, want the login page", away)
	}
	_, away = b.submit(p, url.Values{"action": {"login"}, "email": {email}, "password": {password}})
	if away == nil {
		b.t.Fatalf("the login did not leave the tenant")
	}
	return away
}

// TestEmulator_CodeFlow: a relying party built on go-oidc and x/oauth2
// discovers the tenant, sends Jane to the login page with PKCE, a nonce,
// the connection and her email as login_hint, and gets an ID token for her
// that go-oidc verifies, with a fresh auth_time, her email, and the key it
// was signed with in the JWKS.
func TestEmulator_CodeFlow(t *testing.T) {
	s := newTenant(t)
	rp := newRelyingParty(t, s, appID, appSecret, appCallback, oidc.Config{})
	var meta struct {
		Methods []string `json:"code_challenge_methods_supported"`
		Auth    []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := rp.provider.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(meta.Methods, []string{"S256"}) || !slices.Contains(meta.Auth, "client_secret_basic") {
		t.Errorf("discovery: got PKCE methods %v, client auth %v; want [S256], with client_secret_basic", meta.Methods, meta.Auth)
	}

	a := rp.authorize("connection", dbConnection, "login_hint", "jane@example.com", "prompt", "login", "max_age", "0")
	b := newBrowser(t, s)
	p, away := b.visit(http.MethodGet, a.url, nil)
	if away != nil || p.status != http.StatusOK {
		t.Fatalf("GET /authorize: got %d, %v; want the login page", p.status, away)
	}
	for _, want := range []string{`id="email"`, `value="jane@example.com"`, `id="password"`, `id="submit"`, `id="cancel"`, "My App"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the login page lacks %s:\n%s", want, p.body)
		}
	}
	if strings.Contains(p.body, "src=") || strings.Contains(p.body, "<link") {
		t.Errorf("the login page loads external assets:\n%s", p.body)
	}
	before := time.Now().Unix()
	_, away = b.submit(p, url.Values{"action": {"login"}, "email": {"jane@example.com"}, "password": {janePassword}})
	if away == nil || !strings.HasPrefix(away.String(), appCallback+"?") {
		t.Fatalf("after the login: went to %v, want %s", away, appCallback)
	}
	idt, claims, raw := rp.exchange(t, a, away)
	if idt.Subject != dbUser.ID || idt.Issuer != s.URL+"/" || !slices.Equal(idt.Audience, []string{appID}) {
		t.Errorf("ID token: got sub %q, iss %q, aud %v; want %q, %q, [%s]", idt.Subject, idt.Issuer, idt.Audience, dbUser.ID, s.URL+"/", appID)
	}
	want := idClaims{AuthTime: claims.AuthTime, Azp: appID, Email: dbUser.Email, EmailVerified: true}
	if diff := cmp.Diff(want, claims); diff != "" {
		t.Errorf("ID token claims (-want +got):\n%s", diff)
	}
	if claims.AuthTime < before || claims.AuthTime > time.Now().Unix() {
		t.Errorf("auth_time: got %d, want the time of the login, %d or later", claims.AuthTime, before)
	}
	if got, want := idt.Expiry.Sub(idt.IssuedAt), postlogintest.IDTokenLifetime; got != want {
		t.Errorf("ID token lifetime: got %v, want %v", got, want)
	}
	if kid := tokenKeyID(t, raw); !slices.Equal(s.KeyIDs(), []string{kid}) {
		t.Errorf("kid: got %q, want the tenant's key, %v", kid, s.KeyIDs())
	}
}

// tokenKeyID returns the kid of the JWT's header.
func tokenKeyID(t *testing.T, raw string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	if h.Alg != "RS256" {
		t.Errorf("alg: got %q, want RS256", h.Alg)
	}
	return h.Kid
}

// manualClock is a clock tests move by hand.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestEmulator_TokenRefusals: /oauth/token refuses a code with the wrong or
// no PKCE verifier, a code used before, a code of another client or
// another redirect_uri, an expired code, and a wrong client secret.
func TestEmulator_TokenRefusals(t *testing.T) {
	clock := &manualClock{now: time.Now()}
	s := newTenant(t, postlogintest.WithClock(clock.Now))
	app := newRelyingParty(t, s, appID, appSecret, appCallback, oidc.Config{})
	linker := newRelyingParty(t, s, linkerID, linkerSecret, linkerCallback, oidc.Config{})

	tests := []struct {
		name string
		// exchange trades the code of a; it may first do what makes it
		// fail.
		exchange func(a authorization, code string) error
		wantCode string
	}{
		{
			name: "wrong verifier", wantCode: "invalid_grant",
			exchange: func(a authorization, code string) error {
				_, err := app.conf.Exchange(app.ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
				return err
			},
		},
		{
			name: "no verifier", wantCode: "invalid_grant",
			exchange: func(a authorization, code string) error {
				_, err := app.conf.Exchange(app.ctx, code)
				return err
			},
		},
		{
			name: "the code a second time", wantCode: "invalid_grant",
			exchange: func(a authorization, code string) error {
				if _, err := app.conf.Exchange(app.ctx, code, oauth2.VerifierOption(a.verifier)); err != nil {
					t.Fatalf("first exchange: %v", err)
				}
				_, err := app.conf.Exchange(app.ctx, code, oauth2.VerifierOption(a.verifier))
				return err
			},
		},
		{
			name: "another client", wantCode: "invalid_grant",
			exchange: func(a authorization, code string) error {
				conf := linker.conf
				conf.RedirectURL = appCallback
				_, err := conf.Exchange(app.ctx, code, oauth2.VerifierOption(a.verifier))
				return err
			},
		},
		{
			name: "another redirect_uri", wantCode: "invalid_grant",
			exchange: func(a authorization, code string) error {
				conf := app.conf
				conf.RedirectURL = appCallback + "/other"
				_, err := conf.Exchange(app.ctx, code, oauth2.VerifierOption(a.verifier))
				return err
			},
		},
		{
			name: "expired", wantCode: "invalid_grant",
			exchange: func(a authorization, code string) error {
				clock.Advance(postlogintest.CodeLifetime)
				_, err := app.conf.Exchange(app.ctx, code, oauth2.VerifierOption(a.verifier))
				return err
			},
		},
		{
			name: "wrong client secret", wantCode: "invalid_client",
			exchange: func(a authorization, code string) error {
				conf := app.conf
				conf.ClientSecret = "guess"
				_, err := conf.Exchange(app.ctx, code, oauth2.VerifierOption(a.verifier))
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := app.authorize("connection", dbConnection)
			callback := newBrowser(t, s).passwordLogin(a, "jane@example.com", janePassword)
			err := tt.exchange(a, a.code(t, callback))
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != tt.wantCode {
				t.Fatalf("exchange: got %v, want the error %s", err, tt.wantCode)
			}
		})
	}

	t.Run("the right verifier, secret in the body", func(t *testing.T) {
		a := app.authorize("connection", dbConnection)
		callback := newBrowser(t, s).passwordLogin(a, "jane@example.com", janePassword)
		conf := app.conf
		conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		if _, err := conf.Exchange(app.ctx, a.code(t, callback), oauth2.VerifierOption(a.verifier)); err != nil {
			t.Errorf("exchange: %v", err)
		}
	})
}

// TestEmulator_AuthorizeRefusals: /authorize shows an error page, and
// sends nothing to the redirect_uri, for an unknown client or a
// redirect_uri the client did not register; it sends other errors back to
// the redirect_uri, with the state.
func TestEmulator_AuthorizeRefusals(t *testing.T) {
	s := newTenant(t)
	good := func() url.Values {
		return url.Values{
			"response_type": {"code"}, "client_id": {appID}, "redirect_uri": {appCallback}, "scope": {"openid email"},
			"state": {"st"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
		}
	}
	tests := []struct {
		name      string
		change    func(url.Values)
		wantPage  string // an error page with this text, or
		wantError string // this error at the redirect_uri
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "nobody") }, "Unknown client", ""},
		{"unregistered redirect_uri", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/callback") }, "Callback URL mismatch", ""},
		{"redirect_uri with another path", func(q url.Values) { q.Set("redirect_uri", appCallback+"/x") }, "Callback URL mismatch", ""},
		{"no PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "", "invalid_request"},
		{"PKCE plain", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "", "invalid_request"},
		{"implicit flow", func(q url.Values) { q.Set("response_type", "token") }, "", "unsupported_response_type"},
		{"no openid scope", func(q url.Values) { q.Set("scope", "email") }, "", "invalid_scope"},
		{"unknown connection", func(q url.Values) { q.Set("connection", "nope") }, "", "invalid_request"},
		{"social connection", func(q url.Values) {
			s.Flow.Tenant.AddConnection(linkingtest.Connection{ID: "con_g", Name: "google-oauth2", Strategy: "google-oauth2"})
			q.Set("connection", "google-oauth2")
		}, "", "invalid_request"},
		{"bad max_age", func(q url.Values) { q.Set("max_age", "-1") }, "", "invalid_request"},
		{"prompt=none without a session", func(q url.Values) { q.Set("prompt", "none") }, "", "login_required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := good()
			tt.change(q)
			p, away := newBrowser(t, s).visit(http.MethodGet, s.URL+"/authorize?"+q.Encode(), nil)
			if tt.wantPage != "" {
				if away != nil || p.status != http.StatusBadRequest || !strings.Contains(p.body, tt.wantPage) {
					t.Errorf("got %d %v, want a 400 page saying %q:\n%s", p.status, away, tt.wantPage, p.body)
				}
				return
			}
			if away == nil || !strings.HasPrefix(away.String(), appCallback+"?") {
				t.Fatalf("got the page %d, want a redirect to %s:\n%s", p.status, appCallback, p.body)
			}
			if got := away.Query(); got.Get("error") != tt.wantError || got.Get("state") != "st" || got.Get("code") != "" {
				t.Errorf("callback: got %s, want error=%s with the state and no code", away.RawQuery, tt.wantError)
			}
		})
	}
}

// TestEmulator_PromptLoginAndSSO: after Jane logged in, an /authorize
// without prompt=login or max_age=0 logs her in silently, and the ID token
// has the old auth_time; prompt=login, max_age=0 or a max_age she is past
// show the login page again, and a login there has a fresh auth_time.
func TestEmulator_PromptLoginAndSSO(t *testing.T) {
	start := time.Now().Truncate(time.Second)
	clock := &manualClock{now: start}
	s := newTenant(t, postlogintest.WithClock(clock.Now))
	rp := newRelyingParty(t, s, appID, appSecret, appCallback, oidc.Config{Now: clock.Now})
	b := newBrowser(t, s)

	a := rp.authorize("connection", dbConnection)
	_, first, _ := rp.exchange(t, a, b.passwordLogin(a, "jane@example.com", janePassword))
	if first.AuthTime != start.Unix() {
		t.Fatalf("auth_time of the first login: got %d, want %d", first.AuthTime, start.Unix())
	}
	clock.Advance(time.Hour)

	tests := []struct {
		name       string
		params     []string
		wantSilent bool
	}{
		{"no prompt", []string{"connection", dbConnection}, true},
		{"no connection", nil, true},
		{"prompt=none", []string{"prompt", "none"}, true},
		{"max_age larger than the session's age", []string{"max_age", "7200"}, true},
		{"another connection", []string{"connection", "email"}, false},
		// Each login below opens a new session.
		{"max_age smaller than the session's age", []string{"max_age", "60"}, false},
		{"prompt=login", []string{"connection", dbConnection, "prompt", "login"}, false},
		{"max_age=0", []string{"connection", dbConnection, "max_age", "0"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := rp.authorize(tt.params...)
			p, away := b.visit(http.MethodGet, a.url, nil)
			if silent := away != nil; silent != tt.wantSilent {
				t.Fatalf("silent login: got %v (page %d), want %v", silent, p.status, tt.wantSilent)
			}
			if !tt.wantSilent {
				if tt.params[1] == "email" {
					return // the passwordless page; not Jane's password login
				}
				_, away = b.submit(p, url.Values{"action": {"login"}, "email": {"jane@example.com"}, "password": {janePassword}})
			}
			idt, claims, _ := rp.exchange(t, a, away)
			wantAuthTime := start.Unix()
			if !tt.wantSilent {
				wantAuthTime = clock.Now().Unix()
			}
			if claims.AuthTime != wantAuthTime || idt.Subject != dbUser.ID {
				t.Errorf("got sub %s, auth_time %d; want %s, %d", idt.Subject, claims.AuthTime, dbUser.ID, wantAuthTime)
			}
			if got := idt.IssuedAt.Unix(); got != clock.Now().Unix() {
				t.Errorf("iat: got %d, want now, %d", got, clock.Now().Unix())
			}
		})
	}
}

// TestEmulator_KeyRotation: after a rotation the new key signs, the JWKS
// lists both keys, and a verifier that knew only the old key fetches the
// new one; once the old key is retired, its tokens no longer verify.
func TestEmulator_KeyRotation(t *testing.T) {
	s := newTenant(t)
	rp := newRelyingParty(t, s, appID, appSecret, appCallback, oidc.Config{})
	b := newBrowser(t, s)
	login := func() string {
		a := rp.authorize("connection", dbConnection, "prompt", "login")
		tok, err := rp.conf.Exchange(rp.ctx, a.code(t, b.passwordLogin(a, "jane@example.com", janePassword)), oauth2.VerifierOption(a.verifier))
		if err != nil {
			t.Fatal(err)
		}
		return tok.Extra("id_token").(string)
	}
	old := login()
	oldKID := tokenKeyID(t, old)
	if _, err := rp.verifier.Verify(rp.ctx, old); err != nil {
		t.Fatalf("the token before the rotation: %v", err)
	}

	newKID, err := s.RotateKey()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{oldKID, newKID}, s.KeyIDs()); diff != "" {
		t.Errorf("keys after the rotation (-want +got):\n%s", diff)
	}
	rotated := login()
	if kid := tokenKeyID(t, rotated); kid != newKID {
		t.Errorf("kid after the rotation: got %q, want %q", kid, newKID)
	}
	for name, raw := range map[string]string{"new": rotated, "old": old} {
		if _, err := rp.verifier.Verify(rp.ctx, raw); err != nil {
			t.Errorf("the %s token, with the verifier that cached the old key: %v", name, err)
		}
	}

	if err := s.RetireKey(newKID); err == nil {
		t.Errorf("RetireKey of the signing key: got no error, want one")
	}
	if err := s.RetireKey("nope"); err == nil {
		t.Errorf("RetireKey of an unknown key: got no error, want one")
	}
	if err := s.RetireKey(oldKID); err != nil {
		t.Fatal(err)
	}
	fresh := newRelyingParty(t, s, appID, appSecret, appCallback, oidc.Config{})
	if _, err := fresh.verifier.Verify(fresh.ctx, old); err == nil {
		t.Errorf("a token of the retired key: verified, want refused")
	}
	if _, err := fresh.verifier.Verify(fresh.ctx, rotated); err != nil {
		t.Errorf("a token of the signing key: %v", err)
	}
}

// passwordlessLogin opens a's URL (an email connection), asks for a code
// for email, reads it from the tenant, and enters it.
func (b *browser) passwordlessLogin(a authorization, email string) *url.URL {
	b.t.Helper()
	p, away := b.visit(http.MethodGet, a.url, nil)
	if away != nil {
		b.t.Fatalf("GET /authorize went to %s, want the login page", away)
	}
	p, away = b.submit(p, url.Values{"action": {"send"}, "email": {email}})
	if away != nil || !strings.Contains(p.body, `id="code"`) {
		b.t.Fatalf("after sending the code: got %v, want the code page:\n%s", away, p.body)
	}
	code, ok := b.s.LastCode(email)
	if !ok {
		b.t.Fatalf("no code was sent to %s", email)
	}
	_, away = b.submit(p, url.Values{"action": {"verify"}, "code": {code}})
	if away == nil {
		b.t.Fatalf("the passwordless login did not leave the tenant")
	}
	return away
}

// TestEmulator_Passwordless: Jane's first passwordless login creates her
// email user; a wrong code is refused and a code works once; once her
// email identity is linked into her database user, the same login ends as
// the primary.
func TestEmulator_Passwordless(t *testing.T) {
	s := newTenant(t)
	s.Flow.NewUserID = func() string { return "6f1c" }
	rp := newRelyingParty(t, s, appID, appSecret, appCallback, oidc.Config{})

	a := rp.authorize("connection", "email", "login_hint", "jane@example.com")
	b := newBrowser(t, s)
	p, _ := b.visit(http.MethodGet, a.url, nil)
	p, _ = b.submit(p, url.Values{"action": {"send"}, "email": {"Jane@Example.com"}})
	code, ok := s.LastCode("jane@example.com")
	if !ok || len(code) != 6 {
		t.Fatalf("LastCode: got %q, %v; want six digits", code, ok)
	}
	wrong, away := b.submit(p, url.Values{"action": {"verify"}, "code": {"x" + code}})
	if away != nil || wrong.status != http.StatusUnauthorized || !strings.Contains(wrong.body, "Wrong or expired code") {
		t.Fatalf("a wrong code: got %d %v, want the code page again, 401:\n%s", wrong.status, away, wrong.body)
	}
	_, away = b.submit(wrong, url.Values{"action": {"verify"}, "code": {code}})
	idt, claims, _ := rp.exchange(t, a, away)
	if idt.Subject != "email|6f1c" || claims.Email != "jane@example.com" || !claims.EmailVerified {
		t.Errorf("first login: got sub %q, %+v; want email|6f1c with jane's verified email", idt.Subject, claims)
	}
	if _, ok := s.LastCode("jane@example.com"); ok {
		t.Errorf("LastCode after its use: got a code, want none")
	}

	if err := s.Flow.Tenant.Link(t.Context(), dbUser.ID, linking.Identity{Provider: "email", UserID: "6f1c", Connection: "email"}); err != nil {
		t.Fatal(err)
	}
	a = rp.authorize("connection", "email", "prompt", "login")
	idt, claims, _ = rp.exchange(t, a, newBrowser(t, s).passwordlessLogin(a, "jane@example.com"))
	if idt.Subject != dbUser.ID || claims.Email != dbUser.Email {
		t.Errorf("login with the linked identity: got sub %q, email %q; want the primary %s", idt.Subject, claims.Email, dbUser.ID)
	}
}

// TestEmulator_LoginOutcomes: a wrong password shows the page again; the
// Cancel button and a scripted cancel send access_denied back; a scripted
// login into another account than the hint ends as that account; a failed
// second factor is access_denied, a passed one shows in amr.
func TestEmulator_LoginOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		script  []postlogintest.Outcome
		form    url.Values
		wantSub string
		wantErr string // error at the callback
		wantAMR []string
		// wantPage: the login page again, with this status and text.
		wantStatus int
		wantText   string
	}{
		{
			name: "the right password", form: url.Values{"action": {"login"}, "email": {"jane@example.com"}, "password": {janePassword}},
			wantSub: dbUser.ID,
		},
		{
			name: "a wrong password", form: url.Values{"action": {"login"}, "email": {"jane@example.com"}, "password": {"guess"}},
			wantStatus: http.StatusUnauthorized, wantText: "Wrong email or password.",
		},
		{
			name: "no such user", form: url.Values{"action": {"login"}, "email": {"nobody@example.com"}, "password": {janePassword}},
			wantStatus: http.StatusUnauthorized, wantText: "Wrong email or password.",
		},
		{
			name: "Bob's password for Jane", form: url.Values{"action": {"login"}, "email": {"jane@example.com"}, "password": {"bob's password"}},
			wantStatus: http.StatusUnauthorized, wantText: "Wrong email or password.",
		},
		{
			name: "the Cancel button", form: url.Values{"action": {"cancel"}},
			wantErr: "access_denied",
		},
		{
			name: "scripted cancel", script: []postlogintest.Outcome{{Cancel: true}},
			form:    url.Values{"action": {"login"}, "email": {"jane@example.com"}, "password": {janePassword}},
			wantErr: "access_denied",
		},
		{
			name: "scripted: Bob logs in where Jane was hinted", script: []postlogintest.Outcome{{Email: "bob@example.com"}},
			form:    url.Values{"action": {"login"}},
			wantSub: bobDB.ID,
		},
		{
			name: "scripted: MFA failed", script: []postlogintest.Outcome{{MFA: postlogintest.MFAFailed}},
			form:    url.Values{"action": {"login"}, "email": {"jane@example.com"}, "password": {janePassword}},
			wantErr: "access_denied",
		},
		{
			name: "scripted: MFA passed", script: []postlogintest.Outcome{{MFA: postlogintest.MFAPassed}},
			form:    url.Values{"action": {"login"}, "email": {"jane@example.com"}, "password": {janePassword}},
			wantSub: dbUser.ID, wantAMR: []string{"mfa"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTenant(t)
			s.Script(tt.script...)
			rp := newRelyingParty(t, s, appID, appSecret, appCallback, oidc.Config{})
			a := rp.authorize("connection", dbConnection, "login_hint", "jane@example.com")
			b := newBrowser(t, s)
			p, _ := b.visit(http.MethodGet, a.url, nil)
			p, away := b.submit(p, tt.form)
			switch {
			case tt.wantStatus != 0:
				if away != nil || p.status != tt.wantStatus || !strings.Contains(p.body, tt.wantText) {
					t.Errorf("got %d %v, want the page again, %d, saying %q:\n%s", p.status, away, tt.wantStatus, tt.wantText, p.body)
				}
			case tt.wantErr != "":
				if away == nil || away.Query().Get("error") != tt.wantErr || away.Query().Get("state") != a.state {
					t.Errorf("got %v, want %s?error=%s with the state", away, appCallback, tt.wantErr)
				}
			default:
				idt, claims, _ := rp.exchange(t, a, away)
				if idt.Subject != tt.wantSub || !slices.Equal(claims.AMR, tt.wantAMR) {
					t.Errorf("got sub %q, amr %v; want %q, %v", idt.Subject, claims.AMR, tt.wantSub, tt.wantAMR)
				}
			}
		})
	}
}

// TestEmulator_PipelineRunsForEveryLogin: the Action runs for every login
// at /authorize, whatever the client, with event.client naming it; what
// the Action decides is what the client gets.
func TestEmulator_PipelineRunsForEveryLogin(t *testing.T) {
	s := newTenant(t)
	var (
		mu     sync.Mutex
		inputs []postlogintest.ActionInput
		calls  []postlogintest.ActionCall // what the Action calls
	)
	s.SetAction(func(_ context.Context, in postlogintest.ActionInput) (postlogintest.ActionRun, error) {
		mu.Lock()
		defer mu.Unlock()
		inputs = append(inputs, in)
		return postlogintest.ActionRun{Calls: calls}, nil
	})
	actionCalls := func(c ...postlogintest.ActionCall) {
		mu.Lock()
		defer mu.Unlock()
		calls = c
	}
	app := newRelyingParty(t, s, appID, appSecret, appCallback, oidc.Config{})
	linker := newRelyingParty(t, s, linkerID, linkerSecret, linkerCallback, oidc.Config{})

	for _, rp := range []*relyingParty{app, linker} {
		a := rp.authorize("connection", dbConnection, "prompt", "login")
		rp.exchange(t, a, newBrowser(t, s).passwordLogin(a, "jane@example.com", janePassword))
	}
	var clients []string
	mu.Lock()
	seen := slices.Clone(inputs)
	mu.Unlock()
	for _, in := range seen {
		clients = append(clients, in.Event.Client.ClientID)
		if in.Function != postlogintest.OnExecutePostLogin || in.Event.User.UserID != dbUser.ID ||
			in.Event.Request.Hostname != s.Domain() || !slices.Equal(in.Event.Transaction.Prompt, []string{"login"}) {
			t.Errorf("input: got %+v, want onExecutePostLogin for %s at %s with prompt login", in, dbUser.ID, s.Domain())
		}
	}
	if diff := cmp.Diff([]string{appID, linkerID}, clients); diff != "" {
		t.Errorf("event.client.client_id of the executions (-want +got):\n%s", diff)
	}

	actionCalls(call(t, postlogintest.APIDeny, "not today"))
	a := app.authorize("connection", dbConnection)
	away := newBrowser(t, s).passwordLogin(a, "jane@example.com", janePassword)
	if q := away.Query(); q.Get("error") != "access_denied" || q.Get("error_description") != "not today" || q.Get("code") != "" {
		t.Errorf("a denied login: got %s, want error=access_denied with the reason", away)
	}

	actionCalls(call(t, postlogintest.APISetPrimaryUser, bobDB.ID))
	a = app.authorize("connection", dbConnection)
	away = newBrowser(t, s).passwordLogin(a, "jane@example.com", janePassword)
	if q := away.Query(); q.Get("error") != "access_denied" || !strings.Contains(q.Get("error_description"), "does not hold the identity") {
		t.Errorf("setPrimaryUser to a user without the identity: got %s, want error=access_denied", away)
	}

	actionCalls()
	b := newBrowser(t, s)
	b.passwordLogin(app.authorize("connection", dbConnection), "jane@example.com", janePassword) // opens a session
	actionCalls(call(t, postlogintest.APISendUserTo, "https://linking.example/confirm"))
	a = app.authorize("prompt", "none")
	if _, away := b.visit(http.MethodGet, a.url, nil); away == nil || away.Query().Get("error") != "interaction_required" {
		t.Errorf("a redirect in a silent login: got %v, want error=interaction_required", away)
	}
}

// TestEmulator_ContinueOverHTTP: a login the Action sends away resumes when
// the browser comes back to /continue with the state; the Action's
// onContinuePostLogin sees the request, and the client gets a code for the
// user it chose. The state works once. A login a test started with Flow is
// resumed at /continue too, and ends with a page.
func TestEmulator_ContinueOverHTTP(t *testing.T) {
	s := newTenant(t)
	var (
		mu   sync.Mutex
		seen postlogintest.ActionInput // of onContinuePostLogin
	)
	s.SetAction(func(_ context.Context, in postlogintest.ActionInput) (postlogintest.ActionRun, error) {
		if in.Function == postlogintest.OnExecutePostLogin {
			return postlogintest.ActionRun{Calls: []postlogintest.ActionCall{
				call(t, postlogintest.APISendUserTo, "https://linking.example/confirm", map[string]any{"query": map[string]string{"session_token": "out"}}),
			}}, nil
		}
		mu.Lock()
		seen = in
		mu.Unlock()
		return postlogintest.ActionRun{Calls: []postlogintest.ActionCall{call(t, postlogintest.APISetPrimaryUser, dbUser.ID)}}, nil
	})
	s.Flow.NewUserID = func() string { return "6f1c" }
	rp := newRelyingParty(t, s, appID, appSecret, appCallback, oidc.Config{})
	a := rp.authorize("connection", "email")
	b := newBrowser(t, s)
	away := b.passwordlessLogin(a, "jane@example.com")
	if !strings.HasPrefix(away.String(), "https://linking.example/confirm?") || away.Query().Get("session_token") != "out" {
		t.Fatalf("the Action's redirect: got %s, want https://linking.example/confirm with the token", away)
	}
	state := away.Query().Get("state")

	if err := s.Flow.Tenant.Link(t.Context(), dbUser.ID, linking.Identity{Provider: "email", UserID: "6f1c", Connection: "email"}); err != nil {
		t.Fatal(err)
	}
	_, back := b.visit(http.MethodPost, s.URL+"/continue", url.Values{"state": {state}, "session_token": {"in"}})
	mu.Lock()
	got := seen
	mu.Unlock()
	if got.Function != postlogintest.OnContinuePostLogin || got.State != state || got.Event.Request.Body["session_token"] != "in" {
		t.Errorf("onContinuePostLogin's input: got %+v, want the /continue request with its state", got)
	}
	idt, _, _ := rp.exchange(t, a, back)
	if idt.Subject != dbUser.ID {
		t.Errorf("sub: got %q, want the primary %q", idt.Subject, dbUser.ID)
	}
	if p, away := b.visit(http.MethodGet, s.URL+"/continue?state="+state, nil); away != nil || p.status != http.StatusBadRequest {
		t.Errorf("a second /continue with the state: got %d %v, want a 400 page", p.status, away)
	}

	tx, err := s.Flow.SignIn(t.Context(), dbUser.Identities[0])
	if err != nil {
		t.Fatal(err)
	}
	res, err := tx.Finish(t.Context(), postlogintest.ActionRun{Calls: []postlogintest.ActionCall{call(t, postlogintest.APISendUserTo, "https://linking.example/confirm")}})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(res.Redirect)
	p, away := b.visit(http.MethodGet, s.URL+"/continue?state="+u.Query().Get("state"), nil)
	if away != nil || p.status != http.StatusOK || !strings.Contains(p.body, "Logged in as "+dbUser.ID) {
		t.Errorf("/continue of a login without a client: got %d %v, want a page saying it ended as %s:\n%s", p.status, away, dbUser.ID, p.body)
	}
	if got, ended := tx.Result(); !ended || !got.Succeeded || got.Subject != dbUser.ID {
		t.Errorf("Result: got %+v, ended %v; want a success as %s", got, ended, dbUser.ID)
	}
}

// TestServer_OneOrigin: go-auth0, through mgmt.New, uses the Management API
// at the tenant's URL; its client credentials token request reaches the
// Management API emulator, not the authorization code grant.
func TestServer_OneOrigin(t *testing.T) {
	s := newTenant(t)
	store, err := mgmt.New(t.Context(), s.Domain(), s.Mgmt.ClientID(), s.Mgmt.ClientSecret(), s.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	users, err := store.UsersByEmail(t.Context(), "jane@example.com")
	if err != nil || len(users) != 1 || users[0].ID != dbUser.ID {
		t.Fatalf("UsersByEmail: got %v, %v; want %s", users, err, dbUser.ID)
	}
	if got := s.Mgmt.TokenRequests(); got != 1 {
		t.Errorf("Management API token requests: got %d, want 1", got)
	}
}

// TestEmulator_ConfirmThroughNode is the whole "confirm before linking"
// round trip on one tenant URL, with the Action run by the real runtime:
// Jane's first passwordless login to the application runs the Action,
// which sends her to the confirming site with a token naming the
// candidate; the site (played by the test) asks for a proof login to
// exactly that account with prompt=login and max_age=0 (the Action runs
// for it too, and leaves the linking client's login alone), checks the ID
// token's sub, links through the Management API at the same origin, and
// sends her back to /continue with a token bound to the state; the Action
// validates it and calls setPrimaryUser, and the application's ID token is
// for the primary.
func TestEmulator_ConfirmThroughNode(t *testing.T) {
	ctx := t.Context()
	s := newTenant(t)
	s.Flow.NewUserID = func() string { return "6f1c" }
	action := confirmAction(t, nil)
	s.SetAction(action.Run)
	app := newRelyingParty(t, s, appID, appSecret, appCallback, oidc.Config{})
	linker := newRelyingParty(t, s, linkerID, linkerSecret, linkerCallback, oidc.Config{})
	b := newBrowser(t, s)

	a := app.authorize("connection", "email")
	away := b.passwordlessLogin(a, "jane@example.com")
	if !strings.HasPrefix(away.String(), action.Secrets["CONFIRM_URL"]+"?") {
		t.Fatalf("the login went to %s, want the confirming site", away)
	}
	state := away.Query().Get("state")
	out := claimsOf(t, away.Query().Get("session_token"), confirmSecret)
	if out["candidate"] != dbUser.ID || out["sub"] != "email|6f1c" || out["iss"] != s.Domain() {
		t.Fatalf("the token sent: got %v, want candidate %s, sub email|6f1c, iss %s", out, dbUser.ID, s.Domain())
	}

	proof := linker.authorize("connection", dbConnection, "login_hint", "jane@example.com", "prompt", "login", "max_age", "0")
	asked := time.Now().Unix()
	idt, claims, _ := linker.exchange(t, proof, b.passwordLogin(proof, "jane@example.com", janePassword))
	if idt.Subject != out["candidate"] || claims.AuthTime < asked {
		t.Fatalf("the proof: got sub %q, auth_time %d; want %v, %d or later", idt.Subject, claims.AuthTime, out["candidate"], asked)
	}
	store, err := mgmt.New(ctx, s.Domain(), s.Mgmt.ClientID(), s.Mgmt.ClientSecret(), s.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Link(ctx, idt.Subject, linking.Identity{Provider: "email", UserID: "6f1c", Connection: "email"}); err != nil {
		t.Fatal(err)
	}
	back := hs256(t, confirmSecret, map[string]any{
		"state": state, "sub": out["sub"], "primary_user_id": idt.Subject, "exp": time.Now().Add(time.Minute).Unix(),
	})

	_, callback := b.visit(http.MethodPost, s.URL+"/continue", url.Values{"state": {state}, "session_token": {back}})
	if callback == nil || !strings.HasPrefix(callback.String(), appCallback+"?") {
		t.Fatalf("after /continue: went to %v, want the application's callback", callback)
	}
	final, _, _ := app.exchange(t, a, callback)
	if final.Subject != dbUser.ID {
		t.Errorf("the application's ID token: got sub %q, want the primary %q", final.Subject, dbUser.ID)
	}
	if users := s.Flow.Tenant.Users(); len(users) != 2 || users[0].ID != dbUser.ID || len(users[0].Identities) != 2 {
		t.Errorf("users after the round trip: got %+v, want Jane's primary with both identities, and Bob", users)
	}
}
