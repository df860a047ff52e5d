// Package postlogintest models Auth0's login pipeline around a post-login
// Action, for tests that run an Action end to end: LoginFlow picks or creates
// the login's user as Auth0 does, Transaction.Event builds the event the
// Action receives, and Transaction.Finish applies what the Action asked of its
// api object by Auth0's rules (setPrimaryUser at most once, deny, metadata
// dropped when setPrimaryUser was called) and says how the login ended: the
// user the tokens are issued for, or why Auth0 fails the login. The Action
// itself runs outside, in Node.js; what it called comes back as an ActionRun.
//
// It is to postlogin what mgmttest is to mgmt: mgmttest emulates the
// Management API that the decision service calls, postlogintest models the
// login that the Action runs in. Both work over a linkingtest.Tenant, and
// the model never sends a Management API request.
package postlogintest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
	// rules: more than once, or with an id that is not a string of 1 to
	// MaxPrimaryUserIDLen characters.
	ErrSetPrimaryUser = errors.New("postlogintest: login failed: invalid call of api.authentication.setPrimaryUser")
	// ErrAccessDenied: the Action called api.access.deny.
	ErrAccessDenied = errors.New("postlogintest: login denied by the Action")
	// ErrActionFailed: the Action threw an error.
	ErrActionFailed = errors.New("postlogintest: login failed: the Action threw an error")
)

// The post-login api methods that LoginFlow applies, as named in
// ActionCall.Method.
const (
	APISetPrimaryUser  = "authentication.setPrimaryUser"
	APIDeny            = "access.deny"
	APISetAppMetadata  = "user.setAppMetadata"
	APISetUserMetadata = "user.setUserMetadata"
)

// LoginFlow models Auth0's login transaction around a post-login Action,
// over a tenant, for tests that run an Action end to end: Auth0 picks or
// creates the login's user, builds the event the Action sees, runs the
// Action (the test does that, in Node.js), and then applies what the Action
// asked of its api object by Auth0's rules.
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

	mu sync.Mutex // orders the look-up and creation of a login's user
}

// Transaction is one login in progress: the user Auth0 made its subject,
// before the Action runs, and the identity the person authenticated with.
// Build the Action's event with Event, run the Action, and end the login
// with Finish. A Transaction is not safe for concurrent use.
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

	flow     *LoginFlow
	finished bool
}

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

// EventRequest is event.request.
type EventRequest struct {
	IP        string `json:"ip"`
	Method    string `json:"method"`
	UserAgent string `json:"user_agent"`
}

// EventTransaction is event.transaction.
type EventTransaction struct {
	ID       string `json:"id"`
	Protocol string `json:"protocol"`
}

// Event returns the event the post-login Action sees for this login: the
// login's user as it is before the Action runs, its metadata as empty
// objects when it has none, the connection used, and a browser login
// ("oidc-basic-profile") from 127.0.0.1. Secrets is empty.
func (tx *Transaction) Event() Event {
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
		Client:      EventClient{ClientID: "app-client-id", Name: "My App"},
		Request:     EventRequest{IP: "127.0.0.1", Method: "POST", UserAgent: "Mozilla/5.0"},
		Transaction: EventTransaction{ID: tx.ID, Protocol: "oidc-basic-profile"},
		Secrets:     map[string]string{},
	}
	for _, id := range u.Identities {
		ev.User.Identities = append(ev.User.Identities, EventIdentity{
			Provider: id.Provider, UserID: id.UserID, Connection: id.Connection, IsSocial: id.IsSocial,
		})
	}
	return ev
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
	// Args are the call's arguments, as JSON.
	Args []json.RawMessage `json:"args"`
}

// LoginResult is how a login ended.
type LoginResult struct {
	// Succeeded reports that Auth0 issues tokens: Err is nil.
	Succeeded bool
	// Subject is the user the login ends as (the tokens' sub) when it
	// succeeded, and the subject it had at the end otherwise.
	Subject string
	// Denied is the reason given to api.access.deny, when the Action
	// denied the login.
	Denied string
	// MetadataDiscarded reports that the Action set metadata in the same
	// execution as setPrimaryUser, and Auth0 dropped it.
	MetadataDiscarded bool
	// Err says why the login failed, wrapping ErrUserNotFound,
	// ErrIdentityNotHeld, ErrSetPrimaryUser, ErrAccessDenied or
	// ErrActionFailed; its message is what the application is told. Nil
	// when the login succeeded.
	Err error
}

