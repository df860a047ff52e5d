package mgmt_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/auth0/go-auth0/management"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sync/errgroup"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// The seed scenario: a verified database user, and the passwordless user
// Auth0 creates on the same person's first passwordless login.
var (
	dbJane = linking.User{
		ID:            "auth0|64b7f0c2a1e3d4c5b6a79801",
		Email:         "jane@example.com",
		EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "auth0", UserID: "64b7f0c2a1e3d4c5b6a79801", Connection: "Username-Password-Authentication"},
		},
		CreatedAt:   time.Date(2024, 3, 1, 9, 30, 0, 0, time.UTC),
		AppMetadata: map[string]any{"plan": "pro"},
	}
	emailJane = linking.User{
		ID:            "email|6650a1b2c3d4e5f6a7b8c9d0",
		Email:         "jane@example.com",
		EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "email", UserID: "6650a1b2c3d4e5f6a7b8c9d0", Connection: "email"},
		},
		CreatedAt: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
	}
)

func loginOf(u linking.User) linking.Login {
	return linking.Login{User: u, Identity: u.Identities[0]}
}

// identityCopies counts the identities of u that are id.
func identityCopies(u linking.User, id linking.Identity) int {
	n := 0
	for _, i := range u.Identities {
		if i.Is(id) {
			n++
		}
	}
	return n
}

