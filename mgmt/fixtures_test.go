package mgmt_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
)

// The users of the recordings in testdata, as mgmt.Store must decode them.
var (
	recordedFacts = map[string]any{"facts": []any{
		"count_to_infinity_twice", "kill_two_stones_with_one_bird", "can_hear_sign_language",
	}}
	recordedAttack = map[string]any{"favourite_attack": "roundhouse_kick"}

	chuck212 = linking.User{
		ID:            "auth0|63d17c4f62d6dbc216a6e8ed",
		Email:         "chuck212@example.com",
		EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "auth0", UserID: "63d17c4f62d6dbc216a6e8ed", Connection: "Username-Password-Authentication"},
		},
		CreatedAt:    time.Date(2023, 1, 25, 19, 0, 31, 387_000_000, time.UTC),
		AppMetadata:  recordedFacts,
		UserMetadata: recordedAttack,
	}
	chuck878 = linking.User{
		ID:            "auth0|63d17c4a9d503d76c056c160",
		Email:         "chuck878@example.com",
		EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "auth0", UserID: "63d17c4a9d503d76c056c160", Connection: "Username-Password-Authentication"},
		},
		CreatedAt:    time.Date(2023, 1, 25, 19, 0, 26, 539_000_000, time.UTC),
		AppMetadata:  recordedFacts,
		UserMetadata: recordedAttack,
	}
)

func TestFixtureUsersByEmail(t *testing.T) {
	api := newFakeAPI(t)
	var gotEmail string
	api.mux.HandleFunc("GET /api/v2/users-by-email", func(w http.ResponseWriter, r *http.Request) {
		gotEmail = r.URL.Query().Get("email")
		writeBody(w, http.StatusOK, readFixture(t, "users_by_email.json"))
	})

	got, err := api.store(t).UsersByEmail(context.Background(), "chuck212@example.com")
	if err != nil {
		t.Fatalf("UsersByEmail: %v", err)
	}
	if gotEmail != "chuck212@example.com" {
		t.Errorf("email query parameter: got %q, want %q", gotEmail, "chuck212@example.com")
	}
	if diff := cmp.Diff([]linking.User{chuck212}, got); diff != "" {
		t.Errorf("UsersByEmail mismatch (-want +got):\n%s", diff)
	}
}

func TestFixtureUser(t *testing.T) {
	api := newFakeAPI(t)
	var gotID string
	api.mux.HandleFunc("GET /api/v2/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		gotID = r.PathValue("id")
		writeBody(w, http.StatusOK, readFixture(t, "user.json"))
	})

	got, err := api.store(t).User(context.Background(), chuck878.ID)
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	if gotID != chuck878.ID {
		t.Errorf("path id: got %q, want %q", gotID, chuck878.ID)
	}
	if diff := cmp.Diff(chuck878, got); diff != "" {
		t.Errorf("User mismatch (-want +got):\n%s", diff)
	}
}

func TestFixtureLink(t *testing.T) {
	const primary = "auth0|63d17c6a9d503d76c056c177"
	secondary := linking.Identity{Provider: "auth0", UserID: "63d17c6b77d74b740960460a", Connection: "Username-Password-Authentication"}
	tests := []struct {
		name    string
		resolve bool // Store.ResolveConnectionIDs
		refuse  bool // the link is refused with 400
		// want: requests to /api/v2/connections, link requests, sentinels
		connections, links int
		want               []error
	}{
		{name: "plain", links: 1},
		{name: "resolving connection ids", resolve: true, links: 1},
		// The recorded tenant has one database connection: a refusal
		// makes the Store list them, and it stands.
		{name: "resolving connection ids, refused", resolve: true, refuse: true, connections: 1, links: 1, want: []error{linking.ErrConflict}},
		{name: "refused", refuse: true, links: 1, want: []error{linking.ErrConflict}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t)
			var gotPath string
			var gotBody map[string]any
			var links int
			api.mux.HandleFunc("POST /api/v2/users/{id}/identities", func(w http.ResponseWriter, r *http.Request) {
				links++
				gotPath = r.PathValue("id")
				if err := json.NewDecoder(r.Body).Decode(&gotBody); err != nil {
					t.Errorf("link body: %v", err)
				}
				if tt.refuse {
					writeBody(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, "Main identity and the new one are the same.", "invalid_body"))
					return
				}
				writeBody(w, http.StatusCreated, readFixture(t, "link.json"))
			})
			var connections int
			api.mux.HandleFunc("GET /api/v2/connections", func(w http.ResponseWriter, r *http.Request) {
				connections++
				if got := r.URL.Query().Get("strategy"); got != "auth0" {
					t.Errorf("connections strategy: got %q, want auth0", got)
				}
				writeBody(w, http.StatusOK, readFixture(t, "connections.json"))
			})
			s := api.store(t)
			s.ResolveConnectionIDs = tt.resolve

			err := s.Link(context.Background(), primary, secondary)
			if tt.want == nil && err != nil {
				t.Fatalf("Link: %v", err)
			}
			if tt.want != nil {
				checkSentinels(t, err, tt.want...)
			}
			if gotPath != primary {
				t.Errorf("path id: got %q, want %q", gotPath, primary)
			}
			wantBody := map[string]any{"provider": "auth0", "user_id": "63d17c6b77d74b740960460a"}
			if diff := cmp.Diff(wantBody, gotBody); diff != "" {
				t.Errorf("link body mismatch (-want +got):\n%s", diff)
			}
			if connections != tt.connections || links != tt.links {
				t.Errorf("requests: got %d connections and %d links, want %d and %d", connections, links, tt.connections, tt.links)
			}
		})
	}
}

