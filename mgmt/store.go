// Package mgmt is the linking.UserStore over the Auth0 Management API, through
// go-auth0's *management.Management. It is the only package of the module
// that imports go-auth0.
//
// A Store makes one API call per UserStore call: users-by-email for
// UsersByEmail, a user read for User, a link for Link (and more when a link
// is refused with 400; see Store.Link). It also implements
// linking.MetadataWriter, linking.SessionRevoker and linking.EmailSearcher
// (Auth0's case-insensitive, eventually consistent user search), and can
// unlink.
//
// # Errors
//
// Errors carry the linking sentinels, and the HTTP status in an *APIError:
//
//	status                 sentinel
//	404                    linking.ErrNotFound
//	409                    linking.ErrConflict
//	400 on the link route  linking.ErrConflict (linking.ErrNotFound when the secondary user does not exist)
//	429                    linking.ErrRateLimited (also linking.ErrUnavailable)
//	5xx                    linking.ErrUnavailable
//	401, 403               ErrUnauthorized (also ErrConfig)
//
// A failure that is not such an answer falls in one of three classes:
//
//   - linking.ErrUnavailable: the tenant is out of reach for now (connection
//     refused or reset, timeouts, canceled contexts, 5xx); it may be
//     retried, and a policy may fail open on it. linking.ErrRateLimited
//     wraps it.
//   - ErrConfig: the Store is not set up to reach its tenant: credentials
//     refused by the token endpoint (ErrUnauthorized), a token endpoint
//     answering anything else than a token or a 429 or 5xx (e.g. plain HTTP
//     sent to an HTTPS port), a host name that does not exist, an HTTPS
//     client that reached a plain HTTP server, a certificate that is not
//     trusted or not the host's, a missing scope. It never wraps
//     linking.ErrUnavailable, and a Store call ends at it without a retry.
//   - an error with neither, for a malformed answer.
//
// Build a Store with New, which sets up the client credentials, timeouts and
// retries, and call Store.CheckAccess at startup; or build one with NewStore
// over a client of your own. The machine-to-machine application needs the
// scopes read:users and update:users, and read:connections for
// Store.ResolveConnectionIDs (set by New); delete:refresh_tokens and
// delete:sessions for RevokeSessions. ExportUsers needs read:users only.
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
// waits of Store.ExportPoll in between (250 ms doubling up to 5 s by
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
	"golang.org/x/sync/singleflight"

	"github.com/idlink/linking"
)

// Store is a linking.UserStore over the Auth0 Management API.
//
// A Store is safe for concurrent use. Set its fields, if needed, before the
// Store is used.
type Store struct {
	// ResolveConnectionIDs makes Link send the connection_id of a secondary
	// identity of the "auth0" provider (a database user) when the tenant has
	// several database connections, as Auth0 then requires. New sets it.
	//
	// It resolves lazily: a link is sent without connection_id first, and
	// only a refusal of it (400) makes the Store list the tenant's database
	// connections (GET /api/v2/connections?strategy=auth0, scope
	// read:connections), once per Store, shared by concurrent links; when
	// there are several, the link is sent again with the secondary's
	// connection_id, and later database links carry it from the start. A
	// tenant with one database connection thus costs no extra call until a
	// database link is refused, and then one list for the life of the Store.
	// Auth0 documents no error of its own for a missing connection_id, so
	// any 400 is taken as one that connection_id may explain. A database
	// connection created after the list is not known to the Store.
	//
	// Store.CheckAccess requires read:connections while it is set: a
	// tenant with several database connections cannot link its database
	// users without it. Clear it for a tenant with one database connection
	// whose application is not granted read:connections.
	ResolveConnectionIDs bool

	// ExportPoll says how long ExportUsers waits before each read of its
	// export job; nil means DefaultExportPoll.
	ExportPoll PollInterval

	// HTTPClient downloads the file of ExportUsers, which is not a
	// Management API call and carries no token. New sets it to the client of
	// the API requests (its timeout, its trusted roots); nil means a client
	// with DefaultTimeout.
	HTTPClient *http.Client

	// LookupBatch is how many logins' lookups one user search may serve
	// when lookups queue for the tenant's rate budget (see
	// UsersByEmailMaybeStale); 0 means DefaultLookupBatch, 1 never
	// batches: every lookup is a users-by-email, waiting for the budget.
	LookupBatch int

	m      *management.Management
	tokens *tokenSource // nil unless built by New
	budget *budget      // nil unless built by New
	batch  batcher

	connsGroup singleflight.Group
	mu         sync.Mutex
	dbConns    map[string]string // database connection name → id; nil until listed
}

