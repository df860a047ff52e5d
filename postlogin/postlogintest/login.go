// Package postlogintest emulates Auth0's login pipeline around a post-login
// Action, for tests that run an Action end to end.
//
// LoginFlow models the login transaction: it picks or creates the login's
// user as Auth0 does, Transaction.Input builds what the Action's execution
// receives, and Transaction.Finish applies what the Action asked of its api
// object by Auth0's rules (setPrimaryUser at most once, deny, metadata
// dropped when setPrimaryUser was called, api.redirect.sendUserTo suspending
// the login until /continue) and says how the login ended: the user the
// tokens are issued for, or why Auth0 fails the login. The Action itself runs
// outside, in Node.js (NodeAction, with testdata/run-action.js); what it
// called comes back as an ActionRun.
//
// Emulator is the pipeline emulator: one Auth0 tenant on one origin. It
// serves the Authentication API (OpenID Connect discovery, JWKS, /authorize
// with a login page a browser can fill in, /oauth/token with PKCE, and
// /continue) over a LoginFlow, and the Management API of a mgmttest.Emulator,
// so that a browser, an OpenID Connect relying party, go-auth0 and the Action
// all see one tenant URL. Every login at /authorize goes through the
// pipeline: the Action runs for it, whatever the client. Server runs an
// Emulator over HTTPS on loopback.
//
// It is to postlogin what mgmttest is to mgmt: mgmttest emulates the
// Management API that the decision service calls, postlogintest the login
// that the Action runs in. Both work over one linkingtest.Tenant; the
// login model itself never sends a Management API request.
package postlogintest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
)

// MaxPrimaryUserIDLen is the longest id Auth0 accepts in
// api.authentication.setPrimaryUser.
const MaxPrimaryUserIDLen = 128

// Why a login modelled by LoginFlow fails, for errors.Is on LoginResult.Err.
var (
	// ErrUserNotFound: the login's final subject is not a user of the
	// tenant. It is what a login gets when the Action links the login's
	// user into another one and does not call setPrimaryUser: the login's
	// subject no longer exists, and Auth0 issues no tokens.
	ErrUserNotFound = errors.New("postlogintest: login failed: the login's user does not exist")
	// ErrIdentityNotHeld: the login's final subject exists but does not
	// hold the identity the person authenticated with.
	ErrIdentityNotHeld = errors.New("postlogintest: login failed: the login's user does not hold the identity used")
	// ErrSetPrimaryUser: the Action called setPrimaryUser against Auth0's
	// rules: more than once in the transaction (onExecutePostLogin and
	// onContinuePostLogin together), or with an id that is not a string of
	// 1 to MaxPrimaryUserIDLen characters.
	ErrSetPrimaryUser = errors.New("postlogintest: login failed: invalid call of api.authentication.setPrimaryUser")
	// ErrAccessDenied: the Action called api.access.deny.
	ErrAccessDenied = errors.New("postlogintest: login denied by the Action")
	// ErrActionFailed: the Action threw an error (api.redirect.validateToken
	// throws when it refuses the token), ran out of time, or gave
	// api.redirect.sendUserTo a URL that is not absolute http(s).
	ErrActionFailed = errors.New("postlogintest: login failed: the Action threw an error")
	// ErrRedirectNotAllowed: the Action called api.redirect.sendUserTo in a
	// login that cannot redirect (Transaction.CanRedirect is false). Auth0
	// answers such a silent login with interaction_required; the model
	// fails any such login.
	ErrRedirectNotAllowed = errors.New("postlogintest: login failed: interaction_required: the Action redirected a login that cannot redirect")
)

// ErrInvalidState is the error of LoginFlow.Continue when the /continue
// request's state names no suspended login: unknown, or already used (a
// state resumes its login once).
var ErrInvalidState = errors.New("postlogintest: /continue: invalid_request: the state names no login waiting to continue")

