package postlogin_test

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/postlogin"
)

// unverifiedDB is a password account with Jane's email, never verified:
// the automatic rule never links into it; a proof may.
func unverifiedDB() linking.User {
	u := existing()
	u.EmailVerified = false
	u.CreatedAt = time.Date(2024, 3, 2, 10, 0, 0, 0, time.UTC)
	return u
}

// secondDB is another password account with Jane's email, in another
// database connection, never verified.
func secondDB() linking.User {
	return linking.User{
		ID: "auth0|77aa", Email: "jane@example.com",
		Identities: []linking.Identity{{Provider: "auth0", UserID: "77aa", Connection: "Legacy-DB"}},
	}
}

// offer asks the service about Jane's passwordless login and returns the
// accounts it offers.
func (e *confirmEnv) offer(t *testing.T) []postlogin.User {
	t.Helper()
	resp := e.ask(t, passwordless(), postlogin.ActionConfirm)
	if resp.Action != postlogin.ActionConfirm || len(resp.Candidates) == 0 {
		t.Fatalf("answer: got %s/%s with %d candidates, want confirm", resp.Action, resp.Reason, len(resp.Candidates))
	}
	return resp.Candidates
}

// TestConfirm_LinksAfterProof: the seed person signs in with an email code;
// the service offers the unverified password account; she chooses Link,
// signs in to it, and the browser goes back to Auth0 with a token that says
// linked, for her login's transaction; the tenant holds the link; the whole
// confirm costs one lookup and one link, as an automatic link does.
func TestConfirm_LinksAfterProof(t *testing.T) {
	db := unverifiedDB()
	e := newConfirmEnv(t, linking.Policy{}, nil, db, passwordless())
	candidates := e.offer(t)
	want := []postlogin.User{{
		UserID: db.ID, Email: db.Email, EmailVerified: false, CreatedAt: db.CreatedAt,
		Identities: []postlogin.Identity{{Provider: "auth0", UserID: "63d1", Connection: "Username-Password-Authentication"}},
	}}
	if diff := cmp.Diff(want, candidates); diff != "" {
		t.Fatalf("candidates (-want +got):\n%s", diff)
	}

	page, csrf := e.open(t, e.browser, confirmToken(t, e.confirmClaims(passwordless(), candidates)), "auth0-state-1")
	if !strings.Contains(page, "You already have an account with jane@example.com: a password account created March 2024. Link it to this sign-in?") {
		t.Errorf("the consent page does not describe the account:\n%s", page)
	}
	req := e.choose(t, e.browser, csrf, "0")
	res := e.prove(t, e.browser, req, e.op.sign(t, e.op.claimsFor(req, db.ID, db.Email)))
	page = readBody(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("callback: got %d, want 200 with the return form\n%s\nlog: %s", res.StatusCode, page, e.log)
	}
	method, action, fields := continueForm(t, page)
	if method != "post" || action != e.op.srv.URL+"/continue?state=auth0-state-1" || fields.Get("state") != "auth0-state-1" {
		t.Errorf("return form: %s %s %v, want post to the tenant's /continue with the state", method, action, fields)
	}
	ct := continueToken(t, page)
	if ct.Outcome != postlogin.OutcomeLinked || ct.PrimaryUserID != db.ID || ct.Subject != "email|6f1c" ||
		ct.State != "auth0-state-1" || ct.Type != postlogin.TokenTypeContinue {
		t.Errorf("return token: %+v, want linked into %s for email|6f1c and state auth0-state-1", ct, db.ID)
	}
	if users := e.tenant.Users(); len(users) != 1 || users[0].ID != db.ID || len(users[0].Identities) != 2 {
		t.Errorf("tenant: %+v, want %s holding both identities", users, db.ID)
	}
	if diff := cmp.Diff(linkingtest.Calls{linkingtest.MethodUsersByEmail: 1, linkingtest.MethodLink: 1}, e.tenant.Calls()); diff != "" {
		t.Errorf("Management API calls (-want +got):\n%s", diff)
	}
}

// TestConfirm_AuthorizationRequest: the proof is an authorization code
// flow with PKCE (S256), state and nonce, for a fresh login (prompt=login,
// max_age=0) to exactly the chosen account's connection, back to the
// service's callback; RequireMFA asks for MFA.
func TestConfirm_AuthorizationRequest(t *testing.T) {
	for _, mfa := range []bool{false, true} {
		e := newConfirmEnv(t, linking.Policy{}, func(c *postlogin.ConfirmConfig) { c.RequireMFA = mfa }, unverifiedDB(), secondDB(), passwordless())
		candidates := e.offer(t)
		_, csrf := e.open(t, e.browser, confirmToken(t, e.confirmClaims(passwordless(), candidates)), "s")
		req := e.choose(t, e.browser, csrf, "1") // auth0|77aa, sorted second
		for key, want := range map[string]string{
			"response_type": "code", "client_id": linkingClientID, "redirect_uri": e.svc.URL + postlogin.CallbackPath,
			"scope": "openid email", "code_challenge_method": "S256", "prompt": "login", "max_age": "0",
			"connection": "Legacy-DB", "login_hint": "jane@example.com",
		} {
			if got := req.Get(key); got != want {
				t.Errorf("mfa %v: %s: got %q, want %q", mfa, key, got, want)
			}
		}
		for _, key := range []string{"state", "nonce", "code_challenge"} {
			if len(req.Get(key)) < 20 {
				t.Errorf("mfa %v: %s %q is missing or short", mfa, key, req.Get(key))
			}
		}
		if got := req.Has("acr_values"); got != mfa {
			t.Errorf("mfa %v: acr_values sent: %v", mfa, got)
		}
	}
}

