// Package linkingtest provides an in-memory Auth0 tenant that implements
// linking.UserStore with Auth0's linking semantics, fault injection and call
// counters, and a conformance suite (TestStore) that every linking.UserStore
// should pass.
//
// The Tenant behaves like the Auth0 Management API where the linking rule
// depends on it: users-by-email is exact and case-sensitive; a link moves the
// secondary's main identity, with its profile in ProfileData, into the
// primary, deletes the secondary user and discards its metadata; linking is
// not idempotent; unlinking recreates the secondary as a standalone user
// without its old metadata. Errors are *APIError values carrying Auth0's
// status and message, classified with the linking sentinels.
package linkingtest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/idlink/linking"
)

// Method names a Tenant method, for call counters and fault injection.
type Method string

// The Tenant methods that count calls and take faults.
const (
	MethodUsersByEmail Method = "UsersByEmail"
	MethodUser         Method = "User"
	MethodLink         Method = "Link"
	MethodUnlink       Method = "Unlink"
	MethodUpdateUser   Method = "UpdateUser"
	MethodDeleteUser   Method = "DeleteUser"
	MethodAddUser      Method = "AddUser"
	// MethodUpdateMetadata and MethodRevokeSessions are the optional
	// capabilities linking.MetadataWriter and linking.SessionRevoker.
	MethodUpdateMetadata Method = "UpdateMetadata"
	MethodRevokeSessions Method = "RevokeSessions"
	// MethodSearchUsersByEmail is the optional capability
	// linking.EmailSearcher.
	MethodSearchUsersByEmail Method = "SearchUsersByEmail"
)

// APIError is an error as the Auth0 Management API reports it. Tenant methods
// return it so that an emulator can answer with the same status and body; Err
// is the linking sentinel that classifies it (errors.Is works through it).
type APIError struct {
	Status    int    // HTTP status, e.g. 400, 404, 409
	Message   string // Auth0's message, e.g. "Main identity and the new one are the same."
	ErrorCode string // Auth0's errorCode, e.g. "inexistent_user"; empty when Auth0's is not known
	Err       error  // linking.ErrNotFound, linking.ErrConflict, ...; may be nil
}

// Error returns the status and the message.
func (e *APIError) Error() string {
	return fmt.Sprintf("linkingtest: %d: %s", e.Status, e.Message)
}

// Unwrap returns Err.
func (e *APIError) Unwrap() error { return e.Err }

// Connection is an Auth0 connection of the tenant.
type Connection struct {
	ID       string // e.g. "con_0000000000000001"
	Name     string // e.g. "Username-Password-Authentication"
	Strategy string // the provider, e.g. "auth0", "email", "google-oauth2"
}

// Calls counts the calls made to each Tenant method.
type Calls map[Method]int

// Tenant is an in-memory Auth0 tenant. It is safe for concurrent use; every
// user it returns is a deep copy, and every user it is given is copied, so
// callers can never change its state except through its methods.
//
// Methods that take a ctx return an error wrapping ctx.Err() when ctx is
// already done; such a call is not counted and consumes no fault, like a
// request that was never sent. Every other call of a Method is counted in
// Calls, including calls failed by FailNext or CommitThenFail.
//
// The zero value is not usable; call NewTenant.
type Tenant struct {
	// Now is the tenant's clock, used for CreatedAt of users it creates
	// (e.g. the standalone user Unlink recreates). Nil means time.Now.
	// Set it before the tenant is used.
	Now func() time.Time

	mu          sync.Mutex
	users       map[string]*linking.User // by user id
	order       []string                 // user ids in creation order
	owners      map[string]string        // "provider|user_id" of every identity → id of the user holding it
	connections map[string]Connection    // by name
	sessions    map[string]int           // live sessions and refresh tokens, by user id
	calls       Calls
	faults      map[Method][]fault // FailNext, in order
	lost        []fault            // CommitThenFail, in order
}

// fault is n calls that return err.
type fault struct {
	n   int
	err error
}

