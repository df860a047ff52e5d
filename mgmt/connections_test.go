package mgmt_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// A second database connection, with users of Jane's and Joe's emails, and a
// second user of the default database connection.
var (
	legacyConnection = linkingtest.Connection{ID: "con_legacy", Name: "Legacy-Users", Strategy: "auth0"}
	legacyJane       = linking.User{
		ID: "auth0|legacy01", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "legacy01", Connection: "Legacy-Users"}},
	}
	legacyJoe = linking.User{
		ID: "auth0|legacy02", Email: "joe@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "legacy02", Connection: "Legacy-Users"}},
	}
	otherDBJane = linking.User{
		ID: "auth0|upa02", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "upa02", Connection: "Username-Password-Authentication"}},
	}
)

// defaultConnectionID is the id of the tenant's default database connection,
// Username-Password-Authentication.
const defaultConnectionID = "con_0000000000000001"

// linkServer is an emulator whose link bodies are recorded, and whose
// connection lists can be held.
type linkServer struct {
	*mgmttest.Emulator
	url string

	mu     sync.Mutex
	bodies []map[string]any
	// hold, when set, is closed to let connection lists be answered;
	// listing receives one value per list that arrives.
	hold    chan struct{}
	listing chan struct{}
}

// newLinkServer starts a linkServer over tenant, closed when the test ends.
func newLinkServer(t *testing.T, tenant *linkingtest.Tenant, opts ...mgmttest.Option) *linkServer {
	t.Helper()
	s := &linkServer{Emulator: mgmttest.NewEmulator(tenant, opts...), listing: make(chan struct{}, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/identities"):
			b, err := io.ReadAll(r.Body)
			if err != nil {
				t.Errorf("link body: %v", err)
			}
			var body map[string]any
			if err := json.Unmarshal(b, &body); err != nil {
				t.Errorf("link body %s: %v", b, err)
			}
			s.mu.Lock()
			s.bodies = append(s.bodies, body)
			s.mu.Unlock()
			r.Body = io.NopCloser(strings.NewReader(string(b)))
		case r.URL.Path == "/api/v2/connections":
			s.listing <- struct{}{}
			if s.hold != nil {
				<-s.hold
			}
		}
		s.Emulator.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		s.Emulator.Close()
		srv.Close()
	})
	s.url = srv.URL
	return s
}