// TestConfirm_ConfirmTokenRefused: the consent page opens only for a token
// the Action made for this direction: HS256 with the confirm secret, the
// tenant's iss, typ confirm, a short expiry, sub the login's user, a
// candidate; once. A refused arrival sets no cookie and links nothing.
func TestConfirm_ConfirmTokenRefused(t *testing.T) {
	e := newConfirmEnv(t, linking.Policy{}, nil, unverifiedDB(), passwordless())
	candidates := e.offer(t)
	good := e.confirmClaims(passwordless(), candidates)
	with := func(key string, v any) map[string]any {
		c := map[string]any{}
		for k, x := range good {
			c[k] = x
		}
		if v == nil {
			delete(c, key)
		} else {
			c[key] = v
		}
		return c
	}
	hs256 := func(key string, claims map[string]any) string {
		return signJWT(t, jose.SigningKey{Algorithm: jose.HS256, Key: []byte(key)}, "", claims)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	returned := map[string]any{"iss": e.svc.URL, "sub": "email|6f1c", "state": "s", "iat": now, "exp": now + 60,
		"typ": postlogin.TokenTypeContinue, "outcome": "linked", "primary_user_id": "auth0|63d1"}

	tests := []struct {
		name, token, state string
	}{
		{"alg none", unsignedJWT(t, good), "s"},
		{"RS256 instead of HS256", signJWT(t, jose.SigningKey{Algorithm: jose.RS256, Key: rsaKey}, "", good), "s"},
		{"HS512", signJWT(t, jose.SigningKey{Algorithm: jose.HS512, Key: []byte(confirmSecret + confirmSecret)}, "", good), "s"},
		{"signed with LINKING_SECRET", hs256(string(secret), good), "s"},
		{"signed with the continue secret", hs256(continueSecret, good), "s"},
		{"a return token, with the continue secret", hs256(continueSecret, returned), "s"},
		{"a return token's claims, with the confirm secret", hs256(confirmSecret, returned), "s"},
		{"typ of the other direction", confirmToken(t, with("typ", postlogin.TokenTypeContinue)), "s"},
		{"no typ", confirmToken(t, with("typ", nil)), "s"},
		{"another tenant", confirmToken(t, with("iss", "evil.example.com")), "s"},
		{"the issuer URL instead of the domain", confirmToken(t, with("iss", e.op.issuer())), "s"},
		{"expired", confirmToken(t, with("exp", now-60)), "s"},
		{"no exp", confirmToken(t, with("exp", nil)), "s"},
		{"valid for a day", confirmToken(t, with("exp", now+86400)), "s"},
		{"issued in the future", confirmToken(t, with("iat", now+3600)), "s"},
		{"sub is another user", confirmToken(t, with("sub", "email|other")), "s"},
		{"no candidate", confirmToken(t, with("candidates", []postlogin.User{})), "s"},
		{"the login offered to itself", confirmToken(t, with("candidates", []postlogin.User{{UserID: "email|6f1c"}})), "s"},
		{"a login without its identity", confirmToken(t, with("login", postlogin.Request{Version: 1, User: postlogin.User{UserID: "email|6f1c"}, Connection: postlogin.Connection{Name: "email", Strategy: "email"}})), "s"},
		{"no state", confirmToken(t, good), ""},
		{"garbage", "not.a.jwt", "s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			browser := e.newBrowser(t)
			res := e.arrive(t, browser, tt.token, tt.state)
			body := readBody(t, res)
			if res.StatusCode != http.StatusBadRequest {
				t.Errorf("got %d, want 400\n%s", res.StatusCode, body)
			}
			if len(res.Cookies()) != 0 {
				t.Errorf("cookies set: %v", res.Cookies())
			}
			if res := e.get(t, browser, e.svc.URL+postlogin.ConfirmPath); res.StatusCode != http.StatusBadRequest {
				t.Errorf("a consent page without a flow: got %d, want 400", res.StatusCode)
			}
		})
	}

	t.Run("used twice", func(t *testing.T) {
		token := confirmToken(t, good)
		e.open(t, e.newBrowser(t), token, "s")
		res := e.arrive(t, e.newBrowser(t), token, "s")
		if body := readBody(t, res); res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used") {
			t.Errorf("second use: got %d, want 400 already used\n%s", res.StatusCode, body)
		}
	})
	if n := e.linkCalls(); n != 0 {
		t.Errorf("link calls: got %d, want 0", n)
	}
}