func TestFixtureUnlink(t *testing.T) {
	api := newFakeAPI(t)
	var gotPath []string
	api.mux.HandleFunc("DELETE /api/v2/users/{id}/identities/{provider}/{user_id}", func(w http.ResponseWriter, r *http.Request) {
		gotPath = []string{r.PathValue("id"), r.PathValue("provider"), r.PathValue("user_id")}
		writeBody(w, http.StatusOK, readFixture(t, "unlink.json"))
	})

	got, err := api.store(t).Unlink(context.Background(), "auth0|63d17c6b8869daf88ed7dbb8", "auth0", "63d17c6ce99d3933163bddc2")
	if err != nil {
		t.Fatalf("Unlink: %v", err)
	}
	if diff := cmp.Diff([]string{"auth0|63d17c6b8869daf88ed7dbb8", "auth0", "63d17c6ce99d3933163bddc2"}, gotPath); diff != "" {
		t.Errorf("path mismatch (-want +got):\n%s", diff)
	}
	want := []linking.Identity{{
		Provider:   "auth0",
		UserID:     "63d17c6b8869daf88ed7dbb8",
		Connection: "Username-Password-Authentication",
		ProfileData: map[string]any{
			"email": "chuck152@example.com", "email_verified": true, "given_name": "Chuck", "family_name": "Sanchez",
			"username": "test-user357", "nickname": "Chucky", "picture": "https://example-picture-url.jpg",
		},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Unlink mismatch (-want +got):\n%s", diff)
	}
}

// TestFixtureIdentityUserIDTypes serves hand-written bodies (not recorded):
// Auth0 sends some identities' user_id as a JSON number, which must decode
// to its digits, and a user_id of another type must be an error, not a
// panic of go-auth0's decoder.
func TestFixtureIdentityUserIDTypes(t *testing.T) {
	const numeric = `{"user_id":"github|1234567","email":"octo@example.com","email_verified":true,` +
		`"identities":[{"connection":"github","user_id":1234567,"provider":"github","isSocial":true}]}`
	const boolean = `{"user_id":"github|1234567","identities":[{"connection":"github","user_id":true,"provider":"github","isSocial":true}]}`

	t.Run("number", func(t *testing.T) {
		api := newFakeAPI(t)
		api.handle("GET /api/v2/users/{id}", http.StatusOK, numeric)
		got, err := api.store(t).User(context.Background(), "github|1234567")
		if err != nil {
			t.Fatalf("User: %v", err)
		}
		want := linking.User{
			ID: "github|1234567", Email: "octo@example.com", EmailVerified: true,
			Identities: []linking.Identity{{Provider: "github", UserID: "1234567", Connection: "github", IsSocial: true}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("User mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("bool", func(t *testing.T) {
		api := newFakeAPI(t)
		api.handle("GET /api/v2/users/{id}", http.StatusOK, boolean)
		_, err := api.store(t).User(context.Background(), "github|1234567")
		if err == nil || errors.Is(err, linking.ErrUnavailable) {
			t.Errorf("User: got error %v, want a malformed-response error that is not ErrUnavailable", err)
		}
	})
}

// notModelled are the user properties of the recordings that the emulator
// does not produce: the recorded users were created with them.
var notModelled = []string{"family_name", "given_name", "username"}

// TestEmulatorShapeMatchesRecordings compares the JSON the emulator sends
// with the recorded Auth0 answers, property by property, for the same kinds
// of users: a database user with metadata, read, found by email, linked and
// unlinked.
func TestEmulatorShapeMatchesRecordings(t *testing.T) {
	primary := linking.User{
		ID: "auth0|63d17c6a9d503d76c056c177", Email: "chuck249@example.com", EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "auth0", UserID: "63d17c6a9d503d76c056c177", Connection: "Username-Password-Authentication"},
		},
		CreatedAt: time.Date(2023, 1, 25, 19, 0, 58, 788_000_000, time.UTC), AppMetadata: recordedFacts, UserMetadata: recordedAttack,
	}
	secondary := primary
	secondary.ID, secondary.Email = "auth0|63d17c6b77d74b740960460a", "chuck203@example.com"
	secondary.Identities = []linking.Identity{
		{Provider: "auth0", UserID: "63d17c6b77d74b740960460a", Connection: "Username-Password-Authentication"},
	}
	srv := newServer(t, []linking.User{primary, secondary})
	token := srv.Token(t)
	escaped := "/api/v2/users/auth0%7C63d17c6a9d503d76c056c177"

	_, user := srv.Call(t, token, "GET", escaped, "")
	_, byEmail := srv.Call(t, token, "GET", "/api/v2/users-by-email?email=chuck249%40example.com", "")
	_, link := srv.Call(t, token, "POST", escaped+"/identities",
		`{"provider":"auth0","user_id":"auth0|63d17c6b77d74b740960460a"}`)
	_, unlink := srv.Call(t, token, "DELETE", escaped+"/identities/auth0/63d17c6b77d74b740960460a", "")

	tests := []struct {
		name      string
		recorded  string
		emulated  []byte
		userLevel bool // a user or a list of users, rather than identities
	}{
		{"user", readFixture(t, "user.json"), user, true},
		{"users-by-email", readFixture(t, "users_by_email.json"), byEmail, true},
		{"link", readFixture(t, "link.json"), link, false},
		{"unlink", readFixture(t, "unlink.json"), unlink, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, got := shape(t, []byte(tt.recorded)), shape(t, tt.emulated)
			if tt.userLevel {
				want["user"] = slices.DeleteFunc(want["user"], func(k string) bool { return slices.Contains(notModelled, k) })
			}
			// A linked identity's profile holds what the identity provider
			// sent: the emulator keeps the email part of it.
			if missing := without(got["profileData"], want["profileData"]); len(missing) > 0 {
				t.Errorf("profileData keys the recording does not have: %v", missing)
			}
			delete(want, "profileData")
			delete(got, "profileData")
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("JSON keys mismatch (-recorded +emulated):\n%s", diff)
			}
		})
	}
}

