package postlogin

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/idlink/linking"
)

// Paths that Handler.Mux serves when Config.Confirm is set.
const (
	// ConfirmPath is where the Action sends the person (GET, with the
	// session_token and Auth0's state), and where the consent form posts.
	ConfirmPath = "/confirm"
	// CallbackPath is where the proof login returns: the linking client's
	// callback URL is ConfirmConfig.BaseURL + CallbackPath.
	CallbackPath = "/callback"
	// FlowCookie names the cookie that binds a confirm flow to the browser
	// it started in.
	FlowCookie = "__Host-linking-flow"
)

// Defaults and limits of ConfirmConfig.
const (
	// DefaultFlowTimeout is how long a person has, from arriving at the
	// consent page, to choose and prove an account.
	DefaultFlowTimeout = 10 * time.Minute
	// MaxFlowTimeout is the longest ConfirmConfig.FlowTimeout accepted.
	MaxFlowTimeout = 30 * time.Minute
	// MaxCandidates is the most accounts offered at once (the offer travels
	// in a URL).
	MaxCandidates = 5
	// DefaultHTTPTimeout bounds each request to the tenant (discovery,
	// keys, code exchange) when ConfirmConfig.HTTPClient is nil.
	DefaultHTTPTimeout = 10 * time.Second
)

const (
	// proofLeeway is how much earlier than the start of the proof its
	// auth_time may be: the clock difference between Auth0 and the service.
	proofLeeway  = 10 * time.Second
	maxFormBytes = 8 << 10
	maxStateLen  = 2048
)

// ConfirmConfig configures confirm before linking: the consent page, the
// proof login and the return to Auth0 (see the package documentation). Every
// field is required but Store, HTTPClient, FlowTimeout and RequireMFA.
type ConfirmConfig struct {
	// Issuer is the tenant's OpenID Connect issuer, exactly as its
	// discovery document says: "https://" + the tenant's domain + "/".
	// Proof logins go to its /authorize, the person goes back to its
	// /continue, and a ConfirmToken must carry its host as iss.
	Issuer string
	// ClientID and ClientSecret are those of the linking client: a Regular
	// Web Application of the tenant whose allowed callback URL is BaseURL +
	// CallbackPath. The Action skips its logins (LINKING_CLIENT_ID).
	ClientID     string
	ClientSecret string
	// BaseURL is the service's public origin, e.g.
	// "https://linking.example.com": the origin of LINKING_URL, where the
	// Action sends the person to ConfirmPath.
	BaseURL string
	// ConfirmSecret verifies the tokens the Action sends with the person
	// (the Action's LINKING_CONFIRM_SECRET); ContinueSecret signs the tokens
	// the person takes back to Auth0 (LINKING_CONTINUE_SECRET). Each is at
	// least MinSecretLen bytes, and the two differ from each other and from
	// Config.Secret and Config.PreviousSecrets.
	ConfirmSecret  []byte
	ContinueSecret []byte
	// Store keeps the flows and the used tokens. Nil means a
	// MemoryFlowStore, which serves one process: replicas need sticky
	// sessions or a shared store.
	Store FlowStore
	// HTTPClient makes the requests to the tenant. Nil means a client with
	// DefaultHTTPTimeout.
	HTTPClient *http.Client
	// FlowTimeout bounds a flow, from the consent page to the proof's
	// return, at most MaxFlowTimeout. Zero means DefaultFlowTimeout.
	FlowTimeout time.Duration
	// RequireMFA asks the proof login for multi-factor authentication
	// (acr_values) and refuses an ID token whose amr does not hold "mfa".
	// Without it, a proof is what the tenant asks of a login to that
	// account; a login the tenant refuses (for example when MFA is
	// required and not done) is never a proof.
	RequireMFA bool
}

// mfaPolicy is the acr value that asks Auth0 for multi-factor
// authentication.
const mfaPolicy = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"