// TestLinkerSeedScenario: the first passwordless login links into the
// database user, with one lookup and one link.
func TestLinkerSeedScenario(t *testing.T) {
	srv := newServer(t, []linking.User{dbJane, emailJane})
	l := &linking.Linker{Store: srv.Store(t)}

	r, err := l.Link(context.Background(), loginOf(emailJane))
	if err != nil {
		t.Fatalf("Link: %v", err)
	}
	if r.Action != linking.ActionLink || r.PrimaryUserID != dbJane.ID {
		t.Errorf("Link: got %v into %q, want link into %q", r.Action, r.PrimaryUserID, dbJane.ID)
	}
	if got := srv.APIRequests(); got != 2 {
		t.Errorf("API requests: got %d, want 2 (lookup, link)", got)
	}
	primary, err := srv.Tenant.User(context.Background(), dbJane.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := identityCopies(primary, emailJane.Identities[0]); n != 1 {
		t.Errorf("copies of the passwordless identity on the primary: got %d, want 1", n)
	}
}

// TestLinkerR1RateLimited: the emulator answers 429 to every link; after the
// SDK's retry, the Linker returns an error wrapping ErrRateLimited, and the
// tenant holds no partial link.
func TestLinkerR1RateLimited(t *testing.T) {
	t.Parallel()
	srv := newServer(t, []linking.User{dbJane, emailJane})
	srv.FailNext(mgmttest.RouteLink, 10, 429)
	before := srv.Tenant.Users()
	oneRetry := mgmt.WithRetryStrategy(management.RetryStrategy{MaxRetries: 1, Statuses: []int{429}})
	l := &linking.Linker{Store: srv.Store(t, oneRetry)}

	r, err := l.Link(context.Background(), loginOf(emailJane))
	if !errors.Is(err, linking.ErrRateLimited) || !errors.Is(err, linking.ErrUnavailable) {
		t.Errorf("Link: got error %v, want one wrapping ErrRateLimited and ErrUnavailable", err)
	}
	if r.Action != linking.ActionDeny || r.Reason != linking.ReasonStoreError {
		t.Errorf("Link: got %v (%s), want deny (%s)", r.Action, r.Reason, linking.ReasonStoreError)
	}
	if got := srv.Requests(mgmttest.RouteLink); got != 2 {
		t.Errorf("link requests: got %d, want 2 (one retry)", got)
	}
	if diff := cmp.Diff(before, srv.Tenant.Users()); diff != "" {
		t.Errorf("tenant changed (-before +after):\n%s", diff)
	}
}

// TestRateLimitReset: a 429 that outlives the retries carries the time of
// X-RateLimit-Reset, for callers that pace themselves (the backfill does).
func TestRateLimitReset(t *testing.T) {
	t.Parallel()
	srv := newServer(t, []linking.User{dbJane})
	store := srv.Store(t, mgmt.WithRetryStrategy(management.RetryStrategy{}))
	ctx := context.Background()
	if _, err := store.UsersByEmail(ctx, dbJane.Email); err != nil {
		t.Fatalf("first lookup: %v", err)
	}
	srv.FailNext(mgmttest.RouteUsersByEmail, 1, http.StatusTooManyRequests)
	before := time.Now().Truncate(time.Second)
	_, err := store.UsersByEmail(ctx, dbJane.Email)
	var apiErr *mgmt.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 429 {
		t.Fatalf("second lookup: got %v, want a 429 *mgmt.APIError", err)
	}
	if reset := apiErr.RateLimitReset(); reset.Before(before) || reset.After(before.Add(3*time.Second)) {
		t.Errorf("RateLimitReset() = %v, want within 3 s after %v", reset, before)
	}
}

// TestLinkerR1RateLimitRecovers: the token bucket is empty when the link
// comes; the Store, pacing itself by the tenant's X-RateLimit headers, waits
// for the token they promise and links without drawing a 429.
func TestLinkerR1RateLimitRecovers(t *testing.T) {
	t.Parallel()
	srv := newServer(t, []linking.User{dbJane, emailJane}, mgmttest.WithRateLimit(1, 1))
	oneRetry := mgmt.WithRetryStrategy(management.RetryStrategy{MaxRetries: 1, Statuses: []int{429}})
	l := &linking.Linker{Store: srv.Store(t, oneRetry)}

	r, err := l.Link(context.Background(), loginOf(emailJane))
	if err != nil {
		t.Fatalf("Link: %v", err)
	}
	if r.Action != linking.ActionLink || r.PrimaryUserID != dbJane.ID {
		t.Errorf("Link: got %v into %q, want link into %q", r.Action, r.PrimaryUserID, dbJane.ID)
	}
	if got := srv.Requests(mgmttest.RouteLink); got != 1 {
		t.Errorf("link requests: got %d, want 1 (no 429)", got)
	}
}

// TestLinkerR2LostResponse: the emulator commits the link and drops the
// connection; the SDK sends the link again, the emulator refuses it, and the
// Linker reads the primary back and reports the link.
func TestLinkerR2LostResponse(t *testing.T) {
	t.Parallel()
	srv := newServer(t, []linking.User{dbJane, emailJane})
	srv.CommitThenDrop(mgmttest.RouteLink, 1)
	l := &linking.Linker{Store: srv.Store(t)} // DefaultRetryStrategy

	r, err := l.Link(context.Background(), loginOf(emailJane))
	if err != nil {
		t.Fatalf("Link: %v", err)
	}
	if r.Action != linking.ActionLink || r.PrimaryUserID != dbJane.ID || r.Reason != linking.ReasonAlreadyLinked {
		t.Errorf("Link: got %v into %q (%s), want link into %q (%s)",
			r.Action, r.PrimaryUserID, r.Reason, dbJane.ID, linking.ReasonAlreadyLinked)
	}
	if got := srv.Requests(mgmttest.RouteLink); got != 2 {
		t.Errorf("link requests: got %d, want 2 (committed and dropped, then refused)", got)
	}
	if got := srv.Requests(mgmttest.RouteUser); got != 1 {
		t.Errorf("reads: got %d, want 1 (the read-back)", got)
	}
	primary, err := srv.Tenant.User(context.Background(), dbJane.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := identityCopies(primary, emailJane.Identities[0]); n != 1 {
		t.Errorf("copies of the passwordless identity on the primary: got %d, want 1", n)
	}
}

// pair returns the i-th database user and passwordless user sharing an
// email.
func pair(i int) (db, pwless linking.User) {
	email := fmt.Sprintf("user%d@example.com", i)
	db = linking.User{
		ID: fmt.Sprintf("auth0|db%06d", i), Email: email, EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: fmt.Sprintf("db%06d", i), Connection: "Username-Password-Authentication"}},
	}
	pwless = linking.User{
		ID: fmt.Sprintf("email|pw%06d", i), Email: email, EmailVerified: true,
		Identities: []linking.Identity{{Provider: "email", UserID: fmt.Sprintf("pw%06d", i), Connection: "email"}},
	}
	return db, pwless
}