// shape returns the sorted property names of a JSON user or list of users
// ("user"), of their identities ("identity") and of the identities' profiles
// ("profileData"); an array of identities counts as identities.
func shape(t *testing.T, b []byte) map[string][]string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	items, ok := v.([]any)
	if !ok {
		items = []any{v}
	}
	keys := map[string]map[string]bool{"user": {}, "identity": {}, "profileData": {}}
	addKeys := func(kind string, m map[string]any) {
		for k := range m {
			keys[kind][k] = true
		}
	}
	addIdentity := func(id any) {
		m, _ := id.(map[string]any)
		addKeys("identity", m)
		if p, ok := m["profileData"].(map[string]any); ok {
			addKeys("profileData", p)
		}
	}
	for _, item := range items {
		m, _ := item.(map[string]any)
		ids, isUser := m["identities"].([]any)
		if !isUser {
			addIdentity(m)
			continue
		}
		addKeys("user", m)
		for _, id := range ids {
			addIdentity(id)
		}
	}
	out := make(map[string][]string)
	for kind, set := range keys {
		if len(set) == 0 {
			continue
		}
		for k := range set {
			out[kind] = append(out[kind], k)
		}
		sort.Strings(out[kind])
	}
	return out
}

// without returns the elements of a that are not in b.
func without(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestEmulatorUsersByEmailIsCaseSensitive checks the emulator's exact match
// through the SDK, as Auth0's users-by-email.
func TestEmulatorUsersByEmailIsCaseSensitive(t *testing.T) {
	jane := linking.User{
		ID: "auth0|1", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "1", Connection: "Username-Password-Authentication"}},
	}
	srv := newServer(t, []linking.User{jane})
	s := srv.Store(t)
	for _, email := range []string{"jane@example.com", "Jane@Example.com", "JANE@EXAMPLE.COM"} {
		got, err := s.UsersByEmail(context.Background(), email)
		if err != nil {
			t.Fatalf("UsersByEmail(%q): %v", email, err)
		}
		want := 0
		if email == strings.ToLower(email) {
			want = 1
		}
		if len(got) != want {
			t.Errorf("UsersByEmail(%q): got %d users, want %d", email, len(got), want)
		}
	}
}