// confirmer serves the consent page and the proof's callback.
type confirmer struct {
	linker         *linking.Linker
	issuer         string // the OIDC issuer URL
	domain         string // its host: the iss of ConfirmTokens
	tenantOrigin   string
	continueURL    string
	baseURL        string
	callbackURL    string
	clientID       string
	clientSecret   string
	confirmSecret  []byte
	continueSecret []byte
	store          FlowStore
	client         *http.Client
	flowTimeout    time.Duration
	linkTimeout    time.Duration
	requireMFA     bool
	now            func() time.Time
	logger         *slog.Logger

	mu       sync.Mutex // guards provider and verifier, set once discovered
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

// newConfirmer checks cc and returns the confirmer of a Handler whose
// request secrets are requestSecrets.
func newConfirmer(l *linking.Linker, cc ConfirmConfig, requestSecrets [][]byte, now func() time.Time, logger *slog.Logger, linkTimeout time.Duration) (*confirmer, error) {
	if l.Policy.Confirm == linking.ConfirmNever {
		return nil, errors.New("postlogin: Config.Confirm is set but the Linker's Policy.Confirm is ConfirmNever")
	}
	issuer, err := origin("Issuer", cc.Issuer, true)
	if err != nil {
		return nil, err
	}
	base, err := origin("BaseURL", cc.BaseURL, false)
	if err != nil {
		return nil, err
	}
	if cc.ClientID == "" || cc.ClientSecret == "" {
		return nil, errors.New("postlogin: ConfirmConfig.ClientID and ClientSecret are required")
	}
	// Each secret serves one direction: none may be another.
	seen := make(map[string]bool)
	for _, s := range requestSecrets {
		seen[string(s)] = true
	}
	for _, s := range [][]byte{cc.ConfirmSecret, cc.ContinueSecret} {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("postlogin: ConfirmConfig: %w", ErrWeakSecret)
		}
		if seen[string(s)] {
			return nil, errors.New("postlogin: ConfirmConfig: ConfirmSecret, ContinueSecret and the request secrets must all differ")
		}
		seen[string(s)] = true
	}
	c := &confirmer{
		linker:         l,
		issuer:         cc.Issuer,
		domain:         issuer.Host,
		tenantOrigin:   issuer.Scheme + "://" + issuer.Host,
		continueURL:    issuer.Scheme + "://" + issuer.Host + "/continue",
		baseURL:        base.Scheme + "://" + base.Host,
		callbackURL:    base.Scheme + "://" + base.Host + CallbackPath,
		clientID:       cc.ClientID,
		clientSecret:   cc.ClientSecret,
		confirmSecret:  slices.Clone(cc.ConfirmSecret),
		continueSecret: slices.Clone(cc.ContinueSecret),
		store:          cc.Store,
		client:         cc.HTTPClient,
		flowTimeout:    cmp.Or(cc.FlowTimeout, DefaultFlowTimeout),
		linkTimeout:    linkTimeout,
		requireMFA:     cc.RequireMFA,
		now:            now,
		logger:         logger,
	}
	if c.flowTimeout < time.Minute || c.flowTimeout > MaxFlowTimeout {
		return nil, fmt.Errorf("postlogin: ConfirmConfig.FlowTimeout %v is outside [1m, %v]", c.flowTimeout, MaxFlowTimeout)
	}
	if c.store == nil {
		c.store = &MemoryFlowStore{Now: now}
	}
	if c.client == nil {
		c.client = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	return c, nil
}

// origin parses a URL of the configuration that must be an origin: https
// (or http on a loopback host, for tests), a host, no query, no fragment,
// and no path but "/", which the issuer must have (as Auth0 writes it) when
// slash is set.
func origin(field, raw string, slash bool) (*url.URL, error) {
	form := "https://HOST"
	if slash {
		form = "https://HOST/"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		u.Path != "/" && (slash || u.Path != "") {
		return nil, fmt.Errorf("postlogin: ConfirmConfig.%s %q is not of the form %s", field, raw, form)
	}
	host := u.Hostname()
	loopback := host == "localhost"
	if ip := net.ParseIP(host); ip != nil {
		loopback = ip.IsLoopback()
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && loopback) {
		return nil, fmt.Errorf("postlogin: ConfirmConfig.%s %q must use https", field, raw)
	}
	return u, nil
}

// flow is the server-side state of one person's confirm: everything that
// matters is here, not in the form.
type flow struct {
	// Login is the request the Action sent for the login.
	Login Request `json:"login"`
	// Candidates are the accounts offered.
	Candidates []User `json:"candidates"`
	// State is Auth0's state of the login transaction.
	State string `json:"state"`
	// CSRF is the token the consent form must carry.
	CSRF string `json:"csrf"`
	// Expires ends the flow.
	Expires time.Time `json:"expires"`
	// Notice is shown on the consent page: what went wrong with a proof.
	Notice notice `json:"notice,omitempty"`
	// Proof is the proof login under way, if any.
	Proof *proof `json:"proof,omitempty"`
}

// proof is a proof login under way.
type proof struct {
	// Candidate is the index of the chosen account in flow.Candidates.
	Candidate int `json:"candidate"`
	// State, Nonce and Verifier are the authorization request's state,
	// nonce and PKCE code verifier.
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	// Started is when the person left for the proof login.
	Started time.Time `json:"started"`
}

// notice names a message of the consent page.
type notice string

const (
	noticeOtherAccount notice = "other_account"
	noticeNotProven    notice = "not_proven"
	noticeRefused      notice = "refused"
)

// Choices of the consent form.
const (
	choiceLink    = "link"
	choiceNotNow  = "not_now"
	choiceDecline = "decline"
)

// errOtherAccount: the proof is of another account than the one chosen.
var errOtherAccount = errors.New("postlogin: the proof login is of another account")

func flowKey(id string) string { return "flow/" + id }

// flowID returns the flow id of the request's cookie, if it has one of the
// form rand.Text makes.
func flowID(r *http.Request) (string, bool) {
	ck, err := r.Cookie(FlowCookie)
	if err != nil || len(ck.Value) != 26 {
		return "", false
	}
	for _, ch := range ck.Value {
		if !('A' <= ch && ch <= 'Z' || '2' <= ch && ch <= '7') {
			return "", false
		}
	}
	return ck.Value, true
}

func (c *confirmer) putFlow(ctx context.Context, id string, f flow) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("postlogin: encode flow: %w", err)
	}
	ok, err := c.store.Add(ctx, flowKey(id), b, f.Expires)
	if err == nil && !ok {
		err = errors.New("postlogin: flow id already held")
	}
	return err
}