// store returns a Store built by New against s.
func (s *linkServer) store(t *testing.T) *mgmt.Store {
	t.Helper()
	store, err := mgmt.New(t.Context(), strings.TrimPrefix(s.url, "http://"), s.ClientID(), s.ClientSecret(), mgmt.WithInsecureHTTP(), noRetries)
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// connectionIDs returns the connection_id of each link body, "" for none.
func (s *linkServer) connectionIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.bodies))
	for _, b := range s.bodies {
		id, _ := b["connection_id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// twoDatabases returns a tenant with two database connections, holding
// users.
func twoDatabases(users ...linking.User) *linkingtest.Tenant {
	tenant := linkingtest.NewTenant(users...)
	tenant.AddConnection(legacyConnection)
	return tenant
}

// TestResolveConnectionIDs: a Store built by New links database users in a
// tenant with several database connections, with their connection_id, found
// by one list of the connections after Auth0 refuses a link without one; a
// tenant with one database connection costs no list and gets no
// connection_id.
func TestResolveConnectionIDs(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		tenant      *linkingtest.Tenant
		resolve     bool // Store.ResolveConnectionIDs
		secondaries []linking.User
		wantIDs     []string // connection_id of each link request
		wantErr     []error  // of the last link
		wantLists   int
	}{
		{
			name:        "two databases",
			tenant:      twoDatabases(dbJane, emailJane, legacyJane, otherDBJane, legacyJoe),
			resolve:     true,
			secondaries: []linking.User{emailJane, legacyJane, otherDBJane, legacyJoe},
			// The passwordless link needs none; the first database link
			// is refused without one and sent again; the others carry it.
			wantIDs:   []string{"", "", "con_legacy", defaultConnectionID, "con_legacy"},
			wantLists: 1,
		},
		{
			name:        "one database",
			tenant:      linkingtest.NewTenant(dbJane, emailJane, otherDBJane),
			resolve:     true,
			secondaries: []linking.User{emailJane, otherDBJane},
			wantIDs:     []string{"", ""},
		},
		{
			name:        "two databases, not resolving",
			tenant:      twoDatabases(dbJane, legacyJane),
			secondaries: []linking.User{legacyJane},
			wantIDs:     []string{""},
			wantErr:     []error{linking.ErrConflict},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newLinkServer(t, tt.tenant)
			s := srv.store(t)
			s.ResolveConnectionIDs = tt.resolve
			var err error
			for _, u := range tt.secondaries {
				if err = s.Link(ctx, dbJane.ID, u.Identities[0]); err != nil && tt.wantErr == nil {
					t.Fatalf("Link %s: %v", u.ID, err)
				}
			}
			if tt.wantErr != nil {
				checkSentinels(t, err, tt.wantErr...)
			}
			if diff := cmp.Diff(tt.wantIDs, srv.connectionIDs()); diff != "" {
				t.Errorf("connection_id of each link (-want +got):\n%s", diff)
			}
			if got := srv.Requests(mgmttest.RouteConnections); got != tt.wantLists {
				t.Errorf("connection lists: got %d, want %d", got, tt.wantLists)
			}
			if tt.wantErr != nil {
				return
			}
			primary, err := srv.Tenant.User(ctx, dbJane.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(primary.Identities), 1+len(tt.secondaries); got != want {
				t.Errorf("identities of the primary: got %d, want %d", got, want)
			}
		})
	}
}

// TestResolveConnectionIDsConcurrently: concurrent first database links list
// the connections once, and a caller that gives up while the list is under
// way does not end it for the others.
func TestResolveConnectionIDsConcurrently(t *testing.T) {
	ctx := context.Background()
	t.Run("concurrent first links", func(t *testing.T) {
		var users []linking.User
		for _, id := range []string{"a1", "a2", "a3", "a4", "a5", "a6"} {
			conn := "Legacy-Users"
			if len(users)%2 == 0 {
				conn = "Username-Password-Authentication"
			}
			users = append(users, linking.User{
				ID: "auth0|" + id, Email: id + "@example.com", EmailVerified: true,
				Identities: []linking.Identity{{Provider: "auth0", UserID: id, Connection: conn}},
			})
		}
		srv := newLinkServer(t, twoDatabases(append([]linking.User{dbJane}, users...)...))
		srv.hold = make(chan struct{})
		s := srv.store(t)
		var wg sync.WaitGroup
		errs := make(chan error, len(users))
		for _, u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.Link(ctx, dbJane.ID, u.Identities[0])
			}()
		}
		<-srv.listing // a list is under way, held
		close(srv.hold)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("Link: %v", err)
			}
		}
		if got := srv.Requests(mgmttest.RouteConnections); got != 1 {
			t.Errorf("connection lists: got %d, want 1", got)
		}
	})
	t.Run("a caller gives up", func(t *testing.T) {
		srv := newLinkServer(t, twoDatabases(dbJane, legacyJane, legacyJoe))
		srv.hold = make(chan struct{})
		s := srv.store(t)
		quitter, quit := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Link(quitter, dbJane.ID, legacyJane.Identities[0]) }()
		<-srv.listing
		quit()
		if err := <-done; !errors.Is(err, linking.ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Errorf("Link of the caller that gave up: got %v, want unavailable, canceled", err)
		}
		close(srv.hold)
		if err := s.Link(ctx, dbJane.ID, legacyJoe.Identities[0]); err != nil {
			t.Errorf("Link: %v", err)
		}
		if got := srv.Requests(mgmttest.RouteConnections); got != 1 {
			t.Errorf("connection lists: got %d, want 1", got)
		}
	})
}

// TestResolveConnectionIDsWithoutScope: in a tenant with several database
// connections, an application without read:connections cannot link a
// database user: a configuration error, which CheckAccess tells at startup.
func TestResolveConnectionIDsWithoutScope(t *testing.T) {
	srv := newLinkServer(t, twoDatabases(dbJane, legacyJane), mgmttest.WithScopes("read:users", "update:users"))
	s := srv.store(t)
	err := s.Link(context.Background(), dbJane.ID, legacyJane.Identities[0])
	checkSentinels(t, err, mgmt.ErrUnauthorized, mgmt.ErrConfig)
	if !strings.Contains(err.Error(), "insufficient_scope") {
		t.Errorf("Link: got %v, want the 403 insufficient_scope of the list", err)
	}
	if err := s.CheckAccess(context.Background()); !errors.Is(err, mgmt.ErrConfig) || !strings.Contains(err.Error(), "read:connections") {
		t.Errorf("CheckAccess: got %v, want a configuration error naming read:connections", err)
	}
}
