package linking

import (
	"context"
	"errors"
	"time"
)

// Identity is one way of signing in that an Auth0 user holds: a connection of a
// provider and the user's id at that provider.
//
// Provider and UserID name the identity; two identities are the same when both
// are equal (see Identity.Is). UserID is the part of an Auth0 user id after the
// "|": the identity "auth0" / "63d17c6a" belongs to the user "auth0|63d17c6a".
type Identity struct {
	// Provider is the identity provider, e.g. "auth0" (a database connection),
	// "email" (passwordless email), "google-oauth2", "waad".
	Provider string
	// UserID is the user's id at the provider, without the "provider|" prefix.
	UserID string
	// Connection is the name of the Auth0 connection, e.g.
	// "Username-Password-Authentication" or "email".
	Connection string
	// IsSocial reports whether the connection is a social one.
	IsSocial bool
	// ProfileData is the profile the provider holds for a linked (secondary)
	// identity, as Auth0 returns it in identities[].profileData; nil for a
	// user's own main identity.
	ProfileData map[string]any
}

// Is reports whether i and other name the same identity: the same provider and
// the same user id at that provider.
func (i Identity) Is(other Identity) bool {
	return i.Provider == other.Provider && i.UserID == other.UserID
}

// UserIDOf returns the Auth0 user id a user whose main identity is i has:
// "provider|user_id".
func (i Identity) UserIDOf() string { return i.Provider + "|" + i.UserID }

// isUserID reports whether id is i.UserIDOf(), without building it.
func (i Identity) isUserID(id string) bool {
	p := len(i.Provider)
	return len(id) == p+1+len(i.UserID) && id[:p] == i.Provider && id[p] == '|' && id[p+1:] == i.UserID
}

// User is an Auth0 user as the rule needs to see it.
type User struct {
	// ID is the Auth0 user id, "provider|user_id" of the user's main identity.
	ID string
	// Email is the email as Auth0 stores it. Auth0 lowercases the emails of
	// its database users; social and enterprise connections keep the case the
	// identity provider sent.
	Email string
	// EmailVerified reports whether the email is verified.
	EmailVerified bool
	// Identities are the identities the user holds. The first one is the
	// user's main identity, the one ID is made from.
	Identities []Identity
	// CreatedAt is when the user was created.
	CreatedAt time.Time
	// Blocked reports whether the user is blocked.
	Blocked bool
	// AppMetadata and UserMetadata are the user's metadata.
	AppMetadata, UserMetadata map[string]any
}

// MainIdentity returns the identity the user's ID is made from
// ("provider|user_id"), and whether the user holds it. A user that holds no
// such identity has no main identity: it is never guessed from another one,
// since a link must name the secondary user exactly.
func (u User) MainIdentity() (Identity, bool) {
	for _, id := range u.Identities {
		if id.isUserID(u.ID) {
			return id, true
		}
	}
	return Identity{}, false
}

// Holds reports whether the user holds the identity i.
func (u User) Holds(i Identity) bool {
	for _, id := range u.Identities {
		if id.Is(i) {
			return true
		}
	}
	return false
}

// Login is one login transaction: the user Auth0 has made the subject of the
// login (event.user in a post-login Action) and the identity the person
// authenticated with (event.connection and that connection's identity).
type Login struct {
	User     User
	Identity Identity
}

// UserStore is the part of an Auth0 tenant the rule uses: look users up by
// email, read one, link two.
//
// Implementations must be safe for concurrent use. Errors are classified with
// the sentinels of this package so that callers can use errors.Is:
// ErrNotFound, ErrConflict, ErrUnavailable (and ErrRateLimited, which is also
// ErrUnavailable). An error that carries none of them is treated as fatal for
// the current login. Every method must return once ctx is done.
//
// The package linkingtest has an in-memory implementation and a conformance
// suite (linkingtest.TestStore) that every UserStore should pass; the package
// mgmt implements it over the Auth0 Management API.
type UserStore interface {
	// UsersByEmail returns the users whose stored email equals email exactly,
	// with the case as given (Auth0's users-by-email is case-sensitive). No
	// match is an empty result, not an error. The returned users must not be
	// modified by the caller; the store must not modify them afterwards.
	UsersByEmail(ctx context.Context, email string) ([]User, error)

	// User returns the user with the given id, or an error wrapping
	// ErrNotFound when there is none.
	User(ctx context.Context, id string) (User, error)

	// Link links the identity secondary, which is the main identity of
	// another user, into the user primaryID. On success the secondary user no
	// longer exists and primaryID holds the identity.
	//
	// Link is not idempotent in Auth0: linking again fails. An identity that
	// primaryID already holds, or secondary being primaryID's own identity,
	// is an error wrapping ErrConflict; a missing primary or secondary user
	// wraps ErrNotFound. Because a link can succeed while its response is
	// lost, a caller that gets an error must read the primary back to learn
	// what happened (the Linker does).
	Link(ctx context.Context, primaryID string, secondary Identity) error
}