// requestFlow returns the live flow of the request's cookie and its id;
// take removes it from the store. Without one, it answers the request (an
// expired page, or 503 when the store fails) and returns false.
func (c *confirmer) requestFlow(w http.ResponseWriter, r *http.Request, take bool) (string, flow, bool) {
	id, ok := flowID(r)
	if !ok {
		c.errorPage(w, http.StatusBadRequest, pageExpired)
		return "", flow{}, false
	}
	get := c.store.Get
	if take {
		get = c.store.Take
	}
	b, ok, err := get(r.Context(), flowKey(id))
	var f flow
	if err == nil && ok {
		err = json.Unmarshal(b, &f)
	}
	switch {
	case err != nil:
		c.fail(r.Context(), w, "read the flow", err)
		return "", flow{}, false
	case !ok || !c.now().Before(f.Expires):
		// Expired, finished, or taken first by another request (a form
		// sent twice).
		c.errorPage(w, http.StatusBadRequest, pageExpired)
		return "", flow{}, false
	}
	return id, f, true
}

// serveConfirm answers ConfirmPath: the arrival from the Action (GET with a
// session_token), the consent page (GET), and the consent form (POST).
func (c *confirmer) serveConfirm(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		// A HEAD (a link preview) never spends the token.
		if r.Method == http.MethodGet && r.URL.Query().Has("session_token") {
			c.start(w, r)
			return
		}
		c.show(w, r)
	case http.MethodPost:
		c.choose(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		c.errorPage(w, http.StatusMethodNotAllowed, pageInvalid)
	}
}