// TestConfirm_FlowCookie: the flow is bound to a __Host- cookie, Secure,
// HttpOnly, SameSite=Lax, Path=/; the token leaves the address bar at once;
// a HEAD does not spend it.
func TestConfirm_FlowCookie(t *testing.T) {
	e := newConfirmEnv(t, linking.Policy{}, nil, unverifiedDB(), passwordless())
	token := confirmToken(t, e.confirmClaims(passwordless(), e.offer(t)))
	// A HEAD, as a link preview sends, does not spend the token.
	head, err := e.newBrowser(t).Head(e.svc.URL + postlogin.ConfirmPath + "?" + url.Values{"session_token": {token}, "state": {"s"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if readBody(t, head); len(head.Cookies()) != 0 {
		t.Errorf("a HEAD opened a flow: %v", head.Cookies())
	}
	res := e.arrive(t, e.browser, token, "s")
	readBody(t, res)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != postlogin.ConfirmPath {
		t.Fatalf("got %d to %q, want 303 to %s", res.StatusCode, res.Header.Get("Location"), postlogin.ConfirmPath)
	}
	cookies := res.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies: %v, want one", cookies)
	}
	c := cookies[0]
	if c.Name != postlogin.FlowCookie || !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || !c.HttpOnly ||
		c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" || c.MaxAge <= 0 {
		t.Errorf("cookie %+v, want __Host-, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain", c)
	}
	for _, h := range []string{"Cache-Control", "Referrer-Policy"} {
		if res.Header.Get(h) == "" {
			t.Errorf("the arrival has no %s", h)
		}
	}
}

// TestConfirm_CSRF: the consent form counts only with the flow's CSRF token
// and the flow's cookie; a forged post changes nothing, and the person's
// flow goes on.
func TestConfirm_CSRF(t *testing.T) {
	e := newConfirmEnv(t, linking.Policy{}, nil, unverifiedDB(), passwordless())
	_, csrf := e.open(t, e.browser, confirmToken(t, e.confirmClaims(passwordless(), e.offer(t))), "s")

	tests := []struct {
		name    string
		browser *http.Client
		form    url.Values
		status  int
	}{
		{"no csrf", e.browser, url.Values{"choice": {"not_now"}}, http.StatusForbidden},
		{"wrong csrf", e.browser, url.Values{"choice": {"decline"}, "csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAA"}}, http.StatusForbidden},
		{"the csrf in the query", e.browser, nil, http.StatusForbidden},
		{"another site's post: no cookie", e.newBrowser(t), url.Values{"choice": {"decline"}, "csrf": {csrf}}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res *http.Response
			if tt.form == nil {
				r, err := tt.browser.PostForm(e.svc.URL+postlogin.ConfirmPath+"?csrf="+url.QueryEscape(csrf), url.Values{"choice": {"decline"}})
				if err != nil {
					t.Fatal(err)
				}
				res = r
			} else {
				res = e.post(t, tt.browser, tt.form)
			}
			body := readBody(t, res)
			if res.StatusCode != tt.status || strings.Contains(body, "session_token") {
				t.Errorf("got %d, want %d and no return form\n%s", res.StatusCode, tt.status, body)
			}
		})
	}
	// The flow is intact: the person can still decide.
	res := e.post(t, e.browser, url.Values{"choice": {"not_now"}, "csrf": {csrf}})
	if page := readBody(t, res); res.StatusCode != http.StatusOK || continueToken(t, page).Outcome != postlogin.OutcomeNotNow {
		t.Errorf("the person's own post: got %d\n%s", res.StatusCode, page)
	}
}

// TestConfirm_TamperedFormFieldsIgnored: what matters is in the server-side
// flow: extra fields that name another account, another state or a URL
// change nothing; an account index outside the offer is refused.
func TestConfirm_TamperedFormFieldsIgnored(t *testing.T) {
	db := unverifiedDB()
	e := newConfirmEnv(t, linking.Policy{}, nil, db, passwordless())
	_, csrf := e.open(t, e.browser, confirmToken(t, e.confirmClaims(passwordless(), e.offer(t))), "s")
	for _, account := range []string{"1", "-1", "x", "auth0|other"} {
		res := e.post(t, e.browser, url.Values{"csrf": {csrf}, "choice": {"link"}, "account": {account}})
		if body := readBody(t, res); res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
			t.Errorf("account %q: got %d to %q, want 400\n%s", account, res.StatusCode, res.Header.Get("Location"), body)
		}
	}
	res := e.post(t, e.browser, url.Values{
		"csrf": {csrf}, "choice": {"link"}, "account": {"0"},
		"user_id": {"auth0|victim"}, "login_hint": {"victim@example.com"}, "connection": {"Other"},
		"state": {"evil"}, "redirect_uri": {"https://evil.example/cb"}, "primary_user_id": {"auth0|victim"},
	})
	readBody(t, res)
	loc, _ := url.Parse(res.Header.Get("Location"))
	if q := loc.Query(); res.StatusCode != http.StatusSeeOther || q.Get("login_hint") != db.Email ||
		q.Get("connection") != "Username-Password-Authentication" || q.Get("redirect_uri") != e.svc.URL+postlogin.CallbackPath {
		t.Fatalf("got %d to %s, want the proof of %s", res.StatusCode, loc, db.ID)
	}
	res = e.prove(t, e.browser, loc.Query(), e.op.sign(t, e.op.claimsFor(loc.Query(), db.ID, db.Email)))
	page := readBody(t, res)
	if ct := continueToken(t, page); ct.State != "s" || ct.PrimaryUserID != db.ID {
		t.Errorf("return token %+v, want state s and primary %s", ct, db.ID)
	}
}