// TestLinkerR5OneTokenRequest: 100 logins, concurrent, through one Store
// built by mgmt.New with client credentials over TLS, cost one token
// request.
func TestLinkerR5OneTokenRequest(t *testing.T) {
	const logins = 100
	tenant := linkingtest.NewTenant()
	var logs []linking.Login
	for i := range logins {
		db, pwless := pair(i)
		for _, u := range []linking.User{db, pwless} {
			if err := tenant.AddUser(context.Background(), u); err != nil {
				t.Fatal(err)
			}
		}
		logs = append(logs, loginOf(pwless))
	}
	srv := mgmttest.NewTLSServer(tenant)
	t.Cleanup(srv.Close)
	store, err := mgmt.New(context.Background(), srv.Domain(), srv.ClientID(), srv.ClientSecret(), srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	l := &linking.Linker{Store: store}

	var g errgroup.Group
	g.SetLimit(10)
	for _, login := range logs {
		g.Go(func() error {
			r, err := l.Link(context.Background(), login)
			if err == nil && r.Action != linking.ActionLink {
				err = fmt.Errorf("login %s: got %v (%s), want link", login.User.ID, r.Action, r.Reason)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := srv.TokenRequests(); got != 1 {
		t.Errorf("token requests: got %d, want 1", got)
	}
	if got := srv.APIRequests(); got != 2*logins {
		t.Errorf("API requests: got %d, want %d", got, 2*logins)
	}
}

// TestLinkerR6StoreDown: with the emulator closed, or answering after a
// minute, Link returns an error wrapping ErrUnavailable within the caller's
// deadline, and the login is denied.
func TestLinkerR6StoreDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fail func(*mgmttest.Server)
		// deadline reports whether the error must be the context's
		// deadline: a hanging answer ends only with it.
		deadline bool
	}{
		{"closed", (*mgmttest.Server).Close, false},
		{"hanging", func(s *mgmttest.Server) { s.SetLatency(time.Minute) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, []linking.User{dbJane, emailJane})
			store := srv.Store(t)
			if _, err := store.User(context.Background(), dbJane.ID); err != nil { // fetch the token
				t.Fatal(err)
			}
			tt.fail(srv)
			l := &linking.Linker{Store: store}

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			r, err := l.Link(ctx, loginOf(emailJane))
			if !errors.Is(err, linking.ErrUnavailable) {
				t.Errorf("Link: got error %v, want one wrapping ErrUnavailable", err)
			}
			if tt.deadline && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Link: got error %v, want one wrapping context.DeadlineExceeded", err)
			}
			if r.Action != linking.ActionDeny {
				t.Errorf("Link: got %v, want deny", r.Action)
			}
		})
	}
}

// TestLinkerCase: a database user stored as "jane@example.com" (Auth0
// lowercases them) is found for a social login carrying "Jane@Example.com",
// by the Linker's second, lowercased lookup: users-by-email is
// case-sensitive.
func TestLinkerCase(t *testing.T) {
	social := linking.User{
		ID: "google-oauth2|109876543210987654321", Email: "Jane@Example.com", EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "google-oauth2", UserID: "109876543210987654321", Connection: "google-oauth2", IsSocial: true},
		},
	}
	srv := newServer(t, []linking.User{dbJane, social})
	l := &linking.Linker{
		Store:  srv.Store(t),
		Policy: linking.Policy{TrustedProviders: []string{"auth0", "email", "google-oauth2"}},
	}

	r, err := l.Link(context.Background(), loginOf(social))
	if err != nil {
		t.Fatalf("Link: %v", err)
	}
	if r.Action != linking.ActionLink || r.PrimaryUserID != dbJane.ID {
		t.Errorf("Link: got %v into %q (%s), want link into %q", r.Action, r.PrimaryUserID, r.Reason, dbJane.ID)
	}
	if got := srv.Requests(mgmttest.RouteUsersByEmail); got != 2 {
		t.Errorf("lookups: got %d, want 2 (as given, lowercased)", got)
	}
}