// The post-login api methods, as named in ActionCall.Method. Finish applies
// the first five; the other three are answered by the runtime (run-action.js)
// during the execution and recorded for the test to see.
const (
	APISetPrimaryUser  = "authentication.setPrimaryUser"
	APIDeny            = "access.deny"
	APISetAppMetadata  = "user.setAppMetadata"
	APISetUserMetadata = "user.setUserMetadata"
	// APISendUserTo suspends the login once the execution ends and sends
	// the person to its URL (LoginResult.Redirect).
	APISendUserTo = "redirect.sendUserTo"
	// APICanRedirect, APIEncodeToken and APIValidateToken record their
	// answer in ActionCall.Result, or what they threw in ActionCall.Error.
	APICanRedirect   = "redirect.canRedirect"
	APIEncodeToken   = "redirect.encodeToken"
	APIValidateToken = "redirect.validateToken"
)

// The functions of a post-login Action that Auth0 calls, as named in
// ActionInput.Function.
const (
	// OnExecutePostLogin runs first, for every login.
	OnExecutePostLogin = "onExecutePostLogin"
	// OnContinuePostLogin runs when the person comes back to /continue
	// after the Action sent them away with api.redirect.sendUserTo.
	OnContinuePostLogin = "onContinuePostLogin"
)

// ExecutionLimit is how long one execution of an Action may run: Auth0
// gives onExecutePostLogin and onContinuePostLogin 20 s each.
const ExecutionLimit = 20 * time.Second

// LoginFlow models Auth0's login transaction around a post-login Action,
// over a tenant, for tests that run an Action end to end: Auth0 picks or
// creates the login's user, builds the event the Action sees, runs the
// Action (the test does that, in Node.js), and then applies what the Action
// asked of its api object by Auth0's rules. A login the Action redirected
// waits for its /continue request (Continue).
//
// Use the Tenant of the mgmttest Emulator the Action's service talks to, so
// that what the service changes through the Management API is what the next
// login sees. LoginFlow reads the tenant with Tenant.Users, and writes to it
// only as Auth0 itself would (a new user, metadata the Action set): none of
// it is a Management API request, so the Emulator's counters show only what
// the service did.
//
// A LoginFlow is safe for concurrent use; its fields must not change once
// it is in use.
type LoginFlow struct {
	// Tenant is where the logins happen. Required.
	Tenant *linkingtest.Tenant
	// NewUserID returns the id at the provider of a user that a first
	// passwordless login creates. Nil makes 24 random hex digits, the
	// shape of Auth0's ids.
	NewUserID func() string
	// Domain is the tenant's domain, e.g. "dev-abc.us.auth0.com" or
	// "127.0.0.1:41234": event.request.hostname, and the iss of the tokens
	// api.redirect.encodeToken makes. Empty leaves both out.
	Domain string

	mu        sync.Mutex              // orders the look-up and creation of a login's user
	suspended map[string]*Transaction // logins waiting at /continue, by state
}

// Transaction is one login in progress: the user Auth0 made its subject,
// before the Action runs, and the identity the person authenticated with.
// Build the Action's input with Input, run the Action, and end the login
// with Finish; a login the Action redirected is resumed by LoginFlow.Continue
// and ended by a second Input, run and Finish.
//
// Set Client, Protocol and Prompt, if at all, before the first Input. The
// methods are safe for concurrent use.
type Transaction struct {
	// ID is the transaction's id (event.transaction.id).
	ID string
	// Connection is the connection the person authenticated with.
	Connection linkingtest.Connection
	// Identity is the identity the person authenticated with.
	Identity linking.Identity
	// User is the login's subject before the Action runs (event.user): the
	// user holding Identity, which is a primary when Identity was linked.
	User linking.User
	// Created reports that Auth0 created User for this login.
	Created bool
	// Client is the application the person signs in to (event.client).
	// The zero value stands for DefaultClient.
	Client EventClient
	// Protocol is event.transaction.protocol; empty stands for
	// "oidc-basic-profile", a browser login. "oauth2-refresh-token",
	// "oauth2-resource-owner", "oauth2-password" and
	// "oauth2-resource-owner-jwt-bearer" are logins without a browser.
	Protocol string
	// Prompt is the prompt of the authorization request
	// (event.transaction.prompt), e.g. ["none"] for a silent login.
	Prompt []string

	flow *LoginFlow

	mu      sync.Mutex
	phase   phase
	state   string       // the state of the /continue request, in phaseContinue
	request EventRequest // the /continue request, in phaseContinue
	// What the executions so far asked for, applied when the login ends.
	primary    string
	primarySet bool
	meta       linking.Metadata
	result     LoginResult
}