var (
	_ linking.UserStore      = (*Tenant)(nil)
	_ linking.MetadataWriter = (*Tenant)(nil)
	_ linking.SessionRevoker = (*Tenant)(nil)
	_ linking.EmailSearcher  = (*Tenant)(nil)
)

// NewTenant returns a tenant holding users (see AddUser; adding them is not
// counted) and the default connections "Username-Password-Authentication"
// (auth0) and "email" (email). It panics if a user cannot be added: it is
// meant for test set-up.
func NewTenant(users ...linking.User) *Tenant {
	t := &Tenant{
		users:       make(map[string]*linking.User),
		owners:      make(map[string]string),
		connections: make(map[string]Connection),
		sessions:    make(map[string]int),
		calls:       make(Calls),
		faults:      make(map[Method][]fault),
	}
	t.AddConnection(Connection{ID: "con_0000000000000001", Name: "Username-Password-Authentication", Strategy: "auth0"})
	t.AddConnection(Connection{ID: "con_0000000000000002", Name: "email", Strategy: "email"})
	for _, u := range users {
		if err := t.add(u); err != nil {
			panic(err)
		}
	}
	return t
}

// Errors with Auth0's status codes and messages.
func errUserNotFound() error {
	return &APIError{404, "The user does not exist.", "inexistent_user", linking.ErrNotFound}
}

func errUserExists() error {
	return &APIError{409, "The user already exists.", "auth0_idp_error", linking.ErrConflict}
}

func errSameIdentity() error {
	return &APIError{400, "Main identity and the new one are the same.", "", linking.ErrConflict}
}

// begin checks ctx, counts the call and takes the call's fault, if any. It
// must be called with t.mu held.
func (t *Tenant) begin(ctx context.Context, m Method) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("linkingtest: %s: %w", m, err)
	}
	t.calls[m]++
	q := t.faults[m]
	err := take(&q)
	t.faults[m] = q
	return err
}

// take consumes one call of the first fault in q and returns its error, or
// nil when q is empty.
func take(q *[]fault) error {
	if len(*q) == 0 {
		return nil
	}
	f := &(*q)[0]
	if f.n--; f.n == 0 {
		*q = (*q)[1:]
	}
	return f.err
}

func (t *Tenant) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// AddUser creates the user u (a copy). u.ID must be "provider|user_id" of
// u.Identities[0], the user's main identity. A zero CreatedAt is set from the
// tenant's clock.
//
// An existing id, or an identity another user already holds, is an *APIError
// 409 wrapping linking.ErrConflict.
func (t *Tenant) AddUser(ctx context.Context, u linking.User) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.begin(ctx, MethodAddUser); err != nil {
		return err
	}
	return t.add(u)
}

// add stores a copy of u. It must be called with t.mu held, or before t is
// shared.
func (t *Tenant) add(u linking.User) error {
	if len(u.Identities) == 0 {
		return fmt.Errorf("linkingtest: add user %q: no identity", u.ID)
	}
	if main := u.Identities[0].UserIDOf(); u.ID != main {
		return fmt.Errorf("linkingtest: add user %q: id is not that of its main identity %q", u.ID, main)
	}
	if _, ok := t.users[u.ID]; ok {
		return errUserExists()
	}
	for _, id := range u.Identities {
		if _, ok := t.owners[id.UserIDOf()]; ok {
			return errUserExists()
		}
	}
	c := copyUser(u)
	if c.CreatedAt.IsZero() {
		c.CreatedAt = t.now()
	}
	t.store(&c)
	return nil
}

// store inserts u, which must be new, at the end of the creation order.
func (t *Tenant) store(u *linking.User) {
	t.users[u.ID] = u
	t.order = append(t.order, u.ID)
	for _, id := range u.Identities {
		t.owners[id.UserIDOf()] = u.ID
	}
}

// remove deletes the user id, which must exist, and frees its identities.
func (t *Tenant) remove(id string) {
	for _, i := range t.users[id].Identities {
		delete(t.owners, i.UserIDOf())
	}
	delete(t.users, id)
	t.order = slices.DeleteFunc(t.order, func(s string) bool { return s == id })
}