// TestConfirm_NotNowAndDecline: "Not now" and "This isn't mine" go back to
// Auth0 without a link: not_now, or declined with the accounts offered.
func TestConfirm_NotNowAndDecline(t *testing.T) {
	for _, tt := range []struct {
		choice, outcome string
		declined        []string
	}{
		{"not_now", postlogin.OutcomeNotNow, nil},
		{"decline", postlogin.OutcomeDeclined, []string{"auth0|63d1", "auth0|77aa"}},
	} {
		t.Run(tt.choice, func(t *testing.T) {
			e := newConfirmEnv(t, linking.Policy{}, nil, unverifiedDB(), secondDB(), passwordless())
			page, csrf := e.open(t, e.browser, confirmToken(t, e.confirmClaims(passwordless(), e.offer(t))), "st")
			if !strings.Contains(page, "None of these are mine") || !strings.Contains(page, `type="radio"`) {
				t.Errorf("with two accounts, the page has no choice between them:\n%s", page)
			}
			res := e.post(t, e.browser, url.Values{"csrf": {csrf}, "choice": {tt.choice}})
			page = readBody(t, res)
			ct := continueToken(t, page)
			if ct.Outcome != tt.outcome || ct.PrimaryUserID != "" || !cmp.Equal(ct.Declined, tt.declined) || ct.State != "st" {
				t.Errorf("return token %+v, want %s declining %v", ct, tt.outcome, tt.declined)
			}
			if n := e.linkCalls(); n != 0 {
				t.Errorf("link calls: got %d, want 0", n)
			}
			// The flow is over: the form cannot be sent again.
			res = e.post(t, e.browser, url.Values{"csrf": {csrf}, "choice": {"link"}})
			if readBody(t, res); res.StatusCode != http.StatusBadRequest {
				t.Errorf("the form sent again: got %d, want 400", res.StatusCode)
			}
		})
	}
}

// TestConfirm_ReturnPage: the return token travels in the body of a POST
// to the tenant's /continue, never in a URL or a Location header; it is
// signed with the continue secret only, short-lived, and the page cannot
// be framed or cached, nor run any script but its own.
func TestConfirm_ReturnPage(t *testing.T) {
	e := newConfirmEnv(t, linking.Policy{}, nil, unverifiedDB(), passwordless())
	_, csrf := e.open(t, e.browser, confirmToken(t, e.confirmClaims(passwordless(), e.offer(t))), "s")
	res := e.post(t, e.browser, url.Values{"csrf": {csrf}, "choice": {"not_now"}})
	page := readBody(t, res)
	_, action, fields := continueForm(t, page)
	token := fields.Get("session_token")
	if res.Header.Get("Location") != "" || strings.Contains(action, token) || strings.Contains(action, "session_token") {
		t.Errorf("the token is in a URL: Location %q, action %q", res.Header.Get("Location"), action)
	}
	if !strings.Contains(page, `<button class="primary" type="submit">Continue</button>`) {
		t.Errorf("no button for a browser without JavaScript:\n%s", page)
	}
	ct := continueToken(t, page)
	if life := time.Duration(ct.Expiry-ct.IssuedAt) * time.Second; life != postlogin.ContinueTokenLifetime || ct.ID == "" || ct.Issuer != e.svc.URL {
		t.Errorf("return token %+v: lifetime %v, want %v, an id and the service as issuer", ct, life, postlogin.ContinueTokenLifetime)
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	// A form-action would block the tenant's redirect to the application
	// after the return form (TestBrowser_Confirm).
	if strings.Contains(csp, "form-action") {
		t.Errorf("Content-Security-Policy %q has a form-action", csp)
	}
	for h, want := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("%s: got %q, want %q", h, got, want)
		}
	}
	for _, c := range res.Cookies() {
		if c.Name == postlogin.FlowCookie && c.MaxAge >= 0 {
			t.Errorf("the flow cookie is not cleared: %+v", c)
		}
	}
}

// TestConfirm_NoOpenRedirect: whatever the parameters, the service sends
// browsers only to its own pages and to the tenant: Auth0's state is data,
// never a destination, and a discovery document that points elsewhere is
// refused.
func TestConfirm_NoOpenRedirect(t *testing.T) {
	db := unverifiedDB()
	e := newConfirmEnv(t, linking.Policy{}, nil, db, passwordless())
	candidates := e.offer(t)
	state := `https://evil.example/"><script>alert(1)</script>`
	_, csrf := e.open(t, e.browser, confirmToken(t, e.confirmClaims(passwordless(), candidates)), state)
	req := e.choose(t, e.browser, csrf, "0")
	res := e.prove(t, e.browser, req, e.op.sign(t, e.op.claimsFor(req, db.ID, db.Email)))
	page := readBody(t, res)
	if strings.Contains(page, "<script>alert") {
		t.Errorf("the state is not escaped:\n%s", page)
	}
	_, action, fields := continueForm(t, page)
	if u, err := url.Parse(action); err != nil || u.Scheme+"://"+u.Host != e.op.srv.URL || u.Path != "/continue" || u.Query().Get("state") != state {
		t.Errorf("the return form posts to %q, want the tenant's /continue with the state", action)
	}
	if fields.Get("state") != state {
		t.Errorf("state field %q, want %q", fields.Get("state"), state)
	}
	for _, path := range []string{
		postlogin.ConfirmPath + "?redirect_uri=https://evil.example", postlogin.ConfirmPath + "?next=https://evil.example",
		postlogin.CallbackPath + "?redirect_uri=https://evil.example&state=x&code=y",
	} {
		res := e.get(t, e.newBrowser(t), e.svc.URL+path)
		if readBody(t, res); res.Header.Get("Location") != "" {
			t.Errorf("GET %s redirects to %q", path, res.Header.Get("Location"))
		}
	}

	t.Run("an authorization endpoint elsewhere", func(t *testing.T) {
		e := newConfirmEnv(t, linking.Policy{}, nil, unverifiedDB(), passwordless())
		e.op.authURL = "https://evil.example/authorize"
		_, csrf := e.open(t, e.browser, confirmToken(t, e.confirmClaims(passwordless(), e.offer(t))), "s")
		res := e.post(t, e.browser, url.Values{"csrf": {csrf}, "choice": {"link"}})
		if readBody(t, res); res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Location") != "" {
			t.Errorf("got %d to %q, want 503 and no redirect", res.StatusCode, res.Header.Get("Location"))
		}
	})
}