// Finish ends the login once the Action has run, by Auth0's rules:
//
//   - an Action that threw fails the login (ErrActionFailed);
//   - api.access.deny denies it (ErrAccessDenied), whatever else was called;
//   - setPrimaryUser may be called once, with an id of at most
//     MaxPrimaryUserIDLen characters (ErrSetPrimaryUser otherwise);
//   - the final subject is setPrimaryUser's id, or else the login's user;
//     the login succeeds only if it is an existing user (ErrUserNotFound
//     otherwise: the seed's symptom when the login's user was linked away)
//     that holds the identity used (ErrIdentityNotHeld otherwise);
//   - metadata set with api.user.setAppMetadata or setUserMetadata is
//     written to the final user, key by key, when the login succeeds, and
//     discarded when setPrimaryUser was called.
//
// A failed or denied login is a LoginResult with Err set, and a nil error.
// Finish returns an error when the Action called an api method the model
// does not know, when the transaction is already finished, or when the
// tenant fails to store the metadata.
func (tx *Transaction) Finish(ctx context.Context, run ActionRun) (LoginResult, error) {
	if tx.finished {
		return LoginResult{}, fmt.Errorf("postlogintest: transaction %s is already finished", tx.ID)
	}
	tx.finished = true
	res := LoginResult{Subject: tx.User.ID}
	if run.Error != "" {
		res.Err = fmt.Errorf("%w: %s", ErrActionFailed, run.Error)
		return res, nil
	}

	var (
		primary, denied string
		primarySet      bool
		deniedSet       bool
		meta            linking.Metadata
	)
	for _, c := range run.Calls {
		switch c.Method {
		case APISetPrimaryUser:
			id, err := stringArg(c, 0)
			switch {
			case err != nil:
				res.Err = fmt.Errorf("%w: %w", ErrSetPrimaryUser, err)
			case primarySet:
				res.Err = fmt.Errorf("%w: called more than once in a transaction", ErrSetPrimaryUser)
			case id == "" || len(id) > MaxPrimaryUserIDLen:
				res.Err = fmt.Errorf("%w: the id must have 1 to %d characters, got %d", ErrSetPrimaryUser, MaxPrimaryUserIDLen, len(id))
			}
			if res.Err != nil {
				return res, nil
			}
			primary, primarySet = id, true
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
			target := &meta.AppMetadata
			if c.Method == APISetUserMetadata {
				target = &meta.UserMetadata
			}
			if *target == nil {
				*target = map[string]any{}
			}
			(*target)[key] = value
		default:
			return LoginResult{}, fmt.Errorf("postlogintest: the Action called api.%s, which LoginFlow does not model", c.Method)
		}
	}
	if deniedSet {
		res.Denied = denied
		res.Err = fmt.Errorf("%w: %s", ErrAccessDenied, denied)
		return res, nil
	}

	if primarySet {
		res.Subject = primary
	}
	users := tx.flow.Tenant.Users()
	subject, ok := findUser(users, res.Subject)
	if !ok {
		res.Err = fmt.Errorf("%w: %q", ErrUserNotFound, res.Subject)
		if holder, held := holderOf(users, tx.Identity); held && !primarySet {
			res.Err = fmt.Errorf("%w (its identity %s was linked into %q during the login, and the Action did not call setPrimaryUser)",
				res.Err, tx.Identity.UserIDOf(), holder.ID)
		}
		return res, nil
	}
	if !subject.Holds(tx.Identity) {
		res.Err = fmt.Errorf("%w: %s is not among the identities of %q", ErrIdentityNotHeld, tx.Identity.UserIDOf(), subject.ID)
		return res, nil
	}

	hasMeta := len(meta.AppMetadata) > 0 || len(meta.UserMetadata) > 0
	switch {
	case hasMeta && primarySet:
		res.MetadataDiscarded = true
	case hasMeta:
		if err := tx.flow.Tenant.UpdateMetadata(ctx, subject.ID, meta); err != nil {
			return LoginResult{}, fmt.Errorf("postlogintest: store the metadata the Action set for %q: %w", subject.ID, err)
		}
	}
	res.Succeeded = true
	return res, nil
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
