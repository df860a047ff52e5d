package postlogin_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
	"github.com/idlink/linking/postlogin"
	"github.com/idlink/linking/postlogin/postlogintest"
)

// The end-to-end confirm tests run the whole confirm path with real
// components on both sides: the pipeline emulator (postlogintest.Server)
// is the tenant — its login pages, /authorize, /oauth/token, JWKS,
// /continue and Management API — and runs the shipped action.js in Node for
// every login; the decision service runs in process in confirm mode over
// mgmt and go-auth0; a net/http client with a cookie jar plays the browser.
// confirmDeployment and e2eBrowser are what a browser-driven version of
// these tests needs too.

// The applications of the confirm deployment.
const (
	appClientID     = "app"
	appClientSecret = "app-secret"
	appCallback     = "https://app.example/callback"
	janePassword    = "correct horse battery staple"
	bobPassword     = "bob's password"
)

// janeUnverifiedDB is Jane's password account, whose email she never
// verified: the automatic rule never links into it, a proof may.
var janeUnverifiedDB = linking.User{
	ID: "auth0|63d17c6a9d503d76c056c177", Email: "jane@example.com", EmailVerified: false,
	Identities: []linking.Identity{
		{Provider: "auth0", UserID: "63d17c6a9d503d76c056c177", Connection: "Username-Password-Authentication"},
	},
}

// bobE2E is another person's password account.
var bobE2E = linking.User{
	ID: "auth0|b0b", Email: "bob@example.com", EmailVerified: true,
	Identities: []linking.Identity{{Provider: "auth0", UserID: "b0b", Connection: "Username-Password-Authentication"}},
}

// confirmDeployment is a tenant and the decision service in confirm mode,
// each on its own HTTPS origin on loopback.
type confirmDeployment struct {
	// Tenant is the pipeline emulator; its Mgmt counts the Management API
	// requests.
	Tenant *postlogintest.Server
	// ServiceURL is the service's origin: ConfirmConfig.BaseURL.
	ServiceURL string
	// App is the application the person signs in to; its callback,
	// appCallback, is never served: the browser stops there.
	App oauth2.Config
	// Roots trusts both origins.
	Roots *x509.CertPool
	// ServiceRequests counts the Action's requests to the decision
	// endpoint.
	ServiceRequests *atomic.Int32
}

// deployConfirm starts the tenant holding users (with their passwords set),
// the Action in Node with every confirm secret, and the service with policy
// p, wired as an operator wires them: the linking client registered with
// the callback ServiceURL + /callback, LINKING_CLIENT_ID set.
func deployConfirm(t *testing.T, p linking.Policy, users ...linking.User) *confirmDeployment {
	t.Helper()
	return deployConfirmWith(t, p, nil, users...)
}

