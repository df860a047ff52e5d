// Package mgmt is the linking.UserStore over the Auth0 Management API, through
// go-auth0's *management.Management. It is the only package of the module
// that imports go-auth0.
//
// A Store makes one API call per UserStore call: users-by-email for
// UsersByEmail, a user read for User, a link for Link (and one read more
// when a link is refused with 400; see Store.Link). It also implements
// linking.MetadataWriter, linking.SessionRevoker and linking.EmailSearcher
// (Auth0's case-insensitive, eventually consistent user search), and can
// unlink. Errors
// carry the linking sentinels, and the HTTP status in an *APIError:
//
//	status                 sentinel
//	404                    linking.ErrNotFound
//	409                    linking.ErrConflict
//	400 on the link route  linking.ErrConflict (linking.ErrNotFound when the secondary user does not exist)
//	429                    linking.ErrRateLimited (also linking.ErrUnavailable)
//	5xx                    linking.ErrUnavailable
//	401, 403               ErrUnauthorized
//
// Transport errors, timeouts and canceled contexts wrap
// linking.ErrUnavailable.
//
// Build a Store with New, which sets up the client credentials, timeouts and
// retries, or with NewStore over a client of your own. The machine-to-machine
// application needs the scopes read:users and update:users; add
// read:connections with Store.ResolveConnectionIDs, and delete:refresh_tokens
// and delete:sessions for RevokeSessions. ExportUsers needs read:users only.
//
// The package mgmttest has an emulator of the Management API, backed by the
// in-memory tenant of linkingtest, to run a Store against in tests.
//
// # Exporting users
//
// Store.ExportUsers writes the tenant's users to an io.Writer as Auth0's
// users-exports job makes them: gzipped newline-delimited JSON, one user per
// line, the form backfill.ReadExport reads. It costs one API call to create
// the job and one per read of the job until Auth0 completes it, with the
// waits of Store.ExportBackoff in between (250 ms doubling up to 5 s by
// default); then it downloads the file, which is not an API call: Auth0
// hands a pre-signed URL, fetched with Store.HTTPClient and no token, whose
// Timeout bounds the wait for the answer but not the transfer. Bound the
// whole export with the ctx you give it: a large tenant's job takes minutes.
// A job that Auth0 ends "failed" is an error wrapping ErrExportFailed.
package mgmt

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"sync"

	"github.com/auth0/go-auth0/management"

	"github.com/idlink/linking"
)

// Store is a linking.UserStore over the Auth0 Management API.
//
// A Store is safe for concurrent use. Set its fields, if needed, before the
// Store is used.
type Store struct {
	// ResolveConnectionIDs makes Link send the connection_id of a secondary
	// identity from an "auth0" database connection when the tenant has
	// several database connections, as Auth0 then requires. The first such
	// Link lists the tenant's database connections (scope
	// read:connections), once, and caches them; links of other providers
	// cost no extra call, and in a tenant with one database connection no
	// connection_id is sent.
	ResolveConnectionIDs bool

	// ExportBackoff says how long ExportUsers waits before each read of its
	// export job; nil means DefaultExportBackoff.
	ExportBackoff Backoff

	// HTTPClient downloads the file of ExportUsers, which is not a
	// Management API call and carries no token. New sets it to the client of
	// the API requests (its timeout, its trusted roots); nil means a client
	// with DefaultTimeout.
	HTTPClient *http.Client

	m *management.Management

	mu      sync.Mutex
	dbConns map[string]string // database connection name → id; nil until listed
}

var (
	_ linking.UserStore      = (*Store)(nil)
	_ linking.MetadataWriter = (*Store)(nil)
	_ linking.SessionRevoker = (*Store)(nil)
	_ linking.EmailSearcher  = (*Store)(nil)
)