// Errors that stores return and that the Linker passes on, for errors.Is.
var (
	// ErrNotFound means the user does not exist.
	ErrNotFound = errors.New("linking: user not found")
	// ErrConflict means a link was refused because its result is already in
	// place or could never be: the identity is already linked, or the two
	// sides are the same.
	ErrConflict = errors.New("linking: link conflict")
	// ErrUnavailable means the store could not answer now: a transport
	// error, a timeout, a 5xx or a 429. Trying again later may succeed.
	ErrUnavailable = errors.New("linking: store unavailable")
	// ErrRateLimited means the store refused the call for its rate limit
	// (HTTP 429). It wraps ErrUnavailable: errors.Is(err, ErrUnavailable)
	// holds for every error that wraps it.
	ErrRateLimited error = rateLimitedError{}
	// ErrRateBudget means the store did not send a call because the
	// tenant's rate budget could not serve it before the caller's deadline:
	// nothing was sent. It wraps ErrRateLimited, and so ErrUnavailable.
	ErrRateBudget error = rateBudgetError{}
	// ErrInvalidLogin means the Login given to the Linker is not consistent:
	// no user id, or an identity the user does not hold.
	ErrInvalidLogin = errors.New("linking: invalid login")
)

// rateLimitedError is the type of ErrRateLimited, a sentinel that wraps
// another.
type rateLimitedError struct{}

func (rateLimitedError) Error() string { return "linking: store rate limit reached" }

// Unwrap makes ErrRateLimited also an ErrUnavailable.
func (rateLimitedError) Unwrap() error { return ErrUnavailable }

// rateBudgetError is the type of ErrRateBudget.
type rateBudgetError struct{}

func (rateBudgetError) Error() string {
	return "linking: store rate budget exhausted before the deadline"
}

// Unwrap makes ErrRateBudget also an ErrRateLimited.
func (rateBudgetError) Unwrap() error { return ErrRateLimited }

// StaleLookuper is implemented by stores that may answer a lookup by email
// from an eventually consistent source, such as a user search that serves
// several lookups at once under load. The Linker prefers it to UsersByEmail,
// and marks a Result decided on a stale answer (Result.Stale).
type StaleLookuper interface {
	// UsersByEmailMaybeStale is UsersByEmail, and reports whether the
	// answer may miss users created or changed in the last seconds.
	UsersByEmailMaybeStale(ctx context.Context, email string) (users []User, stale bool, err error)
}

// Metadata is a user's metadata, or the part of it to write.
type Metadata struct {
	UserMetadata map[string]any
	AppMetadata  map[string]any
}

// MetadataWriter is implemented by stores that can write a user's metadata.
// The Linker needs it when its MetadataPolicy moves metadata.
type MetadataWriter interface {
	// UpdateMetadata sets the given top-level keys of the user's
	// user_metadata and app_metadata to the given values, and leaves every
	// other key as it is (Auth0's PATCH /api/v2/users/{id}). A nil or empty
	// map leaves that metadata alone. A missing user wraps ErrNotFound.
	UpdateMetadata(ctx context.Context, userID string, m Metadata) error
}

// EmailSearcher is implemented by stores that can find users by email
// whatever its case. The Linker uses it when SearchCaseVariants is set.
type EmailSearcher interface {
	// SearchUsersByEmail returns the users whose stored email equals email
	// with ASCII case ignored. Auth0's user search (GET /api/v2/users with
	// q=email:"...") does this, but is eventually consistent: a user created
	// seconds ago may be missing.
	SearchUsersByEmail(ctx context.Context, email string) ([]User, error)
}

// SessionRevoker is implemented by stores that can end a user's sessions.
// The Linker needs it when RevokeSessions is set.
type SessionRevoker interface {
	// RevokeSessions revokes every refresh token and ends every session of
	// the user (Auth0: DELETE /api/v2/users/{id}/refresh-tokens and
	// /sessions). A missing user wraps ErrNotFound.
	RevokeSessions(ctx context.Context, userID string) error
}

// Notifier tells a person that a sign-in method was linked to their account,
// e.g. by email, so that a link they did not expect does not go unnoticed.
type Notifier interface {
	// NotifyLinked is called once after a new link is confirmed. An error is
	// reported in the Result and the events; it does not undo the link.
	NotifyLinked(ctx context.Context, primary User, linked Identity) error
}