// deployConfirmWith is deployConfirm with edit, when not nil, applied to the
// service's ConfirmConfig.
func deployConfirmWith(t *testing.T, p linking.Policy, edit func(*postlogin.ConfirmConfig), users ...linking.User) *confirmDeployment {
	t.Helper()
	node := postlogintest.RequireNode(t)
	d := &confirmDeployment{ServiceRequests: new(atomic.Int32)}
	d.Tenant = postlogintest.NewServer(mgmttest.NewEmulator(linkingtest.NewTenant(users...)))
	t.Cleanup(d.Tenant.Close)
	d.Tenant.SetPassword(janeUnverifiedDB.ID, janePassword)
	d.Tenant.SetPassword(bobE2E.ID, bobPassword)

	svc := httptest.NewUnstartedServer(nil)
	svc.StartTLS()
	t.Cleanup(svc.Close)
	d.ServiceURL = svc.URL
	d.Roots = x509.NewCertPool()
	d.Roots.AddCert(d.Tenant.Certificate())
	d.Roots.AddCert(svc.Certificate())

	store, err := mgmt.New(t.Context(), d.Tenant.Domain(), d.Tenant.Mgmt.ClientID(), d.Tenant.Mgmt.ClientSecret(), d.Tenant.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	cc := postlogin.ConfirmConfig{
		Issuer: d.Tenant.Issuer(), ClientID: linkingClientID, ClientSecret: linkingClientSecret,
		BaseURL: svc.URL, ConfirmSecret: []byte(confirmSecret), ContinueSecret: []byte(continueSecret),
		HTTPClient: d.Tenant.Client(),
	}
	if edit != nil {
		edit(&cc)
	}
	h, err := postlogin.NewHandler(&linking.Linker{Store: store, Policy: p}, postlogin.Config{Secret: []byte(e2eSecret), Confirm: &cc})
	if err != nil {
		t.Fatal(err)
	}
	mux := h.Mux()
	svc.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == postlogin.Path {
			d.ServiceRequests.Add(1)
		}
		mux.ServeHTTP(w, r)
	})

	d.Tenant.AddClient(postlogintest.Client{ID: appClientID, Secret: appClientSecret, Name: "My App", RedirectURIs: []string{appCallback}})
	d.Tenant.AddClient(postlogintest.Client{ID: linkingClientID, Secret: linkingClientSecret, Name: "Account linking", RedirectURIs: []string{svc.URL + postlogin.CallbackPath}})
	caFile := filepath.Join(t.TempDir(), "service-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: svc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	runner, err := filepath.Abs(filepath.Join("testdata", "run-action.js"))
	if err != nil {
		t.Fatal(err)
	}
	action := &postlogintest.NodeAction{
		Node: node, Runner: runner, File: actionFile(t), Env: []string{"NODE_EXTRA_CA_CERTS=" + caFile},
		Secrets: map[string]string{
			"LINKING_URL": svc.URL + postlogin.Path, "LINKING_SECRET": e2eSecret,
			"LINKING_CONFIRM_SECRET": confirmSecret, "LINKING_CONTINUE_SECRET": continueSecret,
			"LINKING_CLIENT_ID": linkingClientID,
		},
	}
	d.Tenant.SetAction(action.Run)
	d.App = oauth2.Config{
		ClientID: appClientID, ClientSecret: appClientSecret, RedirectURL: appCallback,
		Endpoint: oauth2.Endpoint{AuthURL: d.Tenant.URL + "/authorize", TokenURL: d.Tenant.URL + "/oauth/token"},
		Scopes:   []string{"openid", "email"},
	}
	return d
}

// appLogin is one login of the application: its /authorize URL and what
// the application keeps for the callback.
type appLogin struct {
	URL, State, Verifier string
}

// startLogin returns an application login through connection.
func (d *confirmDeployment) startLogin(connection string) appLogin {
	a := appLogin{State: oauth2.GenerateVerifier()[:20], Verifier: oauth2.GenerateVerifier()}
	a.URL = d.App.AuthCodeURL(a.State, oauth2.S256ChallengeOption(a.Verifier), oauth2.SetAuthURLParam("connection", connection))
	return a
}

// subject exchanges the code of the application's callback and returns the
// user the login ended as: the ID token's sub.
func (d *confirmDeployment) subject(t *testing.T, a appLogin, callback *url.URL) string {
	t.Helper()
	q := callback.Query()
	if q.Get("code") == "" || q.Get("state") != a.State {
		t.Fatalf("the application's callback %s: want a code and its state", callback)
	}
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, d.Tenant.Client())
	tok, err := d.App.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(a.Verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	// The ID token comes straight from the tenant's token endpoint over
	// TLS: its subject is all this test needs of it.
	raw, _ := tok.Extra("id_token").(string)
	parsed, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("the application's ID token: %v", err)
	}
	var claims jwt.Claims
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	return claims.Subject
}

// e2eBrowser is a browser over net/http: it keeps cookies, trusts the
// deployment's origins, follows redirects between them, and remembers every
// URL it was sent to.
type e2eBrowser struct {
	t       *testing.T
	d       *confirmDeployment
	c       *http.Client
	visited []string
}