// NewStore returns a Store over m, a client the caller has configured. New
// builds one with safe defaults; with a client of your own, give it an
// http.Client with a timeout (go-auth0's default has none). Errors of a Store
// over such a client carry no Auth0 errorCode (APIError.ErrorCode).
func NewStore(m *management.Management) *Store {
	return &Store{m: m}
}

// UsersByEmail returns the users whose email is exactly email, case included
// (GET /api/v2/users-by-email).
func (s *Store) UsersByEmail(ctx context.Context, email string) ([]linking.User, error) {
	var found []*management.User
	err := s.call(ctx, "look up users by email", false, func(ctx context.Context) (err error) {
		found, err = s.m.User.ListByEmail(ctx, email)
		return err
	})
	if err != nil {
		return nil, err
	}
	users := make([]linking.User, 0, len(found))
	for _, u := range found {
		if u != nil {
			users = append(users, toUser(u))
		}
	}
	return users, nil
}

// SearchUsersByEmail returns the users whose email equals email with its
// case ignored, through Auth0's user search (GET /api/v2/users with
// q=email:"..." and search_engine=v3; scope read:users), which is eventually
// consistent: a user created seconds ago may be missing. It returns at most
// 100 users.
func (s *Store) SearchUsersByEmail(ctx context.Context, email string) ([]linking.User, error) {
	if strings.ContainsAny(email, "\"\\") {
		return nil, fmt.Errorf("mgmt: search users by email %q: quotes and backslashes are not searchable", email)
	}
	var found *management.UserList
	err := s.call(ctx, "search users by email", false, func(ctx context.Context) (err error) {
		found, err = s.m.User.List(ctx, management.Query(`email:"`+email+`"`),
			management.Parameter("search_engine", "v3"), management.PerPage(100))
		return err
	})
	if err != nil {
		return nil, err
	}
	users := make([]linking.User, 0, len(found.Users))
	for _, u := range found.Users {
		if u != nil {
			users = append(users, toUser(u))
		}
	}
	return users, nil
}

// User returns the user id (GET /api/v2/users/{id}); an error wrapping
// linking.ErrNotFound when there is none.
func (s *Store) User(ctx context.Context, id string) (linking.User, error) {
	op := fmt.Sprintf("read user %q", id)
	if id == "" {
		return linking.User{}, fmt.Errorf("mgmt: %s: %w", op, linking.ErrNotFound)
	}
	var u *management.User
	err := s.call(ctx, op, false, func(ctx context.Context) (err error) {
		u, err = s.m.User.Read(ctx, id)
		return err
	})
	if err != nil {
		return linking.User{}, err
	}
	if u == nil {
		return linking.User{}, fmt.Errorf("mgmt: %s: empty response", op)
	}
	return toUser(u), nil
}

// Link links the user whose main identity is secondary into the user
// primaryID (POST /api/v2/users/{primaryID}/identities, with the provider and
// user_id of secondary).
//
// Auth0 refuses a link that is in place or impossible with 409 or 400, both
// errors wrapping linking.ErrConflict; when the secondary user does not exist
// the error wraps linking.ErrNotFound instead (told by Auth0's errorCode when
// known, or else by reading the secondary user, one more call on this
// failure path only).
func (s *Store) Link(ctx context.Context, primaryID string, secondary linking.Identity) error {
	op := fmt.Sprintf("link %s into %q", secondary.UserIDOf(), primaryID)
	if primaryID == "" {
		return fmt.Errorf("mgmt: %s: %w", op, linking.ErrNotFound)
	}
	link := &management.UserIdentityLink{
		Provider: &secondary.Provider,
		UserID:   &secondary.UserID,
	}
	if s.ResolveConnectionIDs && secondary.Provider == "auth0" {
		id, err := s.connectionID(ctx, secondary.Connection)
		if err != nil {
			return fmt.Errorf("mgmt: %s: %w", op, err)
		}
		if id != "" {
			link.ConnectionID = &id
		}
	}
	err := s.call(ctx, op, true, func(ctx context.Context) error {
		_, err := s.m.User.Link(ctx, primaryID, link)
		return err
	})
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest && apiErr.ErrorCode == "" &&
		s.secondaryMissing(ctx, secondary) {
		apiErr.Err = linking.ErrNotFound
	}
	return err
}