// phase is where a Transaction is in its life.
type phase int

const (
	phaseExecute   phase = iota // onExecutePostLogin runs
	phaseSuspended              // the person was sent away; waiting for /continue
	phaseContinue               // onContinuePostLogin runs
	phaseDone                   // the login ended
)

// DefaultClient is the application of a login whose Transaction.Client is
// not set.
var DefaultClient = EventClient{ClientID: "app-client-id", Name: "My App"}

// PasswordlessEmail starts a login with a one-time code sent to email,
// through the tenant's "email" connection, as Auth0 does: the email is
// trimmed and lowercased; when no user holds an identity of that connection for it,
// a new user "email|<id>" is created, with the email verified (the person
// has just proven it), no metadata and that identity only; otherwise the
// login's user is the user that holds the identity, which is the primary
// when the identity was linked.
//
// It returns an error when the tenant has no "email" connection, or cannot
// add the user.
func (f *LoginFlow) PasswordlessEmail(ctx context.Context, email string) (*Transaction, error) {
	conn, ok := f.Tenant.ConnectionByName("email")
	if !ok {
		return nil, errors.New(`postlogintest: passwordless login: the tenant has no "email" connection`)
	}
	email = strings.ToLower(strings.TrimSpace(email))
	tx := &Transaction{ID: "tx_" + randomHex(8), Connection: conn, flow: f}

	f.mu.Lock()
	defer f.mu.Unlock()
	if u, id, ok := f.holder(conn, email); ok {
		tx.User, tx.Identity = u, id
		return tx, nil
	}
	newID := randomHex(12)
	if f.NewUserID != nil {
		newID = f.NewUserID()
	}
	id := linking.Identity{Provider: conn.Strategy, UserID: newID, Connection: conn.Name}
	u := linking.User{ID: id.UserIDOf(), Email: email, EmailVerified: true, Identities: []linking.Identity{id}}
	if err := f.Tenant.AddUser(ctx, u); err != nil {
		return nil, fmt.Errorf("postlogintest: passwordless login of %s: create the user: %w", email, err)
	}
	if stored, ok := findUser(f.Tenant.Users(), u.ID); ok {
		u = stored // with the tenant's CreatedAt
	}
	tx.User, tx.Identity, tx.Created = u, id, true
	return tx, nil
}

