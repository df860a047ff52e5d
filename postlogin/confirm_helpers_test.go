package postlogin_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/postlogin"
)

// The secrets and the linking client of the confirm tests.
const (
	confirmSecret       = "confirm-test-secret-0123456789abcdef0123"
	continueSecret      = "continue-test-secret-0123456789abcdef012"
	linkingClientID     = "linking-client"
	linkingClientSecret = "linking-client-secret"
)

// fakeOP is a tenant's Authentication API cut down to what the proof's
// callback calls: discovery, the JWKS and the token endpoint. The test plays
// /authorize: it reads the authorization request from the service's
// redirect, and mints the code and the ID token the token endpoint answers
// for it (fakeOP.issue).
type fakeOP struct {
	srv *httptest.Server
	key *rsa.PrivateKey
	kid string
	// authURL, when set, is the authorization endpoint that discovery
	// announces.
	authURL string

	mu    sync.Mutex
	codes map[string]issued
}

// issued is a code and what the token endpoint answers for it.
type issued struct {
	challenge string // the code_challenge of its authorization request
	idToken   string
}

func newFakeOP(t *testing.T) *fakeOP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	op := &fakeOP{key: key, kid: "k1", codes: map[string]issued{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		auth := op.authURL
		if auth == "" {
			auth = op.srv.URL + "/authorize"
		}
		writeTestJSON(w, http.StatusOK, map[string]any{
			"issuer": op.issuer(), "authorization_endpoint": auth,
			"token_endpoint": op.srv.URL + "/oauth/token", "jwks_uri": op.srv.URL + "/.well-known/jwks.json",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &op.key.PublicKey, KeyID: op.kid, Algorithm: "RS256", Use: "sig"},
		}})
	})
	mux.HandleFunc("POST /oauth/token", op.token)
	op.srv = httptest.NewTLSServer(mux)
	t.Cleanup(op.srv.Close)
	return op
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (op *fakeOP) issuer() string { return op.srv.URL + "/" }

// domain is the tenant's domain: the iss of the Action's tokens.
func (op *fakeOP) domain() string { return strings.TrimPrefix(op.srv.URL, "https://") }