// start checks the Action's token, opens a flow bound to a new cookie, and
// sends the browser to the consent page without the token in its URL.
func (c *confirmer) start(w http.ResponseWriter, r *http.Request) {
	ctx, now := r.Context(), c.now()
	q := r.URL.Query()
	raw, state := q.Get("session_token"), q.Get("state")
	if state == "" || len(state) > maxStateLen {
		c.refuse(ctx, w, http.StatusBadRequest, pageInvalid, "no state, or a state too long")
		return
	}
	t, err := verifyConfirmToken(raw, c.confirmSecret, c.domain, now)
	if err != nil {
		c.refuse(ctx, w, http.StatusBadRequest, pageInvalid, err.Error())
		return
	}
	sum := sha256.Sum256([]byte(raw))
	fresh, err := c.store.Add(ctx, "used/"+hex.EncodeToString(sum[:]), nil, time.Unix(t.Expiry, 0).Add(tokenLeeway))
	if err != nil {
		c.fail(ctx, w, "record the token's use", err)
		return
	}
	if !fresh {
		c.refuse(ctx, w, http.StatusBadRequest, pageUsed, "a confirm token used again")
		return
	}
	t.Login.Accept = nil
	f := flow{Login: t.Login, Candidates: t.Candidates, State: state, CSRF: rand.Text(), Expires: now.Add(c.flowTimeout)}
	id := rand.Text()
	if err := c.putFlow(ctx, id, f); err != nil {
		c.fail(ctx, w, "open a flow", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: FlowCookie, Value: id, Path: "/", MaxAge: int(c.flowTimeout / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	c.logger.LogAttrs(ctx, slog.LevelInfo, "postlogin: confirm started",
		slog.String("user_id", t.Subject), slog.Int("candidates", len(t.Candidates)),
		slog.String("transaction_id", t.Login.TransactionID))
	noStore(w)
	http.Redirect(w, r, ConfirmPath, http.StatusSeeOther)
}

// show renders the consent page of the request's flow.
func (c *confirmer) show(w http.ResponseWriter, r *http.Request) {
	if _, f, ok := c.requestFlow(w, r, false); ok {
		c.consentPage(w, f)
	}
}

// choose handles the consent form: start a proof of the chosen account, or
// go back to Auth0 without linking.
func (c *confirmer) choose(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.refuse(ctx, w, http.StatusBadRequest, pageInvalid, "unreadable form")
		return
	}
	// The flow is read, and taken only once the form is known to be the
	// person's: a forged post leaves it as it was.
	_, f, ok := c.requestFlow(w, r, false)
	if !ok {
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(f.CSRF)) != 1 {
		c.refuse(ctx, w, http.StatusForbidden, pageInvalid, "the consent form's csrf token does not match its flow")
		return
	}
	choice, chosen := r.PostFormValue("choice"), 0
	switch choice {
	case choiceLink:
		n, err := strconv.Atoi(cmp.Or(r.PostFormValue("account"), "0"))
		if err != nil || n < 0 || n >= len(f.Candidates) {
			c.refuse(ctx, w, http.StatusBadRequest, pageInvalid, "no valid account chosen")
			return
		}
		chosen = n
		// Discovery before the flow is taken: a tenant out of reach leaves
		// the flow as it was.
		if _, err := c.oidc(ctx); err != nil {
			c.fail(ctx, w, "discover the tenant", err)
			return
		}
	case choiceNotNow, choiceDecline:
	default:
		c.refuse(ctx, w, http.StatusBadRequest, pageInvalid, "unknown choice")
		return
	}
	id, f, ok := c.requestFlow(w, r, true)
	if !ok {
		return
	}
	switch choice {
	case choiceNotNow:
		c.finish(w, r, f, ContinueToken{Outcome: OutcomeNotNow})
	case choiceDecline:
		declined := make([]string, len(f.Candidates))
		for i, u := range f.Candidates {
			declined[i] = u.UserID
		}
		c.finish(w, r, f, ContinueToken{Outcome: OutcomeDeclined, Declined: declined})
	default:
		c.startProof(w, r, id, f, chosen)
	}
}

// startProof sends the browser to the tenant's /authorize for a fresh login
// to exactly the chosen account.
func (c *confirmer) startProof(w http.ResponseWriter, r *http.Request, id string, f flow, chosen int) {
	ctx := r.Context()
	p := &proof{Candidate: chosen, State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier(), Started: c.now()}
	f.Proof, f.Notice = p, ""
	if err := c.putFlow(ctx, id, f); err != nil {
		c.fail(ctx, w, "store the flow", err)
		return
	}
	prov, err := c.oidc(ctx)
	if err != nil {
		c.fail(ctx, w, "discover the tenant", err)
		return
	}
	u := f.Candidates[chosen]
	conn := ""
	if main, ok := u.linking().MainIdentity(); ok {
		conn = main.Connection
	}
	opts := []oauth2.AuthCodeOption{
		oauth2.S256ChallengeOption(p.Verifier),
		oidc.Nonce(p.Nonce),
		oauth2.SetAuthURLParam("prompt", "login"),
		oauth2.SetAuthURLParam("max_age", "0"),
		oauth2.SetAuthURLParam("login_hint", u.Email),
	}
	if conn != "" {
		opts = append(opts, oauth2.SetAuthURLParam("connection", conn))
	}
	if c.requireMFA {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", mfaPolicy))
	}
	c.logger.LogAttrs(ctx, slog.LevelInfo, "postlogin: proof started",
		slog.String("user_id", f.Login.User.UserID), slog.String("candidate", u.UserID))
	noStore(w)
	http.Redirect(w, r, c.oauth2(prov).AuthCodeURL(p.State, opts...), http.StatusSeeOther)
}

// serveCallback answers CallbackPath: the return of the proof login.
func (c *confirmer) serveCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		c.errorPage(w, http.StatusMethodNotAllowed, pageInvalid)
		return
	}
	id, f, ok := c.requestFlow(w, r, true)
	if !ok {
		return
	}
	q := r.URL.Query()
	p := f.Proof
	switch {
	case p == nil || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(p.State)) != 1:
		c.retry(w, r, id, f, noticeNotProven, "the callback's state is not the flow's proof")
		return
	case q.Get("error") != "":
		c.retry(w, r, id, f, noticeNotProven, fmt.Sprintf("the tenant refused the proof login: %.100s: %.200s", q.Get("error"), q.Get("error_description")))
		return
	}
	chosen := f.Candidates[p.Candidate]
	proven, err := c.verifyProof(ctx, q.Get("code"), p, chosen)
	if err != nil {
		n := noticeNotProven
		if errors.Is(err, errOtherAccount) {
			n = noticeOtherAccount
		}
		c.retry(w, r, id, f, n, err.Error())
		return
	}
	login, err := f.Login.Login()
	if err != nil {
		// verifyConfirmToken checked it when the flow opened.
		c.fail(ctx, w, "read the flow's login", err)
		return
	}
	lctx, cancel := context.WithTimeout(ctx, c.linkTimeout)
	defer cancel()
	res, err := c.linker.LinkProven(lctx, login, proven)
	attrs := []slog.Attr{
		slog.String("user_id", login.User.ID), slog.String("proven", proven.ID),
		slog.String("action", res.Action.String()), slog.String("reason", string(res.Reason)),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	c.logger.LogAttrs(ctx, slog.LevelInfo, "postlogin: proof checked", attrs...)
	switch {
	case res.Action == linking.ActionLink && res.PrimaryUserID != "":
		c.finish(w, r, f, ContinueToken{Outcome: OutcomeLinked, PrimaryUserID: res.PrimaryUserID, Reason: string(res.Reason)})
	case res.Reason == linking.ReasonProofRefused:
		c.retry(w, r, id, f, noticeRefused, "the rule refuses to link the proven account")
	case res.Action == linking.ActionNone:
		c.finish(w, r, f, ContinueToken{Outcome: OutcomeNotNow, Reason: string(res.Reason)})
	default:
		c.finish(w, r, f, ContinueToken{Outcome: OutcomeDenied, Reason: string(res.Reason), Message: denyMessage(res.Reason)})
	}
}