// SignIn starts a login with an identity the tenant already holds, as a
// database (password) or social login does: the login's user is the user that
// holds id, which is the primary when id was linked. It returns an error when
// the tenant has no connection named id.Connection, or no user holds id.
func (f *LoginFlow) SignIn(ctx context.Context, id linking.Identity) (*Transaction, error) {
	conn, ok := f.Tenant.ConnectionByName(id.Connection)
	if !ok {
		return nil, fmt.Errorf("postlogintest: sign in with %s: the tenant has no connection %q", id.UserIDOf(), id.Connection)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.Tenant.Users() {
		for _, held := range u.Identities {
			if held.Is(id) {
				return &Transaction{ID: "tx_" + randomHex(8), Connection: conn, Identity: held, User: u, flow: f}, nil
			}
		}
	}
	return nil, fmt.Errorf("postlogintest: sign in with %s: no user holds it", id.UserIDOf())
}

// holder returns the user holding the identity of connection conn for
// email, and that identity. An identity's email is its user's email when it
// is the user's main identity, and the email of its profileData when it was
// linked.
func (f *LoginFlow) holder(conn linkingtest.Connection, email string) (linking.User, linking.Identity, bool) {
	for _, u := range f.Tenant.Users() {
		for _, id := range u.Identities {
			if id.Provider != conn.Strategy || id.Connection != conn.Name {
				continue
			}
			idEmail := u.Email
			if id.UserIDOf() != u.ID {
				idEmail, _ = id.ProfileData["email"].(string)
			}
			if idEmail == email {
				return u, id, true
			}
		}
	}
	return linking.User{}, linking.Identity{}, false
}

// Continue resumes the login that the /continue request r names with its
// state parameter (in the query, or in the form of a POST), as Auth0 does
// when the person comes back: the login must be waiting at /continue, and a
// state resumes it once (ErrInvalidState otherwise). The transaction's next
// Input is then for onContinuePostLogin, with r's method, query and form in
// event.request; run the Action with it and end the login with Finish.
func (f *LoginFlow) Continue(r *http.Request) (*Transaction, error) {
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("postlogintest: /continue: %w", err)
	}
	state := r.Form.Get("state")
	f.mu.Lock()
	tx, ok := f.suspended[state]
	delete(f.suspended, state)
	f.mu.Unlock()
	if !ok || state == "" {
		return nil, ErrInvalidState
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	tx.phase, tx.state = phaseContinue, state
	tx.request = EventRequest{
		IP: ip, Method: r.Method, UserAgent: r.UserAgent(), Hostname: f.Domain,
		Query: firstValues(r.URL.Query()), Body: firstValues(r.PostForm),
	}
	return tx, nil
}

// suspend records that tx waits at /continue with state.
func (f *LoginFlow) suspend(state string, tx *Transaction) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.suspended == nil {
		f.suspended = make(map[string]*Transaction)
	}
	f.suspended[state] = tx
}

// firstValues returns the first value of each key of v; nil when v is
// empty.
func firstValues(v url.Values) map[string]string {
	if len(v) == 0 {
		return nil
	}
	m := make(map[string]string, len(v))
	for k := range v {
		m[k] = v.Get(k)
	}
	return m
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Event is the event object a post-login Action receives, with the fields
// this model fills. Set Secrets before handing it to the Action.
type Event struct {
	User        EventUser         `json:"user"`
	Connection  EventConnection   `json:"connection"`
	Client      EventClient       `json:"client"`
	Request     EventRequest      `json:"request"`
	Transaction EventTransaction  `json:"transaction"`
	Secrets     map[string]string `json:"secrets"`
}

// EventUser is event.user.
type EventUser struct {
	UserID        string          `json:"user_id"`
	Email         string          `json:"email,omitempty"`
	EmailVerified bool            `json:"email_verified"`
	Identities    []EventIdentity `json:"identities"`
	CreatedAt     string          `json:"created_at,omitempty"`
	AppMetadata   map[string]any  `json:"app_metadata"`
	UserMetadata  map[string]any  `json:"user_metadata"`
}

// EventIdentity is one of event.user.identities.
type EventIdentity struct {
	Provider   string `json:"provider"`
	UserID     string `json:"user_id"`
	Connection string `json:"connection"`
	IsSocial   bool   `json:"isSocial"`
}

// EventConnection is event.connection.
type EventConnection struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Strategy string `json:"strategy"`
}

// EventClient is event.client: the application the person signs in to.
type EventClient struct {
	ClientID string `json:"client_id"`
	Name     string `json:"name"`
}

// EventRequest is event.request: the request that started the login, or,
// in onContinuePostLogin, the /continue request.
type EventRequest struct {
	IP        string `json:"ip"`
	Method    string `json:"method"`
	UserAgent string `json:"user_agent"`
	// Hostname is the tenant's domain the login goes through.
	Hostname string `json:"hostname,omitempty"`
	// Query and Body are the parameters of the /continue request, in
	// onContinuePostLogin (the first value of each).
	Query map[string]string `json:"query,omitempty"`
	Body  map[string]string `json:"body,omitempty"`
}