// Unlink removes the identity provider/userID from the user primaryID
// (DELETE /api/v2/users/{primaryID}/identities/{provider}/{userID}) and
// returns the identities the primary still holds. Auth0 recreates the
// identity as a standalone user, without the metadata it had before the
// link. A missing primary wraps linking.ErrNotFound; Auth0 answers 400, with
// no sentinel, for the primary's own identity or one it does not hold.
func (s *Store) Unlink(ctx context.Context, primaryID, provider, userID string) ([]linking.Identity, error) {
	op := fmt.Sprintf("unlink %s|%s from %q", provider, userID, primaryID)
	if primaryID == "" {
		return nil, fmt.Errorf("mgmt: %s: %w", op, linking.ErrNotFound)
	}
	var left []management.UserIdentity
	err := s.call(ctx, op, false, func(ctx context.Context) (err error) {
		left, err = s.m.User.Unlink(ctx, primaryID, provider, userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	ids := make([]linking.Identity, 0, len(left))
	for i := range left {
		ids = append(ids, toIdentity(&left[i]))
	}
	return ids, nil
}

// UpdateMetadata sets the given top-level keys of the user's user_metadata
// and app_metadata (PATCH /api/v2/users/{id}): Auth0 keeps the other keys,
// removes a key set to nil and replaces a nested object whole. A nil or empty
// map leaves that metadata alone; when both are, no call is made. A missing
// user wraps linking.ErrNotFound.
func (s *Store) UpdateMetadata(ctx context.Context, userID string, m linking.Metadata) error {
	op := fmt.Sprintf("update metadata of %q", userID)
	if userID == "" {
		return fmt.Errorf("mgmt: %s: %w", op, linking.ErrNotFound)
	}
	// go-auth0 decodes the answer into the request's maps: give it copies.
	update := &management.User{}
	if len(m.UserMetadata) > 0 {
		um := maps.Clone(m.UserMetadata)
		update.UserMetadata = &um
	}
	if len(m.AppMetadata) > 0 {
		am := maps.Clone(m.AppMetadata)
		update.AppMetadata = &am
	}
	if update.UserMetadata == nil && update.AppMetadata == nil {
		return nil
	}
	return s.call(ctx, op, false, func(ctx context.Context) error {
		return s.m.User.Update(ctx, userID, update)
	})
}

// RevokeSessions revokes every refresh token of the user, then ends every
// session (DELETE /api/v2/users/{id}/refresh-tokens, then
// DELETE /api/v2/users/{id}/sessions): two calls, with the scopes
// delete:refresh_tokens and delete:sessions; Auth0 offers these endpoints on
// Enterprise plans. A missing user wraps linking.ErrNotFound.
func (s *Store) RevokeSessions(ctx context.Context, userID string) error {
	if userID == "" {
		return fmt.Errorf("mgmt: revoke sessions of %q: %w", userID, linking.ErrNotFound)
	}
	err := s.call(ctx, fmt.Sprintf("revoke refresh tokens of %q", userID), false, func(ctx context.Context) error {
		return s.m.User.DeleteRefreshTokens(ctx, userID)
	})
	if err != nil {
		return err
	}
	return s.call(ctx, fmt.Sprintf("end sessions of %q", userID), false, func(ctx context.Context) error {
		return s.m.User.DeleteUserSessions(ctx, userID)
	})
}

// secondaryMissing reports whether the user whose main identity is secondary
// is known not to exist.
func (s *Store) secondaryMissing(ctx context.Context, secondary linking.Identity) bool {
	id := secondary.UserID
	if !strings.HasPrefix(id, secondary.Provider+"|") {
		id = secondary.UserIDOf()
	}
	_, err := s.User(ctx, id)
	return errors.Is(err, linking.ErrNotFound)
}

// connectionID returns the id of the database connection named name when the
// tenant has several database connections, and "" when it has one or none.
func (s *Store) connectionID(ctx context.Context, name string) (string, error) {
	s.mu.Lock()
	conns := s.dbConns
	s.mu.Unlock()
	if conns == nil {
		// Concurrent first links may list twice; none waits on another's
		// context.
		var err error
		if conns, err = s.listDBConnections(ctx); err != nil {
			return "", err
		}
		s.mu.Lock()
		s.dbConns = conns
		s.mu.Unlock()
	}
	if len(conns) < 2 {
		return "", nil
	}
	id, ok := conns[name]
	if !ok {
		return "", fmt.Errorf("mgmt: no database connection named %q among the tenant's %d", name, len(conns))
	}
	return id, nil
}

// listDBConnections returns the id of every database connection of the
// tenant, by name (GET /api/v2/connections?strategy=auth0).
func (s *Store) listDBConnections(ctx context.Context) (map[string]string, error) {
	conns := make(map[string]string)
	for page := 0; ; page++ {
		var list *management.ConnectionList
		err := s.call(ctx, "list database connections", false, func(ctx context.Context) (err error) {
			list, err = s.m.Connection.List(ctx, management.Parameter("strategy", "auth0"), management.Page(page))
			return err
		})
		if err != nil {
			return nil, err
		}
		if list == nil {
			return conns, nil
		}
		for _, c := range list.Connections {
			if c != nil && c.GetStrategy() == "auth0" {
				conns[c.GetName()] = c.GetID()
			}
		}
		if !list.HasNext() || len(list.Connections) == 0 {
			return conns, nil
		}
	}
}

// call runs one go-auth0 call and classifies its error, wrapped with op.
// onLink reports whether the call is a link.
//
// go-auth0 v1.45.0 panics with a reflect.Type when a response holds a
// user_id or email_verified of an unexpected JSON type; call turns that
// panic into an error, since the response, not the program, is at fault.
func (s *Store) call(ctx context.Context, op string, onLink bool, fn func(context.Context) error) (err error) {
	ctx, answers := withErrorAnswers(ctx)
	defer func() {
		if p := recover(); p != nil {
			t, ok := p.(reflect.Type)
			if !ok {
				panic(p)
			}
			err = fmt.Errorf("mgmt: %s: malformed response: unexpected JSON type %v", op, t)
		}
	}()
	if err := fn(ctx); err != nil {
		return fmt.Errorf("mgmt: %s: %w", op, classify(err, answers.get(), onLink))
	}
	return nil
}

// toUser converts a go-auth0 user. go-auth0 decodes an identity's user_id
// that Auth0 sends as a JSON number into its decimal string, through a
// float64: exact up to 2^53.
func toUser(u *management.User) linking.User {
	lu := linking.User{
		ID:            u.GetID(),
		Email:         u.GetEmail(),
		EmailVerified: u.GetEmailVerified(),
		CreatedAt:     u.GetCreatedAt(),
		Blocked:       u.GetBlocked(),
	}
	if u.AppMetadata != nil {
		lu.AppMetadata = *u.AppMetadata
	}
	if u.UserMetadata != nil {
		lu.UserMetadata = *u.UserMetadata
	}
	for _, id := range u.Identities {
		if id != nil {
			lu.Identities = append(lu.Identities, toIdentity(id))
		}
	}
	return lu
}

func toIdentity(id *management.UserIdentity) linking.Identity {
	li := linking.Identity{
		Provider:   id.GetProvider(),
		UserID:     id.GetUserID(),
		Connection: id.GetConnection(),
		IsSocial:   id.GetIsSocial(),
	}
	if id.ProfileData != nil {
		li.ProfileData = *id.ProfileData
	}
	return li
}