// verifyProof exchanges the code of a proof login and checks its ID token: it
// returns the chosen account, with the token's email, only if the token is
// the tenant's (RS256, iss, aud, azp, exp), answers this very proof (nonce),
// comes from a login made after the proof began (auth_time), with MFA when
// required, and is of exactly the chosen account (sub).
func (c *confirmer) verifyProof(ctx context.Context, code string, p *proof, chosen User) (linking.User, error) {
	if code == "" {
		return linking.User{}, errors.New("postlogin: the callback has no code")
	}
	prov, err := c.oidc(ctx)
	if err != nil {
		return linking.User{}, err
	}
	tok, err := c.oauth2(prov).Exchange(context.WithValue(ctx, oauth2.HTTPClient, c.client), code, oauth2.VerifierOption(p.Verifier))
	if err != nil {
		return linking.User{}, fmt.Errorf("postlogin: exchange the proof's code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return linking.User{}, errors.New("postlogin: the token response has no id_token")
	}
	c.mu.Lock()
	verifier := c.verifier
	c.mu.Unlock()
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		return linking.User{}, fmt.Errorf("postlogin: the proof's ID token: %w", err)
	}
	var claims struct {
		AuthTime      int64    `json:"auth_time"`
		AZP           string   `json:"azp"`
		Email         string   `json:"email"`
		EmailVerified bool     `json:"email_verified"`
		AMR           []string `json:"amr"`
	}
	if err := idt.Claims(&claims); err != nil {
		return linking.User{}, fmt.Errorf("postlogin: the proof's ID token claims: %w", err)
	}
	switch {
	case subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(p.Nonce)) != 1:
		return linking.User{}, errors.New("postlogin: the proof's ID token answers another request (nonce)")
	case (claims.AZP != "" || len(idt.Audience) > 1) && claims.AZP != c.clientID:
		return linking.User{}, fmt.Errorf("postlogin: the proof's ID token was issued to %q (azp)", claims.AZP)
	case claims.AuthTime == 0 || time.Unix(claims.AuthTime, 0).Before(p.Started.Add(-proofLeeway)):
		return linking.User{}, errors.New("postlogin: the proof's ID token is not of a login made for this proof (auth_time)")
	case c.requireMFA && !slices.Contains(claims.AMR, "mfa"):
		return linking.User{}, errors.New("postlogin: the proof login did not use multi-factor authentication (amr)")
	case idt.Subject != chosen.UserID:
		return linking.User{}, fmt.Errorf("%w: %q, not the chosen %q", errOtherAccount, idt.Subject, chosen.UserID)
	}
	u := chosen.linking()
	u.Email, u.EmailVerified = claims.Email, claims.EmailVerified
	return u, nil
}