// EventTransaction is event.transaction.
type EventTransaction struct {
	ID       string   `json:"id"`
	Protocol string   `json:"protocol"`
	Prompt   []string `json:"prompt,omitempty"`
}

// Event returns the event the post-login Action sees in its current
// execution: the login's user as it was when the login started, its
// metadata as empty objects when it has none, the connection used, the
// Client (DefaultClient when unset), and the Protocol ("oidc-basic-profile"
// when unset) and Prompt; event.request is a request from 127.0.0.1 in
// onExecutePostLogin, and the /continue request in onContinuePostLogin.
// Secrets is empty.
func (tx *Transaction) Event() Event {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.event()
}

func (tx *Transaction) event() Event {
	u := tx.User
	ev := Event{
		User: EventUser{
			UserID:        u.ID,
			Email:         u.Email,
			EmailVerified: u.EmailVerified,
			Identities:    make([]EventIdentity, 0, len(u.Identities)),
			CreatedAt:     createdAt(u.CreatedAt),
			AppMetadata:   orEmpty(u.AppMetadata),
			UserMetadata:  orEmpty(u.UserMetadata),
		},
		Connection:  EventConnection{ID: tx.Connection.ID, Name: tx.Connection.Name, Strategy: tx.Connection.Strategy},
		Client:      tx.Client,
		Request:     EventRequest{IP: "127.0.0.1", Method: "POST", UserAgent: "Mozilla/5.0", Hostname: tx.flow.Domain},
		Transaction: EventTransaction{ID: tx.ID, Protocol: tx.Protocol, Prompt: slices.Clone(tx.Prompt)},
		Secrets:     map[string]string{},
	}
	if ev.Client == (EventClient{}) {
		ev.Client = DefaultClient
	}
	if ev.Transaction.Protocol == "" {
		ev.Transaction.Protocol = "oidc-basic-profile"
	}
	if tx.phase == phaseContinue {
		ev.Request = tx.request
	}
	for _, id := range u.Identities {
		ev.User.Identities = append(ev.User.Identities, EventIdentity{
			Provider: id.Provider, UserID: id.UserID, Connection: id.Connection, IsSocial: id.IsSocial,
		})
	}
	return ev
}

// ActionInput is one execution of a post-login Action as Auth0 starts it:
// which function, its event, and what the runtime's api.redirect needs
// beyond the event. It is the JSON testdata/run-action.js reads:
//
//	{"function":"onContinuePostLogin","event":{...},"can_redirect":true,"state":"..."}
type ActionInput struct {
	// Function is OnExecutePostLogin or OnContinuePostLogin.
	Function string `json:"function"`
	Event    Event  `json:"event"`
	// CanRedirect is what api.redirect.canRedirect() answers.
	CanRedirect bool `json:"can_redirect"`
	// State is the transaction's state, which api.redirect.validateToken
	// requires in the token's state claim; onContinuePostLogin only.
	State string `json:"state,omitempty"`
}

// Input returns the input of the Action's next execution: onExecutePostLogin
// with Event, or, once Continue resumed the login, onContinuePostLogin with
// the /continue request in the event and the state. Set event.secrets
// before running the Action.
func (tx *Transaction) Input() ActionInput {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	in := ActionInput{Function: OnExecutePostLogin, Event: tx.event(), CanRedirect: tx.canRedirect()}
	if tx.phase == phaseContinue {
		in.Function, in.State = OnContinuePostLogin, tx.state
	}
	return in
}

// nonInteractive are the protocols of logins without a browser to redirect.
var nonInteractive = []string{"oauth2-refresh-token", "oauth2-resource-owner", "oauth2-password", "oauth2-resource-owner-jwt-bearer"}