// TestConfirm_ProofPitfalls: the invariant at the service — a link is made
// only on a fresh proof of exactly the chosen account. Each way a proof can
// be wrong sends the person back to the consent page with a notice, and
// nothing is linked; the valid proof that follows links.
func TestConfirm_ProofPitfalls(t *testing.T) {
	db := unverifiedDB()
	other := secondDB()
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	type proofCase struct {
		name string
		// callback returns the callback's query for the authorization
		// request req.
		callback func(e *confirmEnv, req url.Values) url.Values
		notice   string
	}
	token := func(mutate func(c map[string]any)) func(e *confirmEnv, req url.Values) url.Values {
		return func(e *confirmEnv, req url.Values) url.Values {
			c := e.op.claimsFor(req, db.ID, db.Email)
			mutate(c)
			return url.Values{"code": {e.op.issue(req, e.op.sign(t, c))}, "state": {req.Get("state")}}
		}
	}
	raw := func(sign func(e *confirmEnv, c map[string]any) string) func(e *confirmEnv, req url.Values) url.Values {
		return func(e *confirmEnv, req url.Values) url.Values {
			return url.Values{"code": {e.op.issue(req, sign(e, e.op.claimsFor(req, db.ID, db.Email)))}, "state": {req.Get("state")}}
		}
	}
	notProven := "We could not confirm that sign-in"
	tests := []proofCase{
		{"proving a different account than the one chosen", token(func(c map[string]any) { c["sub"] = other.ID }), "You signed in to another account"},
		{"email equality is not proof: another account with the same email", token(func(c map[string]any) { c["sub"] = "google-oauth2|1234" }), "You signed in to another account"},
		{"the login's own user", token(func(c map[string]any) { c["sub"] = "email|6f1c" }), "You signed in to another account"},
		{"silent SSO: auth_time before the proof began", token(func(c map[string]any) { c["auth_time"] = time.Now().Add(-10 * time.Minute).Unix() }), notProven},
		{"no auth_time", token(func(c map[string]any) { delete(c, "auth_time") }), notProven},
		{"nonce of another request", token(func(c map[string]any) { c["nonce"] = "other-nonce" }), notProven},
		{"no nonce", token(func(c map[string]any) { delete(c, "nonce") }), notProven},
		{"issued to another client", token(func(c map[string]any) { c["aud"] = "other-client"; c["azp"] = "other-client" }), notProven},
		{"azp of another client", token(func(c map[string]any) {
			c["aud"] = []string{linkingClientID, "other-client"}
			c["azp"] = "other-client"
		}), notProven},
		{"another issuer", token(func(c map[string]any) { c["iss"] = "https://evil.example/" }), notProven},
		{"expired", token(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), notProven},
		{"alg none", raw(func(e *confirmEnv, c map[string]any) string { return unsignedJWT(t, c) }), notProven},
		{"HS256 keyed with the client secret", raw(func(e *confirmEnv, c map[string]any) string {
			return signJWT(t, jose.SigningKey{Algorithm: jose.HS256, Key: []byte(linkingClientSecret + strings.Repeat("x", 32))}, "", c)
		}), notProven},
		{"signed by a key the tenant does not have", raw(func(e *confirmEnv, c map[string]any) string {
			return signJWT(t, jose.SigningKey{Algorithm: jose.RS256, Key: otherKey}, e.op.kid, c)
		}), notProven},
		{"an error from /authorize (MFA required, not done)", func(e *confirmEnv, req url.Values) url.Values {
			return url.Values{"error": {"access_denied"}, "error_description": {"Multifactor authentication required"}, "state": {req.Get("state")}}
		}, notProven},
		{"no code", func(e *confirmEnv, req url.Values) url.Values { return url.Values{"state": {req.Get("state")}} }, notProven},
		{"a code of no request", func(e *confirmEnv, req url.Values) url.Values {
			return url.Values{"code": {"forged"}, "state": {req.Get("state")}}
		}, notProven},
		{"the state of no proof", func(e *confirmEnv, req url.Values) url.Values {
			return url.Values{"code": {e.op.issue(req, e.op.sign(t, e.op.claimsFor(req, db.ID, db.Email)))}, "state": {"forged"}}
		}, notProven},
		{"a code for another PKCE challenge", func(e *confirmEnv, req url.Values) url.Values {
			other := url.Values{"code_challenge": {"another-challenge"}}
			return url.Values{"code": {e.op.issue(other, e.op.sign(t, e.op.claimsFor(req, db.ID, db.Email)))}, "state": {req.Get("state")}}
		}, notProven},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newConfirmEnv(t, linking.Policy{}, nil, db, other, passwordless())
			_, csrf := e.open(t, e.browser, confirmToken(t, e.confirmClaims(passwordless(), e.offer(t))), "s")
			req := e.choose(t, e.browser, csrf, "0")
			q := tt.callback(e, req)
			res := e.callback(t, e.browser, q)
			body := readBody(t, res)
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != postlogin.ConfirmPath {
				t.Fatalf("callback: got %d to %q, want 303 back to the consent page\n%s", res.StatusCode, res.Header.Get("Location"), body)
			}
			page, _ := e.consent(t, e.browser)
			if !strings.Contains(page, tt.notice) {
				t.Errorf("the consent page lacks the notice %q:\n%s", tt.notice, page)
			}
			if n := e.linkCalls(); n != 0 {
				t.Fatalf("link calls after a bad proof: got %d, want 0", n)
			}
			// The same callback again is no proof either: the proof is spent.
			res = e.callback(t, e.browser, q)
			if readBody(t, res); res.Header.Get("Location") != postlogin.ConfirmPath || e.linkCalls() != 0 {
				t.Fatalf("the callback again: got %d to %q with %d links, want back to the consent page", res.StatusCode, res.Header.Get("Location"), e.linkCalls())
			}
			_, csrf = e.consent(t, e.browser)
			// A good proof of the chosen account still links.
			req = e.choose(t, e.browser, csrf, "0")
			res = e.prove(t, e.browser, req, e.op.sign(t, e.op.claimsFor(req, db.ID, db.Email)))
			if ct := continueToken(t, readBody(t, res)); ct.Outcome != postlogin.OutcomeLinked || ct.PrimaryUserID != db.ID {
				t.Errorf("the good proof after: %+v, want linked into %s", ct, db.ID)
			}
			if n := e.linkCalls(); n != 1 {
				t.Errorf("link calls: got %d, want 1", n)
			}
		})
	}
}