var (
	_ linking.UserStore      = (*Store)(nil)
	_ linking.MetadataWriter = (*Store)(nil)
	_ linking.SessionRevoker = (*Store)(nil)
	_ linking.EmailSearcher  = (*Store)(nil)
	_ linking.StaleLookuper  = (*Store)(nil)
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
	err := s.call(withPriority(ctx, priorityLookup), "look up users by email", false, func(ctx context.Context) (err error) {
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
// consistent: a user created seconds ago may be missing. It reads a page of
// 100 users at a time, one call each, and returns at most 1,000.
func (s *Store) SearchUsersByEmail(ctx context.Context, email string) ([]linking.User, error) {
	if strings.ContainsAny(email, "\"\\") {
		return nil, fmt.Errorf("mgmt: search users by email %q: quotes and backslashes are not searchable", email)
	}
	return s.searchEmails(withPriority(ctx, priorityLookup), []string{email})
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
// user_id of secondary, and its connection_id when ResolveConnectionIDs
// finds it needed).
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
	resolve := s.ResolveConnectionIDs && secondary.Provider == "auth0"
	if resolve {
		if conns := s.listedDBConnections(); conns != nil {
			if err := setConnectionID(link, conns, secondary.Connection); err != nil {
				return fmt.Errorf("mgmt: %s: %w", op, err)
			}
		}
	}
	send := func() error {
		return s.call(ctx, op, true, func(ctx context.Context) error {
			_, err := s.m.User.Link(ctx, primaryID, link)
			return err
		})
	}
	err := send()
	var apiErr *APIError
	if resolve && link.ConnectionID == nil && errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest {
		conns, listErr := s.dbConnections(ctx)
		if listErr != nil {
			return fmt.Errorf("mgmt: %s: refused (%v), and its connection_id cannot be resolved: %w", op, apiErr, listErr)
		}
		if setErr := setConnectionID(link, conns, secondary.Connection); setErr != nil {
			return fmt.Errorf("mgmt: %s: %w", op, setErr)
		}
		if link.ConnectionID != nil {
			err = send()
		}
	}
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

// setConnectionID sets the connection_id of link to the id of the database
// connection named name when the tenant has several database connections
// (conns, by name), and leaves it unset when it has one or none.
func setConnectionID(link *management.UserIdentityLink, conns map[string]string, name string) error {
	if len(conns) < 2 {
		return nil
	}
	id, ok := conns[name]
	if !ok {
		return fmt.Errorf("mgmt: no database connection named %q among the tenant's %d", name, len(conns))
	}
	link.ConnectionID = &id
	return nil
}

// listedDBConnections returns the tenant's database connections by name, or
// nil until they are listed.
func (s *Store) listedDBConnections() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dbConns
}

// dbConnections returns the tenant's database connections by name, listing
// them on first use: one list for all concurrent callers, which runs on its
// own with the values of the ctx of the caller that starts it, bounded by
// DefaultTimeout. A failed list is tried again by the next call.
func (s *Store) dbConnections(ctx context.Context) (map[string]string, error) {
	return shared(ctx, &s.connsGroup, func() (map[string]string, error) {
		if conns := s.listedDBConnections(); conns != nil {
			return conns, nil // listed by a call that ended since the caller's check
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultTimeout)
		defer cancel()
		conns, err := s.listDBConnections(ctx)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.dbConns = conns
		s.mu.Unlock()
		return conns, nil
	})
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
	ctx, rec, cancel := withCallRecord(ctx)
	defer cancel(nil)
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
		last, configErr := rec.result()
		if configErr != nil {
			return fmt.Errorf("mgmt: %s: %w", op, configErr)
		}
		return fmt.Errorf("mgmt: %s: %w", op, classify(err, last, onLink))
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