// CanRedirect reports whether the Action may send the person away with
// api.redirect.sendUserTo, as api.redirect.canRedirect() answers: not in a
// silent login (Prompt holds "none"), a refresh token exchange or a
// resource owner password grant.
func (tx *Transaction) CanRedirect() bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.canRedirect()
}

func (tx *Transaction) canRedirect() bool {
	return !slices.Contains(tx.Prompt, "none") && !slices.Contains(nonInteractive, tx.Protocol)
}

// createdAt formats t as Auth0 does in event.user.created_at; "" when t is
// zero.
func createdAt(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// ActionRun is what one execution of a post-login Action did: the calls it
// made on its api object, in order, and the error it threw, if any. It is
// the JSON a harness that runs the Action prints:
//
//	{"calls":[{"method":"authentication.setPrimaryUser","args":["auth0|63d1"]}],"error":""}
type ActionRun struct {
	Calls []ActionCall `json:"calls"`
	// Error is the message of the error the Action threw or rejected
	// with; empty when it ended normally.
	Error string `json:"error,omitempty"`
	// Logs are the lines the Action logged, for test failure messages.
	Logs []string `json:"logs,omitempty"`
}

// ActionCall is one call of a method of the Action's api object.
type ActionCall struct {
	// Method is the method's path under api, e.g. APISetPrimaryUser.
	Method string `json:"method"`
	// Args are the call's arguments, as JSON. The secret given to
	// api.redirect.encodeToken and validateToken is left out.
	Args []json.RawMessage `json:"args"`
	// Result is what a method that answers returned, as JSON: the boolean
	// of canRedirect, the token of encodeToken, the payload of
	// validateToken.
	Result json.RawMessage `json:"result,omitempty"`
	// Error is the message of the error the method threw, e.g. why
	// validateToken refused the token.
	Error string `json:"error,omitempty"`
}

// LoginResult is how a login ended, or that it waits at /continue.
type LoginResult struct {
	// Succeeded reports that Auth0 issues tokens: Err is nil.
	Succeeded bool
	// Subject is the user the login ends as (the tokens' sub) when it
	// succeeded, and the subject it had at the end otherwise.
	Subject string
	// Redirect is where the Action sent the person with
	// api.redirect.sendUserTo: its URL, with the query it asked for and
	// the transaction's state parameter. The login is suspended, neither
	// succeeded nor failed (Err is nil), until LoginFlow.Continue resumes
	// it with that state.
	Redirect string
	// Denied is the reason given to api.access.deny, when the Action
	// denied the login.
	Denied string
	// MetadataDiscarded reports that the Action set metadata in a
	// transaction in which it called setPrimaryUser, and Auth0 dropped it.
	MetadataDiscarded bool
	// Err says why the login failed, wrapping ErrUserNotFound,
	// ErrIdentityNotHeld, ErrSetPrimaryUser, ErrAccessDenied,
	// ErrActionFailed or ErrRedirectNotAllowed; its message is what the
	// application is told. Nil when the login succeeded or is suspended.
	Err error
}

// Finish applies what one execution of the Action did, by Auth0's rules,
// and ends the login or suspends it:
//
//   - an Action that threw fails the login (ErrActionFailed);
//   - api.access.deny denies it (ErrAccessDenied), whatever else was called;
//   - setPrimaryUser may be called once in the transaction, with an id of
//     at most MaxPrimaryUserIDLen characters (ErrSetPrimaryUser otherwise);
//   - api.redirect.sendUserTo suspends the login: LoginResult.Redirect is
//     the URL (the last call's, with its query and the state), and the
//     login waits for LoginFlow.Continue; in a login that cannot redirect
//     (CanRedirect) it fails the login (ErrRedirectNotAllowed), and so
//     does a URL that is not absolute http(s) (ErrActionFailed);
//   - otherwise the login ends: the final subject is setPrimaryUser's id,
//     or else the login's user; the login succeeds only if it is an
//     existing user (ErrUserNotFound otherwise: the seed's symptom when the
//     login's user was linked away) that holds the identity used
//     (ErrIdentityNotHeld otherwise);
//   - metadata set with api.user.setAppMetadata or setUserMetadata, in any
//     execution, is written to the final user, key by key, when the login
//     succeeds, and discarded when setPrimaryUser was called.
//
// A failed or denied login is a LoginResult with Err set, and a nil error.
// Finish returns an error when the Action called an api method the model
// does not know, when the login is not running an execution (it is
// finished, or waits at /continue), or when the tenant fails to store the
// metadata; the login then ends.
func (tx *Transaction) Finish(ctx context.Context, run ActionRun) (LoginResult, error) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	switch tx.phase {
	case phaseDone:
		return LoginResult{}, fmt.Errorf("postlogintest: transaction %s is already finished", tx.ID)
	case phaseSuspended:
		return LoginResult{}, fmt.Errorf("postlogintest: transaction %s waits at /continue: resume it with LoginFlow.Continue first", tx.ID)
	}
	tx.phase = phaseDone
	res, err := tx.apply(ctx, run)
	tx.result = res
	return res, err
}