// TestConfirm_ProofReplayedIntoAnotherFlow: a code and state from one
// person's proof, delivered into another flow (another browser, another
// transaction), proves nothing there: the state, the nonce and the PKCE
// verifier are the other flow's.
func TestConfirm_ProofReplayedIntoAnotherFlow(t *testing.T) {
	db := unverifiedDB()
	e := newConfirmEnv(t, linking.Policy{}, nil, db, passwordless())
	candidates := e.offer(t)
	alice, mallory := e.newBrowser(t), e.newBrowser(t)
	claimsM := e.confirmClaims(passwordless(), candidates)
	loginM := requestFor(passwordless())
	loginM.TransactionID = "tx_2"
	claimsM["login"] = loginM
	_, csrfA := e.open(t, alice, confirmToken(t, e.confirmClaims(passwordless(), candidates)), "tx-a")
	_, csrfM := e.open(t, mallory, confirmToken(t, claimsM), "tx-m")
	reqA := e.choose(t, alice, csrfA, "0")
	reqM := e.choose(t, mallory, csrfM, "0")
	codeA := e.op.issue(reqA, e.op.sign(t, e.op.claimsFor(reqA, db.ID, db.Email)))

	for _, tt := range []struct {
		name string
		q    url.Values
	}{
		{"with its own state", url.Values{"code": {codeA}, "state": {reqA.Get("state")}}},
		{"with the other flow's state", url.Values{"code": {codeA}, "state": {reqM.Get("state")}}},
	} {
		res := e.callback(t, mallory, tt.q)
		if readBody(t, res); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != postlogin.ConfirmPath {
			t.Errorf("%s: got %d to %q, want back to the consent page", tt.name, res.StatusCode, res.Header.Get("Location"))
		}
		_, csrf := e.consent(t, mallory)
		reqM = e.choose(t, mallory, csrf, "0")
	}
	// The replayed ID token itself, behind a code for the other flow's
	// challenge: its nonce is the first flow's.
	res := e.prove(t, mallory, reqM, e.op.sign(t, e.op.claimsFor(reqA, db.ID, db.Email)))
	if readBody(t, res); res.Header.Get("Location") != postlogin.ConfirmPath {
		t.Errorf("an ID token with another flow's nonce: got %d to %q, want back to the consent page", res.StatusCode, res.Header.Get("Location"))
	}
	if n := e.linkCalls(); n != 0 {
		t.Errorf("link calls: got %d, want 0", n)
	}
}

// TestConfirm_IdentityLinkedElsewhereIsNotMoved: between the offer and the
// proof, the login's identity was linked into another user. The proof
// does not move it: the login is denied, to be tried again, and the
// identity stays where it is.
func TestConfirm_IdentityLinkedElsewhereIsNotMoved(t *testing.T) {
	db, holder := unverifiedDB(), secondDB()
	e := newConfirmEnv(t, linking.Policy{}, nil, db, holder, passwordless())
	_, csrf := e.open(t, e.browser, confirmToken(t, e.confirmClaims(passwordless(), e.offer(t))), "s")
	login := passwordless()
	if err := e.tenant.Link(t.Context(), holder.ID, login.Identities[0]); err != nil {
		t.Fatal(err)
	}
	req := e.choose(t, e.browser, csrf, "0")
	res := e.prove(t, e.browser, req, e.op.sign(t, e.op.claimsFor(req, db.ID, db.Email)))
	ct := continueToken(t, readBody(t, res))
	if ct.Outcome == postlogin.OutcomeLinked {
		t.Errorf("return token %+v: linked", ct)
	}
	for _, u := range e.tenant.Users() {
		if u.Holds(login.Identities[0]) && u.ID != holder.ID {
			t.Errorf("the identity moved to %s", u.ID)
		}
	}
}