// retry puts the flow back without its proof, with a notice for the consent
// page, and sends the browser there.
func (c *confirmer) retry(w http.ResponseWriter, r *http.Request, id string, f flow, n notice, detail string) {
	ctx := r.Context()
	c.logger.LogAttrs(ctx, slog.LevelWarn, "postlogin: proof refused",
		slog.String("user_id", f.Login.User.UserID), slog.String("notice", string(n)), slog.String("detail", detail))
	f.Proof, f.Notice = nil, n
	if err := c.putFlow(ctx, id, f); err != nil {
		c.fail(ctx, w, "store the flow", err)
		return
	}
	noStore(w)
	http.Redirect(w, r, ConfirmPath, http.StatusSeeOther)
}

// finish ends the flow: it signs the ContinueToken of the outcome t for the
// flow's login and transaction, and hands the browser a form that posts it to
// the tenant's /continue.
func (c *confirmer) finish(w http.ResponseWriter, r *http.Request, f flow, t ContinueToken) {
	now := c.now()
	t.Issuer, t.Subject, t.State, t.Type = c.baseURL, f.Login.User.UserID, f.State, TokenTypeContinue
	t.IssuedAt, t.Expiry, t.ID = now.Unix(), now.Add(ContinueTokenLifetime).Unix(), rand.Text()
	token, err := signContinueToken(c.continueSecret, t)
	if err != nil {
		c.fail(r.Context(), w, "sign the continue token", err)
		return
	}
	c.logger.LogAttrs(r.Context(), slog.LevelInfo, "postlogin: confirm finished",
		slog.String("user_id", t.Subject), slog.String("outcome", t.Outcome), slog.String("primary_user_id", t.PrimaryUserID))
	http.SetCookie(w, &http.Cookie{Name: FlowCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	c.continuePage(w, f.State, token)
}

// oidc returns the tenant's provider, discovering it on first use. The
// tenant's authorization and token endpoints must be on the issuer's origin:
// the service sends browsers nowhere else.
func (c *confirmer) oidc(ctx context.Context) (*oidc.Provider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.provider != nil {
		return c.provider, nil
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultHTTPTimeout)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, c.client), c.issuer)
	if err != nil {
		return nil, fmt.Errorf("postlogin: discover %s: %w", c.issuer, err)
	}
	for _, e := range []string{p.Endpoint().AuthURL, p.Endpoint().TokenURL} {
		u, err := url.Parse(e)
		if err != nil || u.Scheme+"://"+u.Host != c.tenantOrigin {
			return nil, fmt.Errorf("postlogin: discover %s: endpoint %q is not on the tenant's origin", c.issuer, e)
		}
	}
	c.provider = p
	c.verifier = p.Verifier(&oidc.Config{ClientID: c.clientID, SupportedSigningAlgs: []string{oidc.RS256}, Now: c.now})
	return p, nil
}

func (c *confirmer) oauth2(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID: c.clientID, ClientSecret: c.clientSecret,
		Endpoint: p.Endpoint(), RedirectURL: c.callbackURL,
		Scopes: []string{oidc.ScopeOpenID, "email"},
	}
}

// refuse logs a refused request and answers with an error page.
func (c *confirmer) refuse(ctx context.Context, w http.ResponseWriter, status int, page errorPage, detail string) {
	c.logger.LogAttrs(ctx, slog.LevelWarn, "postlogin: confirm request refused",
		slog.Int("status", status), slog.String("detail", detail))
	c.errorPage(w, status, page)
}

// fail logs an internal error and answers 503: try again.
func (c *confirmer) fail(ctx context.Context, w http.ResponseWriter, what string, err error) {
	c.logger.LogAttrs(ctx, slog.LevelError, "postlogin: confirm failed",
		slog.String("step", what), slog.String("error", err.Error()))
	c.errorPage(w, http.StatusServiceUnavailable, pageUnavailable)
}