// token answers the code exchange: the client's credentials, a code used
// once, and the PKCE verifier of the code's authorization request.
func (op *fakeOP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeTestJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	if id != linkingClientID || secret != linkingClientSecret {
		writeTestJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	op.mu.Lock()
	is, ok := op.codes[r.PostFormValue("code")]
	delete(op.codes, r.PostFormValue("code"))
	op.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
	if !ok || r.PostFormValue("grant_type") != "authorization_code" ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != is.challenge {
		writeTestJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	writeTestJSON(w, http.StatusOK, map[string]any{
		"access_token": "at", "token_type": "Bearer", "expires_in": 86400, "id_token": is.idToken,
	})
}

// claimsFor returns the claims of a good ID token for the authorization
// request req, of the account sub with email.
func (op *fakeOP) claimsFor(req url.Values, sub, email string) map[string]any {
	now := time.Now().Unix()
	return map[string]any{
		"iss": op.issuer(), "sub": sub, "aud": linkingClientID, "azp": linkingClientID,
		"iat": now, "exp": now + 3600, "auth_time": now, "nonce": req.Get("nonce"),
		"email": email, "email_verified": true,
	}
}

// sign signs claims with the tenant's key, RS256 with its kid.
func (op *fakeOP) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	return signJWT(t, jose.SigningKey{Algorithm: jose.RS256, Key: op.key}, op.kid, claims)
}

// issue records a code for the authorization request req whose token
// endpoint answers idToken, and returns it.
func (op *fakeOP) issue(req url.Values, idToken string) string {
	code := rand.Text()
	op.mu.Lock()
	op.codes[code] = issued{challenge: req.Get("code_challenge"), idToken: idToken}
	op.mu.Unlock()
	return code
}

func signJWT(t *testing.T, key jose.SigningKey, kid string, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(key, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsignedJWT is a token with alg "none" and no signature.
func unsignedJWT(t *testing.T, claims any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(b) + "."
}

// confirmEnv is the decision service in confirm mode over an in-memory
// tenant and a fakeOP, with a browser that keeps cookies and follows no
// redirect.
type confirmEnv struct {
	op      *fakeOP
	tenant  *linkingtest.Tenant
	svc     *httptest.Server
	browser *http.Client
	log     *bytes.Buffer
}

// newConfirmEnv deploys the service with policy p (Confirm set to
// ConfirmRefused when unset), over a tenant holding users; edit, when not
// nil, changes the ConfirmConfig first.
func newConfirmEnv(t *testing.T, p linking.Policy, edit func(*postlogin.ConfirmConfig), users ...linking.User) *confirmEnv {
	t.Helper()
	if p.Confirm == linking.ConfirmNever {
		p.Confirm = linking.ConfirmRefused
	}
	e := &confirmEnv{op: newFakeOP(t), tenant: linkingtest.NewTenant(users...), log: new(bytes.Buffer)}
	e.svc = httptest.NewUnstartedServer(nil)
	e.svc.StartTLS()
	t.Cleanup(e.svc.Close)
	cc := postlogin.ConfirmConfig{
		Issuer: e.op.issuer(), ClientID: linkingClientID, ClientSecret: linkingClientSecret,
		BaseURL: e.svc.URL, ConfirmSecret: []byte(confirmSecret), ContinueSecret: []byte(continueSecret),
		HTTPClient: e.op.srv.Client(),
	}
	if edit != nil {
		edit(&cc)
	}
	h, err := postlogin.NewHandler(&linking.Linker{Store: e.tenant, Policy: p}, postlogin.Config{
		Secret: secret, Confirm: &cc, Logger: slog.New(slog.NewJSONHandler(e.log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Config.Handler = h.Mux()
	e.browser = e.newBrowser(t)
	e.tenant.ResetCalls()
	return e
}

// newBrowser returns a client with a cookie jar of its own, that trusts the
// test servers and follows no redirect.
func (e *confirmEnv) newBrowser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Jar: jar, Transport: e.svc.Client().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ask sends the Action's request for a passwordless login of u, accepting
// confirm, and returns the answer.
func (e *confirmEnv) ask(t *testing.T, u linking.User, accept ...postlogin.Action) postlogin.Response {
	t.Helper()
	req := requestFor(u)
	req.Accept = accept
	r, err := postlogin.NewRequest(t.Context(), e.svc.URL+postlogin.Path, secret, req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var resp postlogin.Response
	if err := json.NewDecoder(res.Body).Decode(&resp); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("ask: status %d, %v", res.StatusCode, err)
	}
	return resp
}

// confirmClaims are the claims the Action's encodeToken makes for a login
// of u and the candidates offered.
func (e *confirmEnv) confirmClaims(u linking.User, candidates []postlogin.User) map[string]any {
	now := time.Now().Unix()
	return map[string]any{
		"iss": e.op.domain(), "sub": u.ID, "iat": now, "exp": now + 120,
		"typ": postlogin.TokenTypeConfirm, "login": requestFor(u), "candidates": candidates,
	}
}

// confirmToken signs claims as the Action's encodeToken does.
func confirmToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	return signJWT(t, jose.SigningKey{Algorithm: jose.HS256, Key: []byte(confirmSecret)}, "", claims)
}

func (e *confirmEnv) get(t *testing.T, browser *http.Client, u string) *http.Response {
	t.Helper()
	res, err := browser.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// arrive is the browser arriving from the Action with token and Auth0's
// state.
func (e *confirmEnv) arrive(t *testing.T, browser *http.Client, token, state string) *http.Response {
	t.Helper()
	return e.get(t, browser, e.svc.URL+postlogin.ConfirmPath+"?"+url.Values{"session_token": {token}, "state": {state}}.Encode())
}

// open arrives with token and state and follows to the consent page; it
// returns the page and its CSRF token.
func (e *confirmEnv) open(t *testing.T, browser *http.Client, token, state string) (string, string) {
	t.Helper()
	res := e.arrive(t, browser, token, state)
	body := readBody(t, res)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != postlogin.ConfirmPath {
		t.Fatalf("arrival: got %d to %q, want 303 to %s\n%s\nlog: %s", res.StatusCode, res.Header.Get("Location"), postlogin.ConfirmPath, body, e.log)
	}
	return e.consent(t, browser)
}

// consent returns the consent page and its CSRF token.
func (e *confirmEnv) consent(t *testing.T, browser *http.Client) (string, string) {
	t.Helper()
	res := e.get(t, browser, e.svc.URL+postlogin.ConfirmPath)
	body := readBody(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("consent page: got %d, want 200\n%s", res.StatusCode, body)
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the consent page has no csrf field:\n%s", body)
	}
	return body, html.UnescapeString(m[1])
}

// post sends the consent form.
func (e *confirmEnv) post(t *testing.T, browser *http.Client, form url.Values) *http.Response {
	t.Helper()
	res, err := browser.PostForm(e.svc.URL+postlogin.ConfirmPath, form)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// choose posts "Link" for the account at index account and returns the
// authorization request the service sends the browser to.
func (e *confirmEnv) choose(t *testing.T, browser *http.Client, csrf, account string) url.Values {
	t.Helper()
	res := e.post(t, browser, url.Values{"csrf": {csrf}, "choice": {"link"}, "account": {account}})
	body := readBody(t, res)
	loc, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusSeeOther || err != nil || loc.Scheme+"://"+loc.Host != e.op.srv.URL || loc.Path != "/authorize" {
		t.Fatalf("Link: got %d to %q, want 303 to %s/authorize\n%s\nlog: %s", res.StatusCode, res.Header.Get("Location"), e.op.srv.URL, body, e.log)
	}
	return loc.Query()
}

// callback is the browser coming back from the proof login with q.
func (e *confirmEnv) callback(t *testing.T, browser *http.Client, q url.Values) *http.Response {
	t.Helper()
	return e.get(t, browser, e.svc.URL+postlogin.CallbackPath+"?"+q.Encode())
}

// prove completes the authorization request req at the fakeOP with an ID
// token of claims, and returns the callback's response.
func (e *confirmEnv) prove(t *testing.T, browser *http.Client, req url.Values, idToken string) *http.Response {
	t.Helper()
	return e.callback(t, browser, url.Values{"code": {e.op.issue(req, idToken)}, "state": {req.Get("state")}})
}

func readBody(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// continueForm reads the form of a page that returns the browser to Auth0:
// its method, action and fields.
func continueForm(t *testing.T, page string) (method, action string, fields url.Values) {
	t.Helper()
	m := regexp.MustCompile(`<form method="([a-z]+)" action="([^"]+)">`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form on the page:\n%s", page)
	}
	fields = url.Values{}
	for _, f := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(page, -1) {
		fields.Add(f[1], html.UnescapeString(f[2]))
	}
	return m[1], html.UnescapeString(m[2]), fields
}

// continueToken verifies the return token of a continue page with the
// continue secret and returns its payload.
func continueToken(t *testing.T, page string) postlogin.ContinueToken {
	t.Helper()
	_, _, fields := continueForm(t, page)
	tok, err := jwt.ParseSigned(fields.Get("session_token"), []jose.SignatureAlgorithm{jose.HS256})
	if err != nil {
		t.Fatalf("the return token: %v", err)
	}
	var ct postlogin.ContinueToken
	if err := tok.Claims([]byte(continueSecret), &ct); err != nil {
		t.Fatalf("the return token does not verify with the continue secret: %v", err)
	}
	return ct
}

// linkCalls returns the tenant's link calls.
func (e *confirmEnv) linkCalls() int { return e.tenant.Calls()[linkingtest.MethodLink] }