// UsersByEmail returns the users whose Email equals email exactly, case
// included, in creation order. No match is an empty result and a nil error.
func (t *Tenant) UsersByEmail(ctx context.Context, email string) ([]linking.User, error) {
	return t.usersByEmail(ctx, MethodUsersByEmail, func(stored string) bool { return stored == email })
}

// SearchUsersByEmail returns the users whose email equals email with ASCII
// case ignored, in creation order, like Auth0's user search with
// q=email:"...". Unlike Auth0's, the tenant's search sees every user at once.
func (t *Tenant) SearchUsersByEmail(ctx context.Context, email string) ([]linking.User, error) {
	lower := asciiLower(email)
	return t.usersByEmail(ctx, MethodSearchUsersByEmail, func(stored string) bool { return asciiLower(stored) == lower })
}

func (t *Tenant) usersByEmail(ctx context.Context, m Method, match func(string) bool) ([]linking.User, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.begin(ctx, m); err != nil {
		return nil, err
	}
	users := []linking.User{}
	for _, id := range t.order {
		if u := t.users[id]; u.Email != "" && match(u.Email) {
			users = append(users, copyUser(*u))
		}
	}
	return users, nil
}

// asciiLower lowercases the ASCII letters of s only, as Auth0's search
// normalizes emails.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// User returns the user id. A missing user is an *APIError 404 wrapping
// linking.ErrNotFound.
func (t *Tenant) User(ctx context.Context, id string) (linking.User, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.begin(ctx, MethodUser); err != nil {
		return linking.User{}, err
	}
	u, ok := t.users[id]
	if !ok {
		return linking.User{}, errUserNotFound()
	}
	return copyUser(*u), nil
}

// Link links the user whose main identity is secondary into the user
// primaryID, as POST /api/v2/users/{primaryID}/identities does. Only
// secondary.Provider and secondary.UserID are used; UserID may also be given
// as "provider|user_id".
//
// On success the primary holds, after its own identities, the secondary's
// main identity (Connection and IsSocial kept) with the secondary's profile
// in ProfileData ("email" when it has one, "email_verified"); the secondary
// user no longer exists and its metadata is discarded; the primary's id,
// email and metadata are unchanged.
//
// Errors are *APIError values, checked in this order:
//   - 404 wrapping linking.ErrNotFound: primaryID does not exist;
//   - 400 wrapping linking.ErrConflict: secondary is the primary's own
//     identity ("Main identity and the new one are the same.");
//   - 409 wrapping linking.ErrConflict: the primary already holds secondary
//     ("Specified identity already exists"). A second Link after a committed
//     one gets this error;
//   - 400 wrapping linking.ErrNotFound: no user has secondary as its main
//     identity ("Provided secondary account not found");
//   - 400 wrapping linking.ErrConflict: the secondary user holds linked
//     identities of its own.
//
// A failed Link changes nothing. See also FailNext and CommitThenFail.
func (t *Tenant) Link(ctx context.Context, primaryID string, secondary linking.Identity) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.begin(ctx, MethodLink); err != nil {
		return err
	}
	err := t.link(primaryID, secondary)
	if lost := take(&t.lost); lost != nil {
		return lost
	}
	return err
}

func (t *Tenant) link(primaryID string, secondary linking.Identity) error {
	primary, ok := t.users[primaryID]
	if !ok {
		return errUserNotFound()
	}
	secondary.UserID = strings.TrimPrefix(secondary.UserID, secondary.Provider+"|")
	if main, _ := primary.MainIdentity(); secondary.UserIDOf() == primaryID || main.Is(secondary) {
		return errSameIdentity()
	}
	if primary.Holds(secondary) {
		return &APIError{409, "Specified identity already exists", "", linking.ErrConflict}
	}
	su, ok := t.users[secondary.UserIDOf()]
	if !ok {
		return &APIError{400, "Provided secondary account not found", "", linking.ErrNotFound}
	}
	if len(su.Identities) > 1 {
		return &APIError{400, "Provided secondary account has linked identities: unlink them first.", "", linking.ErrConflict}
	}
	linked, _ := su.MainIdentity()
	linked = copyIdentity(linked)
	linked.ProfileData = map[string]any{"email_verified": su.EmailVerified}
	if su.Email != "" {
		linked.ProfileData["email"] = su.Email
	}
	t.remove(su.ID)
	primary.Identities = append(primary.Identities, linked)
	t.owners[linked.UserIDOf()] = primary.ID
	return nil
}