func (d *confirmDeployment) newBrowser(t *testing.T) *e2eBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &e2eBrowser{t: t, d: d, c: &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: d.Roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// e2ePage is the page a browser stops at: its URL, status and body; or,
// with Away set, the URL outside both origins it was sent to.
type e2ePage struct {
	URL    string
	Status int
	Body   string
	Away   *url.URL
}

// open GETs target and follows redirects.
func (b *e2eBrowser) open(target string) e2ePage {
	b.t.Helper()
	return b.do(http.MethodGet, target, nil)
}

// do sends a request (a POST of form, or a GET) and follows redirects
// within the tenant and the service.
func (b *e2eBrowser) do(method, target string, form url.Values) e2ePage {
	b.t.Helper()
	for {
		b.visited = append(b.visited, target)
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(b.t.Context(), method, target, body)
		if err != nil {
			b.t.Fatal(err)
		}
		if form != nil {
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
		if res.StatusCode != http.StatusFound && res.StatusCode != http.StatusSeeOther {
			return e2ePage{URL: target, Status: res.StatusCode, Body: string(text)}
		}
		loc, err := res.Request.URL.Parse(res.Header.Get("Location"))
		if err != nil {
			b.t.Fatal(err)
		}
		if origin := loc.Scheme + "://" + loc.Host; origin != b.d.Tenant.URL && origin != b.d.ServiceURL {
			b.visited = append(b.visited, loc.String())
			return e2ePage{Away: loc}
		}
		method, target, form = http.MethodGet, loc.String(), nil
	}
}

// submit posts the form of page p (the first form, or the one whose action
// is action) with its hidden fields and the fields given.
func (b *e2eBrowser) submit(p e2ePage, fields url.Values) e2ePage {
	b.t.Helper()
	m := regexp.MustCompile(`<form method="post" action="([^"]+)">`).FindStringSubmatch(p.Body)
	if m == nil {
		b.t.Fatalf("no form on %s (%d):\n%s", p.URL, p.Status, p.Body)
	}
	base, err := url.Parse(p.URL)
	if err != nil {
		b.t.Fatal(err)
	}
	action, err := base.Parse(html.UnescapeString(m[1]))
	if err != nil {
		b.t.Fatal(err)
	}
	form := url.Values{}
	for _, f := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(p.Body, -1) {
		form.Set(f[1], html.UnescapeString(f[2]))
	}
	for k, v := range fields {
		form[k] = v
	}
	return b.do(http.MethodPost, action.String(), form)
}

// passwordless signs in to the application with an email code: it returns
// the page the login leads to.
func (b *e2eBrowser) passwordless(a appLogin, email string) e2ePage {
	b.t.Helper()
	p := b.submit(b.open(a.URL), url.Values{"action": {"send"}, "email": {email}})
	code, ok := b.d.Tenant.LastCode(email)
	if !ok {
		b.t.Fatalf("no code was sent to %s:\n%s", email, p.Body)
	}
	return b.submit(p, url.Values{"action": {"verify"}, "code": {code}})
}

// toConsent starts an application login of Jane with an email code, which
// the Action sends to the consent page; it returns the login and the page.
func (b *e2eBrowser) toConsent() (appLogin, e2ePage) {
	b.t.Helper()
	a := b.d.startLogin("email")
	consent := b.passwordless(a, "jane@example.com")
	b.onConsentPage(consent)
	return a, consent
}

// onConsentPage fails unless p is the service's consent page.
func (b *e2eBrowser) onConsentPage(p e2ePage) {
	b.t.Helper()
	if p.URL != b.d.ServiceURL+postlogin.ConfirmPath || p.Status != http.StatusOK || !strings.Contains(p.Body, `value="link"`) {
		b.t.Fatalf("want the consent page, got %s (%d), away %v:\n%s", p.URL, p.Status, p.Away, p.Body)
	}
}

// choose presses a button of the consent page.
func (b *e2eBrowser) choose(consent e2ePage, choice string) e2ePage {
	b.t.Helper()
	return b.submit(consent, url.Values{"choice": {choice}})
}

// passwordLogin fills in the tenant's password login page.
func (b *e2eBrowser) passwordLogin(p e2ePage, email, password string) e2ePage {
	b.t.Helper()
	if !strings.Contains(p.Body, `id="password"`) {
		b.t.Fatalf("want the tenant's password page, got %s (%d):\n%s", p.URL, p.Status, p.Body)
	}
	return b.submit(p, url.Values{"action": {"login"}, "email": {email}, "password": {password}})
}

// returnToAuth0 posts the service's return form to the tenant's /continue,
// as its script does, and returns where the login goes.
func (b *e2eBrowser) returnToAuth0(p e2ePage) e2ePage {
	b.t.Helper()
	if !strings.Contains(p.Body, `name="session_token"`) || !strings.HasPrefix(p.URL, b.d.ServiceURL) {
		b.t.Fatalf("want the service's return form, got %s (%d):\n%s", p.URL, p.Status, p.Body)
	}
	return b.submit(p, nil)
}

// apiCalls returns the Management API requests, the token requests aside.
func (d *confirmDeployment) apiCalls() int { return d.Tenant.Mgmt.APIRequests() }

func (d *confirmDeployment) user(id string) (linking.User, bool) {
	for _, u := range d.Tenant.Flow.Tenant.Users() {
		if u.ID == id {
			return u, true
		}
	}
	return linking.User{}, false
}

// TestEndToEnd_ConfirmLinks: the seed person signs in with an email code;
// her password account was never verified, so the Action sends her to the
// consent page; she chooses Link, the tenant asks for the password account's
// password even though she has a session there, she gives it, and the login
// ends as the password user, which now holds the email identity. The
// Management API sees what an automatic link costs: one lookup, one link.
// The return token travels in no URL, and posting it again does nothing.
func TestEndToEnd_ConfirmLinks(t *testing.T) {
	d := deployConfirm(t, linking.Policy{Confirm: linking.ConfirmRefused}, janeUnverifiedDB, bobE2E)
	b := d.newBrowser(t)

	// An earlier password login gives the browser a session at the tenant:
	// the proof must not ride on it.
	pw := d.startLogin("Username-Password-Authentication")
	if p := b.passwordLogin(b.open(pw.URL), "jane@example.com", janePassword); p.Away == nil || d.subject(t, pw, p.Away) != janeUnverifiedDB.ID {
		t.Fatalf("the earlier password login did not end as %s: %+v", janeUnverifiedDB.ID, p)
	}
	apiBefore, svcBefore := d.apiCalls(), d.ServiceRequests.Load()

	a, consent := b.toConsent()
	if !strings.Contains(consent.Body, "You already have an account with jane@example.com: a password account created") {
		t.Errorf("the consent page does not describe the account:\n%s", consent.Body)
	}
	proof := b.choose(consent, "link")
	if !strings.HasPrefix(proof.URL, d.Tenant.URL+"/authorize?") {
		t.Fatalf("Link: got %s, want the tenant's login page: the session must not prove the account", proof.URL)
	}
	ret := b.passwordLogin(proof, "jane@example.com", janePassword)
	back := b.returnToAuth0(ret)
	if back.Away == nil {
		t.Fatalf("the login did not go back to the application: %s (%d)\n%s", back.URL, back.Status, back.Body)
	}
	if got := d.subject(t, a, back.Away); got != janeUnverifiedDB.ID {
		t.Errorf("the login ended as %q, want %q", got, janeUnverifiedDB.ID)
	}
	u, ok := d.user(janeUnverifiedDB.ID)
	if !ok || len(u.Identities) != 2 || u.Identities[1].Provider != "email" {
		t.Errorf("the password user: %+v, want it holding the email identity", u)
	}
	if got := d.apiCalls() - apiBefore; got != 2 {
		t.Errorf("Management API calls: got %d, want 2 (one lookup, one link)", got)
	}
	if got := d.ServiceRequests.Load() - svcBefore; got != 1 {
		t.Errorf("requests to the decision endpoint: got %d, want 1 (the proof login is skipped)", got)
	}

	// The return token is in no URL the browser was sent to.
	token := regexp.MustCompile(`name="session_token" value="([^"]+)"`).FindStringSubmatch(ret.Body)[1]
	for _, v := range b.visited {
		if strings.Contains(v, token) {
			t.Errorf("the return token is in a URL: %s", v)
		}
	}
	// Posted again, it resumes nothing: the transaction's state was used.
	if again := b.returnToAuth0(ret); again.Away != nil || again.Status != http.StatusBadRequest {
		t.Errorf("the return form posted again: got %d, away %v; want 400 from the tenant", again.Status, again.Away)
	}
	if got := d.apiCalls() - apiBefore; got != 2 {
		t.Errorf("Management API calls after the replay: got %d, want 2", got)
	}
}

// TestEndToEnd_ConfirmNotNow: "Not now" ends the login as the passwordless
// user, links nothing and remembers nothing: the next login asks again.
func TestEndToEnd_ConfirmNotNow(t *testing.T) {
	d := deployConfirm(t, linking.Policy{Confirm: linking.ConfirmRefused}, janeUnverifiedDB)
	b := d.newBrowser(t)
	a, consent := b.toConsent()
	back := b.returnToAuth0(b.choose(consent, "not_now"))
	if back.Away == nil {
		t.Fatalf("not back to the application: %s (%d)\n%s", back.URL, back.Status, back.Body)
	}
	emailUser := d.subject(t, a, back.Away)
	if !strings.HasPrefix(emailUser, "email|") {
		t.Errorf("the login ended as %q, want the passwordless user", emailUser)
	}
	if u, _ := d.user(janeUnverifiedDB.ID); len(u.Identities) != 1 {
		t.Errorf("the password user holds %d identities, want 1", len(u.Identities))
	}
	if u, _ := d.user(emailUser); len(u.AppMetadata) != 0 {
		t.Errorf("the passwordless user's app_metadata: %v, want none", u.AppMetadata)
	}
	// The next login (silent, on the tenant's session) is asked again.
	b.onConsentPage(b.open(d.startLogin("email").URL))
}

// TestEndToEnd_ConfirmDeclined: "This isn't mine" ends the login as the
// passwordless user and remembers the declined account in its
// app_metadata; the next login is not sent to the consent page.
func TestEndToEnd_ConfirmDeclined(t *testing.T) {
	d := deployConfirm(t, linking.Policy{Confirm: linking.ConfirmRefused}, janeUnverifiedDB)
	b := d.newBrowser(t)
	a, consent := b.toConsent()
	back := b.returnToAuth0(b.choose(consent, "decline"))
	if back.Away == nil {
		t.Fatalf("not back to the application: %s (%d)\n%s", back.URL, back.Status, back.Body)
	}
	emailUser := d.subject(t, a, back.Away)
	u, _ := d.user(emailUser)
	marker, _ := u.AppMetadata["linking"].(map[string]any)
	if declined, _ := marker["declined"].([]any); len(declined) != 1 || declined[0] != janeUnverifiedDB.ID {
		t.Errorf("app_metadata.linking: %v, want declined [%s]", marker, janeUnverifiedDB.ID)
	}
	// The next login (silent, on the tenant's session) is not.
	a = d.startLogin("email")
	if p := b.open(a.URL); p.Away == nil || d.subject(t, a, p.Away) != emailUser {
		t.Errorf("the next login: got %s (%d), away %v; want straight back to the application as %s", p.URL, p.Status, p.Away, emailUser)
	}
}

// TestEndToEnd_ConfirmWrongAccount: at the proof's login page the person
// signs in to another account (Bob's); the service refuses it, links
// nothing, and shows the consent page again; "Not now" then ends the login
// as the passwordless user.
func TestEndToEnd_ConfirmWrongAccount(t *testing.T) {
	d := deployConfirm(t, linking.Policy{Confirm: linking.ConfirmRefused}, janeUnverifiedDB, bobE2E)
	b := d.newBrowser(t)
	a, consent := b.toConsent()
	again := b.passwordLogin(b.choose(consent, "link"), "bob@example.com", bobPassword)
	b.onConsentPage(again)
	if !strings.Contains(again.Body, "You signed in to another account") {
		t.Errorf("no notice on the consent page:\n%s", again.Body)
	}
	for _, id := range []string{janeUnverifiedDB.ID, bobE2E.ID} {
		if u, _ := d.user(id); len(u.Identities) != 1 {
			t.Errorf("%s holds %d identities, want 1", id, len(u.Identities))
		}
	}
	back := b.returnToAuth0(b.choose(again, "not_now"))
	if back.Away == nil || !strings.HasPrefix(d.subject(t, a, back.Away), "email|") {
		t.Errorf("after Not now: got %s (%d), away %v; want the passwordless user", back.URL, back.Status, back.Away)
	}
}

// TestEndToEnd_ConfirmMFANotDone: the account requires MFA and the person
// does not pass it: the tenant answers the proof with an error, which proves
// nothing.
func TestEndToEnd_ConfirmMFANotDone(t *testing.T) {
	d := deployConfirm(t, linking.Policy{Confirm: linking.ConfirmRefused}, janeUnverifiedDB)
	b := d.newBrowser(t)
	_, consent := b.toConsent()
	d.Tenant.Script(postlogintest.Outcome{MFA: postlogintest.MFAFailed})
	again := b.passwordLogin(b.choose(consent, "link"), "jane@example.com", janePassword)
	b.onConsentPage(again)
	if !strings.Contains(again.Body, "We could not confirm that sign-in") {
		t.Errorf("no notice on the consent page:\n%s", again.Body)
	}
	if u, _ := d.user(janeUnverifiedDB.ID); len(u.Identities) != 1 {
		t.Errorf("the password user holds %d identities, want 1", len(u.Identities))
	}
}

// TestEndToEnd_ConfirmReturnTokenBoundToState: a return token posted with
// another login's state is refused by validateToken in that login, which
// the Action denies; the token's own login still completes with it.
func TestEndToEnd_ConfirmReturnTokenBoundToState(t *testing.T) {
	d := deployConfirm(t, linking.Policy{Confirm: linking.ConfirmRefused}, janeUnverifiedDB)
	alice, other := d.newBrowser(t), d.newBrowser(t)
	a, consent := alice.toConsent()
	ret := alice.choose(consent, "not_now")

	other.toConsent()
	var otherState string
	for _, v := range other.visited {
		if u, _ := url.Parse(v); u != nil && u.Path == postlogin.ConfirmPath && u.Query().Has("state") {
			otherState = u.Query().Get("state")
		}
	}
	if otherState == "" {
		t.Fatalf("the other login's state was not seen: %v", other.visited)
	}
	token := regexp.MustCompile(`name="session_token" value="([^"]+)"`).FindStringSubmatch(ret.Body)[1]
	res := other.do(http.MethodPost, d.Tenant.URL+"/continue?state="+url.QueryEscape(otherState),
		url.Values{"state": {otherState}, "session_token": {html.UnescapeString(token)}})
	if res.Away == nil || res.Away.Query().Get("error") != "access_denied" || res.Away.Query().Get("code") != "" {
		t.Errorf("the other login with this token: got %s (%d), away %v; want denied", res.URL, res.Status, res.Away)
	}
	back := alice.returnToAuth0(ret)
	if back.Away == nil || !strings.HasPrefix(d.subject(t, a, back.Away), "email|") {
		t.Errorf("the token's own login: got %s (%d), away %v; want it to go on", back.URL, back.Status, back.Away)
	}
}

// TestEndToEnd_ConfirmSilentLogin: a login that cannot redirect
// (prompt=none) does not accept confirm: the service answers by the
// automatic rule, which links nothing here, the login goes on as the
// passwordless user, and nothing is remembered, so that the next
// interactive login still offers the proof.
func TestEndToEnd_ConfirmSilentLogin(t *testing.T) {
	d := deployConfirm(t, linking.Policy{Confirm: linking.ConfirmRefused}, janeUnverifiedDB)
	b := d.newBrowser(t)
	_, consent := b.toConsent()
	if back := b.returnToAuth0(b.choose(consent, "not_now")); back.Away == nil {
		t.Fatalf("not back to the application: %s (%d)", back.URL, back.Status)
	}

	a := d.startLogin("email")
	a.URL += "&prompt=none"
	p := b.open(a.URL)
	if p.Away == nil {
		t.Fatalf("the silent login stopped at %s (%d):\n%s", p.URL, p.Status, p.Body)
	}
	emailUser := d.subject(t, a, p.Away)
	if u, _ := d.user(emailUser); !strings.HasPrefix(emailUser, "email|") || len(u.AppMetadata) != 0 {
		t.Errorf("the silent login ended as %q with app_metadata %v; want the passwordless user, nothing remembered", emailUser, u.AppMetadata)
	}
	b.onConsentPage(b.open(d.startLogin("email").URL))
}

// TestEndToEnd_ConfirmRequireMFA: with RequireMFA, a proof login without a
// second factor (amr without "mfa") is refused; with one, it links.
func TestEndToEnd_ConfirmRequireMFA(t *testing.T) {
	d := deployConfirmWith(t, linking.Policy{Confirm: linking.ConfirmRefused},
		func(c *postlogin.ConfirmConfig) { c.RequireMFA = true }, janeUnverifiedDB)
	b := d.newBrowser(t)
	a, consent := b.toConsent()
	d.Tenant.Script(postlogintest.Outcome{MFA: postlogintest.MFANone})
	again := b.passwordLogin(b.choose(consent, "link"), "jane@example.com", janePassword)
	b.onConsentPage(again)
	if u, _ := d.user(janeUnverifiedDB.ID); len(u.Identities) != 1 {
		t.Fatalf("linked without MFA: %+v", u)
	}
	d.Tenant.Script(postlogintest.Outcome{MFA: postlogintest.MFAPassed})
	back := b.returnToAuth0(b.passwordLogin(b.choose(again, "link"), "jane@example.com", janePassword))
	if back.Away == nil || d.subject(t, a, back.Away) != janeUnverifiedDB.ID {
		t.Errorf("with MFA: got %s (%d), away %v; want the login to end as %s", back.URL, back.Status, back.Away, janeUnverifiedDB.ID)
	}
}

// TestEndToEnd_ConfirmKeyRotation: the tenant rotates its signing key (and
// retires the old one) between two proofs; the service, which cached the
// old key at the first, fetches the new one and accepts the second.
func TestEndToEnd_ConfirmKeyRotation(t *testing.T) {
	d := deployConfirm(t, linking.Policy{Confirm: linking.ConfirmRefused}, janeUnverifiedDB, bobE2E)
	b := d.newBrowser(t)
	a, consent := b.toConsent()
	// A first proof, of the wrong account, makes the service fetch the key.
	again := b.passwordLogin(b.choose(consent, "link"), "bob@example.com", bobPassword)
	b.onConsentPage(again)
	old := d.Tenant.KeyIDs()
	if _, err := d.Tenant.RotateKey(); err != nil {
		t.Fatal(err)
	}
	for _, kid := range old {
		if err := d.Tenant.RetireKey(kid); err != nil {
			t.Fatal(err)
		}
	}
	back := b.returnToAuth0(b.passwordLogin(b.choose(again, "link"), "jane@example.com", janePassword))
	if back.Away == nil || d.subject(t, a, back.Away) != janeUnverifiedDB.ID {
		t.Errorf("after the rotation: got %s (%d), away %v; want the login to end as %s", back.URL, back.Status, back.Away, janeUnverifiedDB.ID)
	}
}
