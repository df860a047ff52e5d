package linkingtest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/idlink/linking"
)

// TestStore is the conformance suite for linking.UserStore: it proves the
// contract written on the interface, with Auth0's semantics. Call it from a
// test of every implementation:
//
//	func TestConformance(t *testing.T) {
//		linkingtest.TestStore(t, func(t *testing.T, users []linking.User) linking.UserStore {
//			return newStoreHolding(t, users)
//		})
//	}
//
// newStore must return a store whose tenant holds exactly users, and nothing
// else; it is called once per subtest, with a fresh slice. Users keep the
// fields they are given, CreatedAt included (compared to the millisecond,
// in UTC); their metadata holds only strings, bools, []any and map[string]any
// so that it survives a JSON round trip.
//
// The suite covers: users-by-email as an exact, case-sensitive match, all
// users sharing an email, no match as an empty result; User returning every
// stored field, and ErrNotFound for a missing user; Link moving the
// secondary's identity (with its profile email) into the primary, deleting
// the secondary and discarding its metadata; refusals with ErrConflict or
// ErrNotFound that change nothing; a canceled context; and, for stores that
// have them, the optional linking.MetadataWriter, linking.SessionRevoker and
// linking.EmailSearcher.
func TestStore(t *testing.T, newStore func(t *testing.T, users []linking.User) linking.UserStore) {
	t.Run("UsersByEmail", func(t *testing.T) { testUsersByEmail(t, newStore) })
	t.Run("User", func(t *testing.T) { testUser(t, newStore) })
	t.Run("Link", func(t *testing.T) { testLink(t, newStore) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceled(t, newStore) })
	probe := newStore(t, suiteUsers())
	if _, ok := probe.(linking.MetadataWriter); ok {
		t.Run("UpdateMetadata", func(t *testing.T) { testUpdateMetadata(t, newStore) })
	}
	if _, ok := probe.(linking.SessionRevoker); ok {
		t.Run("RevokeSessions", func(t *testing.T) { testRevokeSessions(t, newStore) })
	}
	if _, ok := probe.(linking.EmailSearcher); ok {
		t.Run("SearchUsersByEmail", func(t *testing.T) { testSearchUsersByEmail(t, newStore) })
	}
}

// testSearchUsersByEmail checks linking.EmailSearcher: the email's case is
// ignored, nothing else is.
func testSearchUsersByEmail(t *testing.T, newStore func(*testing.T, []linking.User) linking.UserStore) {
	s := newStore(t, suiteUsers()).(linking.EmailSearcher)
	for _, email := range []string{"jane@example.com", "JANE@EXAMPLE.COM"} {
		got, err := s.SearchUsersByEmail(context.Background(), email)
		if err != nil {
			t.Fatalf("SearchUsersByEmail(%q): %v", email, err)
		}
		want := byID([]linking.User{suiteDB, suitePasswordless, suiteSocial})
		if diff := cmp.Diff(want, byID(got), suiteCmp); diff != "" {
			t.Errorf("SearchUsersByEmail(%q) (-want +got):\n%s", email, diff)
		}
	}
	got, err := s.SearchUsersByEmail(context.Background(), "jane+x@example.com")
	if err != nil || len(got) != 0 {
		t.Errorf("SearchUsersByEmail of another address: got %v, %v; want none", got, err)
	}
}

// testUpdateMetadata checks linking.MetadataWriter:
// top-level keys set, others kept, nil removes, nested objects replaced.
func testUpdateMetadata(t *testing.T, newStore func(*testing.T, []linking.User) linking.UserStore) {
	s := newStore(t, suiteUsers())
	w := s.(linking.MetadataWriter)
	ctx := context.Background()
	err := w.UpdateMetadata(ctx, suiteDB.ID, linking.Metadata{
		UserMetadata: map[string]any{"locale": nil, "prefs": map[string]any{"digest": "weekly"}, "nickname": "jane"},
		AppMetadata:  map[string]any{"plan": "team"},
	})
	if err != nil {
		t.Fatalf("UpdateMetadata: %v", err)
	}
	got := mustUser(t, s, suiteDB.ID)
	want := copyUser(suiteDB)
	want.UserMetadata = map[string]any{"prefs": map[string]any{"digest": "weekly"}, "nickname": "jane"}
	want.AppMetadata = map[string]any{"plan": "team", "roles": []any{"editor"}}
	if diff := cmp.Diff(want, got, suiteCmp); diff != "" {
		t.Errorf("after UpdateMetadata (-want +got):\n%s", diff)
	}
	if err := w.UpdateMetadata(ctx, "auth0|missing", linking.Metadata{AppMetadata: map[string]any{"x": "y"}}); !errors.Is(err, linking.ErrNotFound) {
		t.Errorf("UpdateMetadata of a missing user: got %v, want ErrNotFound", err)
	}
}