// Unlink removes the identity provider/userID from the user primaryID, as
// DELETE /api/v2/users/{primaryID}/identities/{provider}/{userID} does, and
// returns the identities the primary still holds.
//
// The identity becomes a standalone user again: id "provider|userID", Email
// and EmailVerified from the identity's ProfileData, the identity (without
// ProfileData) as its only one, no metadata, CreatedAt from the tenant's
// clock.
//
// Errors are *APIError values: 404 wrapping linking.ErrNotFound when
// primaryID does not exist; 400 wrapping linking.ErrConflict when the
// identity is the primary's main identity; 400 wrapping linking.ErrNotFound
// when the primary does not hold it. A failed Unlink changes nothing.
func (t *Tenant) Unlink(ctx context.Context, primaryID, provider, userID string) ([]linking.Identity, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.begin(ctx, MethodUnlink); err != nil {
		return nil, err
	}
	primary, ok := t.users[primaryID]
	if !ok {
		return nil, errUserNotFound()
	}
	target := linking.Identity{Provider: provider, UserID: userID}
	if main, _ := primary.MainIdentity(); target.UserIDOf() == primaryID || main.Is(target) {
		return nil, &APIError{400, "The main identity of a user cannot be unlinked.", "", linking.ErrConflict}
	}
	i := slices.IndexFunc(primary.Identities, target.Is)
	if i < 0 {
		return nil, &APIError{400, "The identity is not linked to this user.", "", linking.ErrNotFound}
	}
	if _, ok := t.users[target.UserIDOf()]; ok {
		return nil, errUserExists()
	}
	id := primary.Identities[i]
	primary.Identities = slices.Delete(primary.Identities, i, i+1)
	delete(t.owners, id.UserIDOf())

	u := &linking.User{ID: id.UserIDOf(), CreatedAt: t.now()}
	u.Email, _ = id.ProfileData["email"].(string)
	u.EmailVerified, _ = id.ProfileData["email_verified"].(bool)
	id.ProfileData = nil
	u.Identities = []linking.Identity{id}
	t.store(u)
	return copyIdentities(primary.Identities), nil
}

// UpdateUser applies fn to a copy of the user id and stores the result when
// fn returns nil, and returns the user as stored. fn runs with the tenant
// locked: it must not call the tenant.
//
// A missing user is an *APIError 404 wrapping linking.ErrNotFound. The error
// of fn is returned wrapped. fn must not change the user's ID, and must not
// give the user an identity another user holds; either is an error, and
// nothing is stored.
func (t *Tenant) UpdateUser(ctx context.Context, id string, fn func(*linking.User) error) (linking.User, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.begin(ctx, MethodUpdateUser); err != nil {
		return linking.User{}, err
	}
	old, ok := t.users[id]
	if !ok {
		return linking.User{}, errUserNotFound()
	}
	u := copyUser(*old)
	if err := fn(&u); err != nil {
		return linking.User{}, fmt.Errorf("linkingtest: update user %q: %w", id, err)
	}
	if u.ID != id {
		return linking.User{}, fmt.Errorf("linkingtest: update user %q: the id cannot change (got %q)", id, u.ID)
	}
	for _, i := range u.Identities {
		if owner, ok := t.owners[i.UserIDOf()]; ok && owner != id {
			return linking.User{}, fmt.Errorf("linkingtest: update user %q: identity %s belongs to %q: %w",
				id, i.UserIDOf(), owner, linking.ErrConflict)
		}
	}
	for _, i := range old.Identities {
		delete(t.owners, i.UserIDOf())
	}
	for _, i := range u.Identities {
		t.owners[i.UserIDOf()] = id
	}
	*old = copyUser(u)
	return u, nil
}