// apply is Finish's work, with tx.mu held.
func (tx *Transaction) apply(ctx context.Context, run ActionRun) (LoginResult, error) {
	res := LoginResult{Subject: tx.User.ID}
	if tx.primarySet {
		res.Subject = tx.primary
	}
	if run.Error != "" {
		res.Err = fmt.Errorf("%w: %s", ErrActionFailed, run.Error)
		return res, nil
	}

	var (
		denied    string
		deniedSet bool
		redirect  *ActionCall
	)
	for i, c := range run.Calls {
		switch c.Method {
		case APISetPrimaryUser:
			id, err := stringArg(c, 0)
			switch {
			case err != nil:
				res.Err = fmt.Errorf("%w: %w", ErrSetPrimaryUser, err)
			case tx.primarySet:
				res.Err = fmt.Errorf("%w: called more than once in a transaction", ErrSetPrimaryUser)
			case id == "" || len(id) > MaxPrimaryUserIDLen:
				res.Err = fmt.Errorf("%w: the id must have 1 to %d characters, got %d", ErrSetPrimaryUser, MaxPrimaryUserIDLen, len(id))
			}
			if res.Err != nil {
				return res, nil
			}
			tx.primary, tx.primarySet = id, true
		case APIDeny:
			if !deniedSet {
				reason, err := stringArg(c, 0)
				if err != nil && len(c.Args) > 0 {
					reason = string(c.Args[0])
				}
				denied, deniedSet = reason, true
			}
		case APISetAppMetadata, APISetUserMetadata:
			key, err := stringArg(c, 0)
			if err != nil {
				return LoginResult{}, fmt.Errorf("postlogintest: api.%s: %w", c.Method, err)
			}
			var value any
			if len(c.Args) > 1 {
				if err := json.Unmarshal(c.Args[1], &value); err != nil {
					return LoginResult{}, fmt.Errorf("postlogintest: api.%s: value: %w", c.Method, err)
				}
			}
			target := &tx.meta.AppMetadata
			if c.Method == APISetUserMetadata {
				target = &tx.meta.UserMetadata
			}
			if *target == nil {
				*target = map[string]any{}
			}
			(*target)[key] = value
		case APISendUserTo:
			redirect = &run.Calls[i]
		case APICanRedirect, APIEncodeToken, APIValidateToken:
			// Answered by the runtime during the execution.
		default:
			return LoginResult{}, fmt.Errorf("postlogintest: the Action called api.%s, which LoginFlow does not model", c.Method)
		}
	}
	if deniedSet {
		res.Denied = denied
		res.Err = fmt.Errorf("%w: %s", ErrAccessDenied, denied)
		return res, nil
	}
	if tx.primarySet {
		res.Subject = tx.primary
	}
	if redirect != nil {
		return tx.suspendAt(*redirect, res), nil
	}

	users := tx.flow.Tenant.Users()
	subject, ok := findUser(users, res.Subject)
	if !ok {
		res.Err = fmt.Errorf("%w: %q", ErrUserNotFound, res.Subject)
		if holder, held := holderOf(users, tx.Identity); held && !tx.primarySet {
			res.Err = fmt.Errorf("%w (its identity %s was linked into %q during the login, and the Action did not call setPrimaryUser)",
				res.Err, tx.Identity.UserIDOf(), holder.ID)
		}
		return res, nil
	}
	if !subject.Holds(tx.Identity) {
		res.Err = fmt.Errorf("%w: %s is not among the identities of %q", ErrIdentityNotHeld, tx.Identity.UserIDOf(), subject.ID)
		return res, nil
	}

	hasMeta := len(tx.meta.AppMetadata) > 0 || len(tx.meta.UserMetadata) > 0
	switch {
	case hasMeta && tx.primarySet:
		res.MetadataDiscarded = true
	case hasMeta:
		if err := tx.flow.Tenant.UpdateMetadata(ctx, subject.ID, tx.meta); err != nil {
			return LoginResult{}, fmt.Errorf("postlogintest: store the metadata the Action set for %q: %w", subject.ID, err)
		}
	}
	res.Succeeded = true
	return res, nil
}