// TestLinkerCaseSearch: a social user stored as "Jane@Example.com" is found
// when the login carries "jane@example.com", through Auth0's user search
// (Linker.SearchCaseVariants), which users-by-email cannot do.
func TestLinkerCaseSearch(t *testing.T) {
	social := linking.User{
		ID: "google-oauth2|109876543210987654321", Email: "Jane@Example.com", EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "google-oauth2", UserID: "109876543210987654321", Connection: "google-oauth2", IsSocial: true},
		},
	}
	policy := linking.Policy{TrustedProviders: []string{"auth0", "email", "google-oauth2"}}
	for _, search := range []bool{false, true} {
		srv := newServer(t, []linking.User{social, emailJane})
		l := &linking.Linker{Store: srv.Store(t), Policy: policy, SearchCaseVariants: search}
		r, err := l.Link(context.Background(), loginOf(emailJane))
		if err != nil {
			t.Fatalf("search=%v: Link: %v", search, err)
		}
		wantPrimary, wantSearches := "", 0
		if search {
			wantPrimary, wantSearches = social.ID, 1
		}
		if r.PrimaryUserID != wantPrimary {
			t.Errorf("search=%v: got %v into %q (%s), want primary %q", search, r.Action, r.PrimaryUserID, r.Reason, wantPrimary)
		}
		if got := srv.Requests(mgmttest.RouteListUsers); got != wantSearches {
			t.Errorf("search=%v: searches: got %d, want %d", search, got, wantSearches)
		}
		if got := srv.Requests(mgmttest.RouteUsersByEmail); got != 1 {
			t.Errorf("search=%v: lookups: got %d, want 1", search, got)
		}
	}
}

// TestMinimalScopes: read:users and update:users are enough to link;
// revoking sessions needs more, and is refused with ErrUnauthorized.
func TestMinimalScopes(t *testing.T) {
	srv := newServer(t, []linking.User{dbJane, emailJane}, mgmttest.WithScopes("read:users", "update:users"))
	s := srv.Store(t, noRetries)
	l := &linking.Linker{Store: s}

	r, err := l.Link(context.Background(), loginOf(emailJane))
	if err != nil || r.Action != linking.ActionLink {
		t.Fatalf("Link: got %v, %v; want link, no error", r.Action, err)
	}
	err = s.RevokeSessions(context.Background(), dbJane.ID)
	checkSentinels(t, err, mgmt.ErrUnauthorized, mgmt.ErrConfig)
	var apiErr *mgmt.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 403 || apiErr.ErrorCode != "insufficient_scope" {
		t.Errorf("RevokeSessions: got %v, want a 403 insufficient_scope APIError", err)
	}
}

// TestWrongCredentials: a wrong client secret is ErrUnauthorized, not a
// store outage.
func TestWrongCredentials(t *testing.T) {
	srv := newServer(t, []linking.User{dbJane})
	store, err := mgmt.New(t.Context(), srv.Domain(), srv.ClientID(), "wrong", append(srv.ClientOptions(), noRetries)...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.User(context.Background(), dbJane.ID)
	checkSentinels(t, err, mgmt.ErrUnauthorized, mgmt.ErrConfig)
	if got := srv.Requests(mgmttest.RouteUser); got != 0 {
		t.Errorf("API requests without a token: got %d, want 0", got)
	}
}