// testRevokeSessions checks linking.SessionRevoker.
func testRevokeSessions(t *testing.T, newStore func(*testing.T, []linking.User) linking.UserStore) {
	r := newStore(t, suiteUsers()).(linking.SessionRevoker)
	if err := r.RevokeSessions(context.Background(), suiteDB.ID); err != nil {
		t.Errorf("RevokeSessions: %v", err)
	}
	if err := r.RevokeSessions(context.Background(), "auth0|missing"); !errors.Is(err, linking.ErrNotFound) {
		t.Errorf("RevokeSessions of a missing user: got %v, want ErrNotFound", err)
	}
}

// The suite's users: a database user and a passwordless user with the same
// lowercase email, a social user with the same email in another case, and a
// blocked database user with an unverified email.
var (
	suiteDB = linking.User{
		ID:            "auth0|64b7f0c2a1e3d4c5b6a79801",
		Email:         "jane@example.com",
		EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "auth0", UserID: "64b7f0c2a1e3d4c5b6a79801", Connection: "Username-Password-Authentication"},
		},
		CreatedAt:    time.Date(2024, 3, 1, 9, 30, 0, 123_000_000, time.UTC),
		AppMetadata:  map[string]any{"plan": "pro", "roles": []any{"editor"}},
		UserMetadata: map[string]any{"locale": "en", "prefs": map[string]any{"newsletter": true}},
	}
	suitePasswordless = linking.User{
		ID:            "email|6650a1b2c3d4e5f6a7b8c9d0",
		Email:         "jane@example.com",
		EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "email", UserID: "6650a1b2c3d4e5f6a7b8c9d0", Connection: "email"},
		},
		CreatedAt:    time.Date(2024, 5, 6, 7, 8, 9, 456_000_000, time.UTC),
		AppMetadata:  map[string]any{"roles": []any{"admin"}},
		UserMetadata: map[string]any{"nickname": "jj"},
	}
	suiteSocial = linking.User{
		ID:            "google-oauth2|109876543210987654321",
		Email:         "Jane@Example.com",
		EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "google-oauth2", UserID: "109876543210987654321", Connection: "google-oauth2", IsSocial: true},
		},
		CreatedAt:    time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC),
		UserMetadata: map[string]any{"theme": "dark"},
	}
	suiteBlocked = linking.User{
		ID:    "auth0|64b7f0c2a1e3d4c5b6a79802",
		Email: "bob@example.net",
		Identities: []linking.Identity{
			{Provider: "auth0", UserID: "64b7f0c2a1e3d4c5b6a79802", Connection: "Username-Password-Authentication"},
		},
		CreatedAt: time.Date(2024, 7, 2, 8, 0, 0, 999_000_000, time.UTC),
		Blocked:   true,
	}
)

// suiteUsers returns fresh copies of the suite's users.
func suiteUsers() []linking.User {
	users := []linking.User{suiteDB, suitePasswordless, suiteSocial, suiteBlocked}
	for i, u := range users {
		users[i] = copyUser(u)
	}
	return users
}

// suiteCmp compares users as the suite requires: CreatedAt to the
// millisecond in any location, nil and empty maps and slices alike.
var suiteCmp = cmp.Options{
	cmpopts.EquateEmpty(),
	cmp.Comparer(func(a, b time.Time) bool {
		return a.Truncate(time.Millisecond).Equal(b.Truncate(time.Millisecond))
	}),
}