// TestConfirm_ProofRefusedByTheRule: a valid proof of an account whose ID
// token carries another email than the login's is refused by the rule
// (DecideProven): nothing linked, the person may go on without linking.
func TestConfirm_ProofRefusedByTheRule(t *testing.T) {
	db := unverifiedDB()
	e := newConfirmEnv(t, linking.Policy{}, nil, db, passwordless())
	_, csrf := e.open(t, e.browser, confirmToken(t, e.confirmClaims(passwordless(), e.offer(t))), "s")
	req := e.choose(t, e.browser, csrf, "0")
	res := e.prove(t, e.browser, req, e.op.sign(t, e.op.claimsFor(req, db.ID, "changed@example.com")))
	if readBody(t, res); res.Header.Get("Location") != postlogin.ConfirmPath {
		t.Fatalf("got %d to %q, want back to the consent page", res.StatusCode, res.Header.Get("Location"))
	}
	if page, _ := e.consent(t, e.browser); !strings.Contains(page, "This account cannot be linked") {
		t.Errorf("no notice:\n%s", page)
	}
	if n := e.linkCalls(); n != 0 {
		t.Errorf("link calls: got %d, want 0", n)
	}
}

// TestConfirm_RequireMFA: with RequireMFA, a proof whose ID token's amr
// lacks "mfa" is refused.
func TestConfirm_RequireMFA(t *testing.T) {
	db := unverifiedDB()
	for _, tt := range []struct {
		amr    []string
		linked bool
	}{{nil, false}, {[]string{"pwd"}, false}, {[]string{"mfa"}, true}} {
		e := newConfirmEnv(t, linking.Policy{}, func(c *postlogin.ConfirmConfig) { c.RequireMFA = true }, db, passwordless())
		_, csrf := e.open(t, e.browser, confirmToken(t, e.confirmClaims(passwordless(), e.offer(t))), "s")
		req := e.choose(t, e.browser, csrf, "0")
		c := e.op.claimsFor(req, db.ID, db.Email)
		if tt.amr != nil {
			c["amr"] = tt.amr
		}
		res := e.prove(t, e.browser, req, e.op.sign(t, c))
		readBody(t, res)
		if got := e.linkCalls() == 1; got != tt.linked {
			t.Errorf("amr %v: linked %v, want %v", tt.amr, got, tt.linked)
		}
	}
}

// TestHandler_ConfirmAnswer: the decision endpoint answers confirm only to
// a request that accepts it; any other request gets the automatic rule's
// answer, whatever the confirm mode.
func TestHandler_ConfirmAnswer(t *testing.T) {
	verified := secondDB()
	verified.EmailVerified = true
	tests := []struct {
		name       string
		mode       linking.ConfirmMode
		users      []linking.User
		accept     []postlogin.Action
		want       postlogin.Action
		candidates int
	}{
		{"refused: unverified, accepted", linking.ConfirmRefused, []linking.User{unverifiedDB()}, []postlogin.Action{postlogin.ActionConfirm}, postlogin.ActionConfirm, 1},
		{"refused: unverified, not accepted", linking.ConfirmRefused, []linking.User{unverifiedDB()}, nil, postlogin.ActionNone, 0},
		{"refused: ambiguous, accepted", linking.ConfirmRefused, []linking.User{existing(), verified}, []postlogin.Action{postlogin.ActionConfirm}, postlogin.ActionConfirm, 2},
		{"refused: ambiguous, not accepted, denies", linking.ConfirmRefused, []linking.User{existing(), verified}, nil, postlogin.ActionDeny, 0},
		{"refused: eligible links", linking.ConfirmRefused, []linking.User{existing()}, []postlogin.Action{postlogin.ActionConfirm}, postlogin.ActionSetPrimaryUser, 0},
		{"always: eligible, accepted", linking.ConfirmAlways, []linking.User{existing()}, []postlogin.Action{postlogin.ActionConfirm}, postlogin.ActionConfirm, 1},
		{"always: eligible, not accepted, links", linking.ConfirmAlways, []linking.User{existing()}, nil, postlogin.ActionSetPrimaryUser, 0},
		{"an unknown accept", linking.ConfirmAlways, []linking.User{existing()}, []postlogin.Action{"other"}, postlogin.ActionSetPrimaryUser, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newConfirmEnv(t, linking.Policy{Confirm: tt.mode}, nil, append(tt.users, passwordless())...)
			resp := e.ask(t, passwordless(), tt.accept...)
			if resp.Action != tt.want || len(resp.Candidates) != tt.candidates || resp.Remember {
				t.Errorf("got %s/%s with %d candidates (remember %v), want %s with %d", resp.Action, resp.Reason, len(resp.Candidates), resp.Remember, tt.want, tt.candidates)
			}
		})
	}
}