// suspendAt suspends the login at the redirect the sendUserTo call c asks
// for, with a new state, and returns res with the URL; or fails the login
// when it cannot redirect there.
func (tx *Transaction) suspendAt(c ActionCall, res LoginResult) LoginResult {
	if !tx.canRedirect() {
		res.Err = fmt.Errorf("%w (protocol %q, prompt %q)", ErrRedirectNotAllowed, tx.Protocol, tx.Prompt)
		return res
	}
	state := randomHex(16)
	u, err := redirectURL(c, state)
	if err != nil {
		res.Err = fmt.Errorf("%w: api.redirect.sendUserTo: %w", ErrActionFailed, err)
		return res
	}
	tx.phase = phaseSuspended
	tx.flow.suspend(state, tx)
	res.Redirect = u
	return res
}

// redirectURL returns the URL of the sendUserTo call c, with the query of
// its options and the state appended.
func redirectURL(c ActionCall, state string) (string, error) {
	raw, err := stringArg(c, 0)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("the URL %q is not an absolute http(s) URL", raw)
	}
	var opts struct {
		Query map[string]any `json:"query"`
	}
	if len(c.Args) > 1 && string(c.Args[1]) != "null" {
		if err := json.Unmarshal(c.Args[1], &opts); err != nil {
			return "", fmt.Errorf("options: %w", err)
		}
	}
	q := u.Query()
	for k, v := range opts.Query {
		if s, ok := v.(string); ok {
			q.Set(k, s)
		} else {
			q.Set(k, fmt.Sprint(v))
		}
	}
	q.Set("state", state)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Result returns the outcome of the last Finish, and whether the login has
// ended (it has not while it runs or waits at /continue).
func (tx *Transaction) Result() (LoginResult, bool) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.result, tx.phase == phaseDone
}

// stringArg returns the argument i of c, which must be a JSON string.
func stringArg(c ActionCall, i int) (string, error) {
	if i >= len(c.Args) {
		return "", fmt.Errorf("argument %d is missing", i+1)
	}
	var s string
	if err := json.Unmarshal(c.Args[i], &s); err != nil {
		return "", fmt.Errorf("argument %d is %s, not a string", i+1, c.Args[i])
	}
	return s, nil
}

func findUser(users []linking.User, id string) (linking.User, bool) {
	for _, u := range users {
		if u.ID == id {
			return u, true
		}
	}
	return linking.User{}, false
}

func holderOf(users []linking.User, id linking.Identity) (linking.User, bool) {
	for _, u := range users {
		if u.Holds(id) {
			return u, true
		}
	}
	return linking.User{}, false
}