// UpdateMetadata sets the given top-level keys of the user's user_metadata
// and app_metadata, as Auth0's PATCH /api/v2/users/{id} does: other keys stay,
// a key set to nil is removed, a nested object replaces the old value whole.
// A missing user is an *APIError 404 wrapping linking.ErrNotFound.
func (t *Tenant) UpdateMetadata(ctx context.Context, id string, m linking.Metadata) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.begin(ctx, MethodUpdateMetadata); err != nil {
		return err
	}
	u, ok := t.users[id]
	if !ok {
		return errUserNotFound()
	}
	u.UserMetadata = patch(u.UserMetadata, m.UserMetadata)
	u.AppMetadata = patch(u.AppMetadata, m.AppMetadata)
	return nil
}

// patch merges the top-level keys of update into a copy of m; nil values
// remove keys.
func patch(m, update map[string]any) map[string]any {
	if len(update) == 0 {
		return m
	}
	out := copyMap(m)
	if out == nil {
		out = make(map[string]any, len(update))
	}
	for k, v := range copyMap(update) {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// OpenSession records a session (with its refresh token) of the user, as a
// login to that account would. It is not counted and takes no faults.
func (t *Tenant) OpenSession(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sessions[id]++
}

// Sessions returns how many sessions of the user are live.
func (t *Tenant) Sessions(id string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sessions[id]
}

// RevokeSessions ends every session and refresh token of the user. A missing
// user is an *APIError 404 wrapping linking.ErrNotFound.
func (t *Tenant) RevokeSessions(ctx context.Context, id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.begin(ctx, MethodRevokeSessions); err != nil {
		return err
	}
	if _, ok := t.users[id]; !ok {
		return errUserNotFound()
	}
	delete(t.sessions, id)
	return nil
}

// DeleteUser deletes the user id. A missing user is an *APIError 404
// wrapping linking.ErrNotFound.
func (t *Tenant) DeleteUser(ctx context.Context, id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.begin(ctx, MethodDeleteUser); err != nil {
		return err
	}
	if _, ok := t.users[id]; !ok {
		return errUserNotFound()
	}
	t.remove(id)
	return nil
}

// Users returns a copy of every user, in creation order. It is not counted
// and takes no faults.
func (t *Tenant) Users() []linking.User {
	t.mu.Lock()
	defer t.mu.Unlock()
	users := make([]linking.User, 0, len(t.order))
	for _, id := range t.order {
		users = append(users, copyUser(*t.users[id]))
	}
	return users
}

// Calls returns a copy of the call counters.
func (t *Tenant) Calls() Calls {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := make(Calls, len(t.calls))
	for m, n := range t.calls {
		c[m] = n
	}
	return c
}

// ResetCalls sets every call counter to zero. Queued faults stay.
func (t *Tenant) ResetCalls() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.calls)
}

// FailNext makes the next n calls of m return err, as given, and change
// nothing. Faults queued for the same method apply one after the other;
// faults for different methods are independent. n < 1 does nothing.
//
// For Link, a FailNext fault comes before any CommitThenFail fault: the call
// fails without linking and does not consume the CommitThenFail fault.
func (t *Tenant) FailNext(m Method, n int, err error) {
	if n < 1 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.faults[m] = append(t.faults[m], fault{n, err})
}

// CommitThenFail makes the next n Link calls run as usual and then return
// err, as given, instead of their outcome: the link is in place but the
// caller does not learn it, as when Auth0 commits a link and its response is
// lost. n < 1 does nothing.
func (t *Tenant) CommitThenFail(n int, err error) {
	if n < 1 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lost = append(t.lost, fault{n, err})
}

// AddConnection adds c to the tenant, replacing a connection of the same
// name.
func (t *Tenant) AddConnection(c Connection) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.connections[c.Name] = c
}

// Connections returns the tenant's connections, sorted by name.
func (t *Tenant) Connections() []Connection {
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := make([]Connection, 0, len(t.connections))
	for _, c := range t.connections {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	return cs
}

// ConnectionByName returns the connection named name, and whether there is
// one.
func (t *Tenant) ConnectionByName(name string) (Connection, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.connections[name]
	return c, ok
}