// ignoreProfileData leaves ProfileData out of a comparison: a store may hold
// more of a linked identity's profile than the suite checks.
var ignoreProfileData = cmpopts.IgnoreFields(linking.Identity{}, "ProfileData")

func byID(users []linking.User) []linking.User {
	users = slices.Clone(users)
	slices.SortFunc(users, func(a, b linking.User) int { return strings.Compare(a.ID, b.ID) })
	return users
}

func mainIdentity(u linking.User) linking.Identity {
	id, _ := u.MainIdentity()
	return id
}

// linked returns primary as it must be after secondary was linked into it.
func linked(primary, secondary linking.User) linking.User {
	p := copyUser(primary)
	p.Identities = append(p.Identities, mainIdentity(secondary))
	return p
}

func mustUser(t *testing.T, s linking.UserStore, id string) linking.User {
	t.Helper()
	u, err := s.User(context.Background(), id)
	if err != nil {
		t.Fatalf("User(%q): got error %v, want none", id, err)
	}
	return u
}

func testUsersByEmail(t *testing.T, newStore func(*testing.T, []linking.User) linking.UserStore) {
	tests := []struct {
		name  string
		email string
		want  []linking.User
	}{
		{"several users share the email", "jane@example.com", []linking.User{suiteDB, suitePasswordless}},
		{"case is kept", "Jane@Example.com", []linking.User{suiteSocial}},
		{"case differs", "JANE@EXAMPLE.COM", nil},
		{"one user", "bob@example.net", []linking.User{suiteBlocked}},
		{"no match", "nobody@example.com", nil},
		{"no normalization", " jane@example.com", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, suiteUsers())
			got, err := s.UsersByEmail(context.Background(), tt.email)
			if err != nil {
				t.Fatalf("UsersByEmail(%q): got error %v, want none", tt.email, err)
			}
			if diff := cmp.Diff(byID(tt.want), byID(got), suiteCmp); diff != "" {
				t.Errorf("UsersByEmail(%q) mismatch (-want +got):\n%s", tt.email, diff)
			}
		})
	}
}