// TestHandler_ConfirmOfferIsBounded: at most MaxCandidates accounts are
// offered.
func TestHandler_ConfirmOfferIsBounded(t *testing.T) {
	var users []linking.User
	for i := range postlogin.MaxCandidates + 2 {
		u := unverifiedDB()
		u.ID = "auth0|" + strings.Repeat("a", i+1)
		u.Identities = []linking.Identity{{Provider: "auth0", UserID: strings.Repeat("a", i+1), Connection: "Username-Password-Authentication"}}
		users = append(users, u)
	}
	e := newConfirmEnv(t, linking.Policy{}, nil, append(users, passwordless())...)
	if got := len(e.offer(t)); got != postlogin.MaxCandidates {
		t.Errorf("candidates: got %d, want %d", got, postlogin.MaxCandidates)
	}
}

// TestNewHandler_ConfirmConfig: a confirm configuration that would not do
// what it says is refused when the Handler is made.
func TestNewHandler_ConfirmConfig(t *testing.T) {
	good := func() postlogin.ConfirmConfig {
		return postlogin.ConfirmConfig{
			Issuer: "https://tenant.example.com/", ClientID: linkingClientID, ClientSecret: linkingClientSecret,
			BaseURL: "https://linking.example.com", ConfirmSecret: []byte(confirmSecret), ContinueSecret: []byte(continueSecret),
		}
	}
	previous := []byte("previous-request-secret-0123456789abcdef")
	tests := []struct {
		name   string
		mode   linking.ConfirmMode
		edit   func(*postlogin.ConfirmConfig)
		noConf bool
		ok     bool
	}{
		{"good", linking.ConfirmRefused, func(*postlogin.ConfirmConfig) {}, false, true},
		{"base URL with its slash", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.BaseURL += "/" }, false, true},
		{"loopback http", linking.ConfirmAlways, func(c *postlogin.ConfirmConfig) {
			c.Issuer, c.BaseURL = "http://127.0.0.1:8443/", "http://localhost:8080"
		}, false, true},
		{"confirm mode without ConfirmConfig", linking.ConfirmRefused, nil, true, false},
		{"ConfirmConfig without confirm mode", linking.ConfirmNever, func(*postlogin.ConfirmConfig) {}, false, false},
		{"short confirm secret", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.ConfirmSecret = []byte("short") }, false, false},
		{"short continue secret", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.ContinueSecret = nil }, false, false},
		{"the two secrets equal", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.ContinueSecret = c.ConfirmSecret }, false, false},
		{"confirm secret is LINKING_SECRET", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.ConfirmSecret = secret }, false, false},
		{"continue secret is LINKING_SECRET", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.ContinueSecret = secret }, false, false},
		{"continue secret is a previous secret", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.ContinueSecret = previous }, false, false},
		{"no client id", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.ClientID = "" }, false, false},
		{"no client secret", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.ClientSecret = "" }, false, false},
		{"issuer without its slash", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.Issuer = "https://tenant.example.com" }, false, false},
		{"issuer with a path", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.Issuer = "https://tenant.example.com/x/" }, false, false},
		{"issuer over http", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.Issuer = "http://tenant.example.com/" }, false, false},
		{"no issuer", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.Issuer = "" }, false, false},
		{"base URL with a path", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.BaseURL = "https://linking.example.com/x" }, false, false},
		{"base URL with a query", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.BaseURL = "https://linking.example.com?x=1" }, false, false},
		{"base URL over http", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.BaseURL = "http://linking.example.com" }, false, false},
		{"flow timeout too short", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.FlowTimeout = time.Second }, false, false},
		{"flow timeout too long", linking.ConfirmRefused, func(c *postlogin.ConfirmConfig) { c.FlowTimeout = time.Hour }, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := postlogin.Config{Secret: secret, PreviousSecrets: [][]byte{previous}}
			if !tt.noConf {
				cc := good()
				tt.edit(&cc)
				c.Confirm = &cc
			}
			h, err := postlogin.NewHandler(&linking.Linker{Store: linkingtest.NewTenant(), Policy: linking.Policy{Confirm: tt.mode}}, c)
			if (err == nil) != tt.ok || (h != nil) != tt.ok {
				t.Errorf("got %v, %v; want ok %v", h, err, tt.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "postlogin: ") {
				t.Errorf("error %q is not prefixed by the package", err)
			}
		})
	}
}

// TestHandler_MuxServesConfirmOnlyWhenConfigured: without Config.Confirm
// the consent page and the callback do not exist.
func TestHandler_MuxServesConfirmOnlyWhenConfigured(t *testing.T) {
	s := newServer(t, linkingtest.NewTenant(), linking.Policy{}, postlogin.Config{})
	for _, path := range []string{postlogin.ConfirmPath, postlogin.CallbackPath} {
		w := httptest.NewRecorder()
		s.h.Mux().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want 404", path, w.Code)
		}
	}
	e := newConfirmEnv(t, linking.Policy{}, nil)
	for _, path := range []string{postlogin.ConfirmPath, postlogin.CallbackPath} {
		if res := e.get(t, e.browser, e.svc.URL+path); readBody(t, res) == "" || res.StatusCode != http.StatusBadRequest {
			t.Errorf("confirm mode: GET %s without a flow: got %d, want 400", path, res.StatusCode)
		}
	}
}