func testUser(t *testing.T, newStore func(*testing.T, []linking.User) linking.UserStore) {
	for _, want := range suiteUsers() {
		t.Run(want.ID, func(t *testing.T) {
			s := newStore(t, suiteUsers())
			got := mustUser(t, s, want.ID)
			if diff := cmp.Diff(want, got, suiteCmp); diff != "" {
				t.Errorf("User(%q) mismatch (-want +got):\n%s", want.ID, diff)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		s := newStore(t, suiteUsers())
		const id = "auth0|000000000000000000000000"
		_, err := s.User(context.Background(), id)
		if !errors.Is(err, linking.ErrNotFound) {
			t.Errorf("User(%q): got error %v, want linking.ErrNotFound", id, err)
		}
	})
}

func testLink(t *testing.T, newStore func(*testing.T, []linking.User) linking.UserStore) {
	ctx := context.Background()

	success := []struct {
		name      string
		secondary linking.User
		arg       linking.Identity // what Link is given
	}{
		{"passwordless into database", suitePasswordless, mainIdentity(suitePasswordless)},
		{
			"social, given without connection", suiteSocial,
			linking.Identity{Provider: "google-oauth2", UserID: "109876543210987654321"},
		},
	}
	for _, tt := range success {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, suiteUsers())
			if err := s.Link(ctx, suiteDB.ID, tt.arg); err != nil {
				t.Fatalf("Link: got error %v, want none", err)
			}

			// The primary keeps its id, email and metadata, and holds the
			// secondary's identity; the secondary's metadata is not carried.
			got := mustUser(t, s, suiteDB.ID)
			want := linked(suiteDB, tt.secondary)
			if diff := cmp.Diff(want, got, suiteCmp, ignoreProfileData); diff != "" {
				t.Errorf("primary after Link mismatch (-want +got):\n%s", diff)
			}
			if i := slices.IndexFunc(got.Identities, mainIdentity(tt.secondary).Is); i >= 0 {
				if email := got.Identities[i].ProfileData["email"]; email != tt.secondary.Email {
					t.Errorf("linked identity's ProfileData[\"email\"]: got %v, want %q", email, tt.secondary.Email)
				}
			}

			// The secondary user is gone.
			if _, err := s.User(ctx, tt.secondary.ID); !errors.Is(err, linking.ErrNotFound) {
				t.Errorf("User(secondary) after Link: got error %v, want linking.ErrNotFound", err)
			}
			users, err := s.UsersByEmail(ctx, tt.secondary.Email)
			if err != nil {
				t.Fatalf("UsersByEmail after Link: got error %v, want none", err)
			}
			for _, u := range users {
				if u.ID == tt.secondary.ID {
					t.Errorf("UsersByEmail(%q) after Link still returns the secondary %q", tt.secondary.Email, u.ID)
				}
			}
		})
	}

	refused := []struct {
		name    string
		prepare bool // link the passwordless user into the database user first
		primary string
		arg     linking.Identity
		want    []error // errors.Is one of them
	}{
		{
			"again after a committed link", true, suiteDB.ID, mainIdentity(suitePasswordless),
			[]error{linking.ErrConflict, linking.ErrNotFound},
		},
		{"self", false, suiteDB.ID, mainIdentity(suiteDB), []error{linking.ErrConflict}},
		{
			"missing secondary", false, suiteDB.ID,
			linking.Identity{Provider: "email", UserID: "000000000000000000000000", Connection: "email"},
			[]error{linking.ErrNotFound},
		},
		{
			"missing primary", false, "auth0|000000000000000000000000", mainIdentity(suitePasswordless),
			[]error{linking.ErrNotFound},
		},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, suiteUsers())
			if tt.prepare {
				if err := s.Link(ctx, suiteDB.ID, tt.arg); err != nil {
					t.Fatalf("first Link: got error %v, want none", err)
				}
			}
			before := snapshot(t, s)

			err := s.Link(ctx, tt.primary, tt.arg)
			if !slices.ContainsFunc(tt.want, func(target error) bool { return errors.Is(err, target) }) {
				t.Errorf("Link(%q, %s): got error %v, want one wrapping any of %v", tt.primary, tt.arg.UserIDOf(), err, tt.want)
			}
			if diff := cmp.Diff(before, snapshot(t, s), suiteCmp); diff != "" {
				t.Errorf("refused Link changed the store (-before +after):\n%s", diff)
			}
		})
	}
}

func testCanceled(t *testing.T, newStore func(*testing.T, []linking.User) linking.UserStore) {
	s := newStore(t, suiteUsers())
	before := snapshot(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	if _, err := s.UsersByEmail(ctx, suiteDB.Email); err == nil {
		t.Error("UsersByEmail with a canceled context: got no error, want one")
	}
	if _, err := s.User(ctx, suiteDB.ID); err == nil {
		t.Error("User with a canceled context: got no error, want one")
	}
	if err := s.Link(ctx, suiteDB.ID, mainIdentity(suitePasswordless)); err == nil {
		t.Error("Link with a canceled context: got no error, want one")
	}
	if diff := cmp.Diff(before, snapshot(t, s), suiteCmp); diff != "" {
		t.Errorf("calls with a canceled context changed the store (-before +after):\n%s", diff)
	}
}

// snapshot reads every suite user that exists, and the users of every suite
// email, as the store returns them.
func snapshot(t *testing.T, s linking.UserStore) map[string][]linking.User {
	t.Helper()
	ctx := context.Background()
	snap := make(map[string][]linking.User)
	for _, u := range suiteUsers() {
		got, err := s.User(ctx, u.ID)
		switch {
		case err == nil:
			snap["id "+u.ID] = []linking.User{got}
		case !errors.Is(err, linking.ErrNotFound):
			t.Fatalf("User(%q): got error %v, want none or linking.ErrNotFound", u.ID, err)
		}
		byEmail, err := s.UsersByEmail(ctx, u.Email)
		if err != nil {
			t.Fatalf("UsersByEmail(%q): got error %v, want none", u.Email, err)
		}
		snap["email "+u.Email] = byID(byEmail)
	}
	return snap
}
