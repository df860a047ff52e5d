package linkingtest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
)

func TestTenantConformance(t *testing.T) {
	linkingtest.TestStore(t, func(t *testing.T, users []linking.User) linking.UserStore {
		return linkingtest.NewTenant(users...)
	})
}

var (
	dbUser = linking.User{
		ID:            "auth0|64b7f0c2a1e3d4c5b6a79801",
		Email:         "jane@example.com",
		EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "auth0", UserID: "64b7f0c2a1e3d4c5b6a79801", Connection: "Username-Password-Authentication"},
		},
		CreatedAt:    time.Date(2024, 3, 1, 9, 30, 0, 0, time.UTC),
		AppMetadata:  map[string]any{"plan": "pro", "roles": []any{"editor"}},
		UserMetadata: map[string]any{"prefs": map[string]any{"newsletter": true}},
	}
	emailUser = linking.User{
		ID:            "email|6650a1b2c3d4e5f6a7b8c9d0",
		Email:         "jane@example.com",
		EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "email", UserID: "6650a1b2c3d4e5f6a7b8c9d0", Connection: "email"},
		},
		CreatedAt:    time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		AppMetadata:  map[string]any{"roles": []any{"admin"}},
		UserMetadata: map[string]any{"nickname": "jj"},
	}
	emailIdentity = emailUser.Identities[0]
	errBoom       = errors.New("boom")
	clock         = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
)

// newTenant returns a tenant holding dbUser and emailUser, with a fixed clock.
func newTenant() *linkingtest.Tenant {
	tn := linkingtest.NewTenant(dbUser, emailUser)
	tn.Now = func() time.Time { return clock }
	return tn
}

func mustLink(t *testing.T, tn *linkingtest.Tenant) {
	t.Helper()
	if err := tn.Link(context.Background(), dbUser.ID, emailIdentity); err != nil {
		t.Fatalf("Link: got error %v, want none", err)
	}
}

func TestLinkResult(t *testing.T) {
	tn := newTenant()
	mustLink(t, tn)

	linked := emailIdentity
	linked.ProfileData = map[string]any{"email": "jane@example.com", "email_verified": true}
	want := dbUser
	want.Identities = []linking.Identity{dbUser.Identities[0], linked}
	if diff := cmp.Diff([]linking.User{want}, tn.Users()); diff != "" {
		t.Errorf("users after Link mismatch (-want +got):\n%s", diff)
	}
}

func TestLinkRefusals(t *testing.T) {
	ctx := context.Background()
	linkedPrimary := linking.User{
		ID:         "auth0|000000000000000000000003",
		Email:      "ann@example.com",
		Identities: []linking.Identity{{Provider: "auth0", UserID: "000000000000000000000003"}},
	}
	tests := []struct {
		name      string
		primary   string
		secondary linking.Identity
		status    int
		message   string
		sentinel  error
	}{
		{"missing primary", "auth0|nobody", emailIdentity, 404, "The user does not exist.", linking.ErrNotFound},
		{"self by id", dbUser.ID, dbUser.Identities[0], 400, "Main identity and the new one are the same.", linking.ErrConflict},
		{"missing secondary", dbUser.ID, linking.Identity{Provider: "email", UserID: "nobody"}, 400, "Provided secondary account not found", linking.ErrNotFound},
		{"secondary is a primary", dbUser.ID, linkedPrimary.Identities[0], 400, "Provided secondary account has linked identities: unlink them first.", linking.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := newTenant()
			if err := tn.AddUser(ctx, linkedPrimary); err != nil {
				t.Fatal(err)
			}
			if err := tn.Link(ctx, linkedPrimary.ID, emailIdentity); err != nil {
				t.Fatal(err)
			}
			before := tn.Users()
			err := tn.Link(ctx, tt.primary, tt.secondary)
			var apiErr *linkingtest.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("Link: got error %v, want an *APIError", err)
			}
			if apiErr.Status != tt.status || apiErr.Message != tt.message {
				t.Errorf("Link: got %d %q, want %d %q", apiErr.Status, apiErr.Message, tt.status, tt.message)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("Link: got error %v, want one wrapping %v", err, tt.sentinel)
			}
			if diff := cmp.Diff(before, tn.Users()); diff != "" {
				t.Errorf("refused Link changed the tenant (-before +after):\n%s", diff)
			}
		})
	}
}

func TestLinkAgainIsConflict(t *testing.T) {
	tn := newTenant()
	mustLink(t, tn)
	err := tn.Link(context.Background(), dbUser.ID, emailIdentity)
	var apiErr *linkingtest.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 409 || !errors.Is(err, linking.ErrConflict) {
		t.Errorf("second Link: got error %v, want a 409 *APIError wrapping linking.ErrConflict", err)
	}
}

func TestLinkAcceptsFullUserID(t *testing.T) {
	tn := newTenant()
	id := linking.Identity{Provider: "email", UserID: emailUser.ID}
	if err := tn.Link(context.Background(), dbUser.ID, id); err != nil {
		t.Fatalf("Link with user_id %q: got error %v, want none", id.UserID, err)
	}
	if got := len(tn.Users()); got != 1 {
		t.Errorf("users after Link: got %d, want 1", got)
	}
}

func TestUnlink(t *testing.T) {
	ctx := context.Background()
	tn := newTenant()
	mustLink(t, tn)

	got, err := tn.Unlink(ctx, dbUser.ID, "email", emailIdentity.UserID)
	if err != nil {
		t.Fatalf("Unlink: got error %v, want none", err)
	}
	if diff := cmp.Diff(dbUser.Identities, got); diff != "" {
		t.Errorf("Unlink returned identities mismatch (-want +got):\n%s", diff)
	}
	recreated := linking.User{
		ID:            emailUser.ID,
		Email:         emailUser.Email,
		EmailVerified: true,
		Identities:    []linking.Identity{emailIdentity},
		CreatedAt:     clock,
	}
	if diff := cmp.Diff([]linking.User{dbUser, recreated}, tn.Users()); diff != "" {
		t.Errorf("users after Unlink mismatch (-want +got):\n%s", diff)
	}
	// The recreated user can be linked again.
	mustLink(t, tn)
}

func TestUnlinkRefusals(t *testing.T) {
	tests := []struct {
		name     string
		primary  string
		provider string
		userID   string
		status   int
		sentinel error
	}{
		{"missing primary", "auth0|nobody", "email", emailIdentity.UserID, 404, linking.ErrNotFound},
		{"main identity", dbUser.ID, "auth0", dbUser.Identities[0].UserID, 400, linking.ErrConflict},
		{"identity not held", dbUser.ID, "email", "nobody", 400, linking.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := newTenant()
			mustLink(t, tn)
			before := tn.Users()
			ids, err := tn.Unlink(context.Background(), tt.primary, tt.provider, tt.userID)
			var apiErr *linkingtest.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tt.status || !errors.Is(err, tt.sentinel) {
				t.Errorf("Unlink: got %v, %v, want a %d *APIError wrapping %v", ids, err, tt.status, tt.sentinel)
			}
			if diff := cmp.Diff(before, tn.Users()); diff != "" {
				t.Errorf("refused Unlink changed the tenant (-before +after):\n%s", diff)
			}
		})
	}
}

func TestAddUser(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		user     linking.User
		sentinel error // nil: any error
	}{
		{"existing id", dbUser, linking.ErrConflict},
		{"identity held by another user", linking.User{
			ID:         "email|other",
			Identities: []linking.Identity{{Provider: "email", UserID: "other"}, dbUser.Identities[0]},
		}, linking.ErrConflict},
		{"id not of the main identity", linking.User{
			ID:         "auth0|a",
			Identities: []linking.Identity{{Provider: "auth0", UserID: "b"}},
		}, nil},
		{"no identity", linking.User{ID: "auth0|a"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := newTenant()
			err := tn.AddUser(ctx, tt.user)
			if err == nil || (tt.sentinel != nil && !errors.Is(err, tt.sentinel)) {
				t.Errorf("AddUser: got error %v, want one wrapping %v", err, tt.sentinel)
			}
			if got := len(tn.Users()); got != 2 {
				t.Errorf("users after a refused AddUser: got %d, want 2", got)
			}
		})
	}

	t.Run("created at from the clock", func(t *testing.T) {
		tn := newTenant()
		u := linking.User{ID: "email|new", Identities: []linking.Identity{{Provider: "email", UserID: "new"}}}
		if err := tn.AddUser(ctx, u); err != nil {
			t.Fatalf("AddUser: got error %v, want none", err)
		}
		if got := tn.Users()[2].CreatedAt; !got.Equal(clock) {
			t.Errorf("CreatedAt: got %v, want %v", got, clock)
		}
	})
}

func TestUpdateUser(t *testing.T) {
	ctx := context.Background()
	t.Run("stores the change", func(t *testing.T) {
		tn := newTenant()
		got, err := tn.UpdateUser(ctx, dbUser.ID, func(u *linking.User) error {
			u.AppMetadata["linked"] = true
			u.Blocked = true
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateUser: got error %v, want none", err)
		}
		stored, _ := tn.User(ctx, dbUser.ID)
		if diff := cmp.Diff(got, stored); diff != "" {
			t.Errorf("stored user differs from the returned one (-returned +stored):\n%s", diff)
		}
		if stored.AppMetadata["linked"] != true || !stored.Blocked {
			t.Errorf("stored user: got %+v, want linked metadata and blocked", stored)
		}
	})

	refusals := []struct {
		name     string
		fn       func(*linking.User) error
		sentinel error
	}{
		{"fn fails", func(u *linking.User) error { u.Blocked = true; return errBoom }, errBoom},
		{"id changed", func(u *linking.User) error { u.ID = "auth0|other"; return nil }, nil},
		{"identity of another user", func(u *linking.User) error {
			u.Identities = append(u.Identities, emailIdentity)
			return nil
		}, linking.ErrConflict},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			tn := newTenant()
			before := tn.Users()
			_, err := tn.UpdateUser(ctx, dbUser.ID, tt.fn)
			if err == nil || (tt.sentinel != nil && !errors.Is(err, tt.sentinel)) {
				t.Errorf("UpdateUser: got error %v, want one wrapping %v", err, tt.sentinel)
			}
			if diff := cmp.Diff(before, tn.Users()); diff != "" {
				t.Errorf("refused UpdateUser changed the tenant (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("missing", func(t *testing.T) {
		tn := newTenant()
		_, err := tn.UpdateUser(ctx, "auth0|nobody", func(*linking.User) error { return nil })
		if !errors.Is(err, linking.ErrNotFound) {
			t.Errorf("UpdateUser: got error %v, want linking.ErrNotFound", err)
		}
	})
}

func TestDeleteUser(t *testing.T) {
	ctx := context.Background()
	tn := newTenant()
	if err := tn.DeleteUser(ctx, emailUser.ID); err != nil {
		t.Fatalf("DeleteUser: got error %v, want none", err)
	}
	if diff := cmp.Diff([]linking.User{dbUser}, tn.Users()); diff != "" {
		t.Errorf("users after DeleteUser mismatch (-want +got):\n%s", diff)
	}
	if err := tn.DeleteUser(ctx, emailUser.ID); !errors.Is(err, linking.ErrNotFound) {
		t.Errorf("second DeleteUser: got error %v, want linking.ErrNotFound", err)
	}
	// Its identity is free again.
	if err := tn.AddUser(ctx, emailUser); err != nil {
		t.Errorf("AddUser after DeleteUser: got error %v, want none", err)
	}
}

func TestFailNext(t *testing.T) {
	ctx := context.Background()
	tn := newTenant()
	tn.FailNext(linkingtest.MethodLink, 2, errBoom)
	tn.FailNext(linkingtest.MethodUsersByEmail, 1, linking.ErrRateLimited)
	before := tn.Users()

	for i := range 2 {
		if err := tn.Link(ctx, dbUser.ID, emailIdentity); !errors.Is(err, errBoom) {
			t.Errorf("Link %d: got error %v, want errBoom", i+1, err)
		}
	}
	if diff := cmp.Diff(before, tn.Users()); diff != "" {
		t.Errorf("failed Links changed the tenant (-before +after):\n%s", diff)
	}
	if _, err := tn.UsersByEmail(ctx, dbUser.Email); !errors.Is(err, linking.ErrUnavailable) {
		t.Errorf("UsersByEmail: got error %v, want linking.ErrRateLimited", err)
	}
	// Both faults are consumed.
	if _, err := tn.UsersByEmail(ctx, dbUser.Email); err != nil {
		t.Errorf("second UsersByEmail: got error %v, want none", err)
	}
	mustLink(t, tn)

	want := linkingtest.Calls{linkingtest.MethodLink: 3, linkingtest.MethodUsersByEmail: 2}
	if diff := cmp.Diff(want, tn.Calls()); diff != "" {
		t.Errorf("Calls mismatch (-want +got):\n%s", diff)
	}
}

func TestFailNextQueues(t *testing.T) {
	ctx := context.Background()
	tn := newTenant()
	errOther := errors.New("other")
	tn.FailNext(linkingtest.MethodUser, 1, errBoom)
	tn.FailNext(linkingtest.MethodUser, 1, errOther)
	tn.FailNext(linkingtest.MethodUser, 0, errBoom) // ignored

	for i, want := range []error{errBoom, errOther, nil} {
		if _, err := tn.User(ctx, dbUser.ID); !errors.Is(err, want) {
			t.Errorf("User call %d: got error %v, want %v", i+1, err, want)
		}
	}
}

func TestCommitThenFail(t *testing.T) {
	ctx := context.Background()
	tn := newTenant()
	tn.CommitThenFail(1, linking.ErrUnavailable)

	if err := tn.Link(ctx, dbUser.ID, emailIdentity); !errors.Is(err, linking.ErrUnavailable) {
		t.Fatalf("Link: got error %v, want linking.ErrUnavailable", err)
	}
	primary, err := tn.User(ctx, dbUser.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !primary.Holds(emailIdentity) {
		t.Errorf("primary after a lost Link: got identities %v, want it to hold %s", primary.Identities, emailIdentity.UserIDOf())
	}
	// The retry is refused as Auth0 refuses it.
	if err := tn.Link(ctx, dbUser.ID, emailIdentity); !errors.Is(err, linking.ErrConflict) {
		t.Errorf("retried Link: got error %v, want linking.ErrConflict", err)
	}
	if got := tn.Calls()[linkingtest.MethodLink]; got != 2 {
		t.Errorf("Link calls: got %d, want 2", got)
	}
}

func TestFailNextComesBeforeCommitThenFail(t *testing.T) {
	ctx := context.Background()
	tn := newTenant()
	tn.CommitThenFail(1, linking.ErrUnavailable)
	tn.FailNext(linkingtest.MethodLink, 1, errBoom)

	if err := tn.Link(ctx, dbUser.ID, emailIdentity); !errors.Is(err, errBoom) {
		t.Fatalf("first Link: got error %v, want errBoom", err)
	}
	if got := len(tn.Users()); got != 2 {
		t.Fatalf("users after a failed Link: got %d, want 2", got)
	}
	if err := tn.Link(ctx, dbUser.ID, emailIdentity); !errors.Is(err, linking.ErrUnavailable) {
		t.Fatalf("second Link: got error %v, want linking.ErrUnavailable", err)
	}
	if got := len(tn.Users()); got != 1 {
		t.Errorf("users after a committed Link: got %d, want 1", got)
	}
}

func TestCalls(t *testing.T) {
	ctx := context.Background()
	tn := newTenant()
	tn.UsersByEmail(ctx, dbUser.Email)
	tn.User(ctx, dbUser.ID)
	tn.User(ctx, "auth0|nobody") // failed calls count too
	tn.Link(ctx, dbUser.ID, emailIdentity)
	tn.Unlink(ctx, dbUser.ID, "email", emailIdentity.UserID)
	tn.UpdateUser(ctx, dbUser.ID, func(*linking.User) error { return nil })
	tn.DeleteUser(ctx, emailUser.ID)
	tn.AddUser(ctx, emailUser)
	tn.Users() // not counted

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := tn.User(canceled, dbUser.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("User with a canceled context: got error %v, want context.Canceled", err)
	}

	want := linkingtest.Calls{
		linkingtest.MethodUsersByEmail: 1,
		linkingtest.MethodUser:         2,
		linkingtest.MethodLink:         1,
		linkingtest.MethodUnlink:       1,
		linkingtest.MethodUpdateUser:   1,
		linkingtest.MethodDeleteUser:   1,
		linkingtest.MethodAddUser:      1,
	}
	got := tn.Calls()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Calls mismatch (-want +got):\n%s", diff)
	}
	got[linkingtest.MethodUser] = 100
	if n := tn.Calls()[linkingtest.MethodUser]; n != 2 {
		t.Errorf("Calls after changing a returned copy: got %d User calls, want 2", n)
	}
	tn.ResetCalls()
	if got := tn.Calls(); len(got) != 0 {
		t.Errorf("Calls after ResetCalls: got %v, want none", got)
	}
}

func TestDeepCopies(t *testing.T) {
	ctx := context.Background()
	newUser := func() linking.User {
		return linking.User{
			ID:    "auth0|64b7f0c2a1e3d4c5b6a79801",
			Email: "jane@example.com",
			Identities: []linking.Identity{{
				Provider: "auth0", UserID: "64b7f0c2a1e3d4c5b6a79801",
				ProfileData: map[string]any{"tags": []any{"a"}},
			}},
			CreatedAt: clock,
			AppMetadata: map[string]any{
				"roles":  []any{"editor"},
				"org":    map[string]any{"id": "o1"},
				"groups": []any{map[string]any{"name": "g1"}},
			},
			UserMetadata: map[string]any{"prefs": map[string]any{"newsletter": true}},
		}
	}
	mutate := func(u linking.User) {
		u.AppMetadata["roles"].([]any)[0] = "admin"
		u.AppMetadata["org"].(map[string]any)["id"] = "o2"
		u.AppMetadata["groups"].([]any)[0].(map[string]any)["name"] = "g2"
		u.AppMetadata["new"] = true
		u.UserMetadata["prefs"].(map[string]any)["newsletter"] = false
		u.Identities[0].ProfileData["tags"].([]any)[0] = "b"
		u.Identities[0].Connection = "changed"
	}

	// Changing what was given changes nothing.
	in := newUser()
	tn := linkingtest.NewTenant(in)
	mutate(in)
	added := newUser()
	added.ID, added.Identities[0].UserID = "auth0|added", "added"
	if err := tn.AddUser(ctx, added); err != nil {
		t.Fatal(err)
	}
	mutate(added)

	// Neither does changing what was returned, by any method.
	got, _ := tn.User(ctx, in.ID)
	byEmail, _ := tn.UsersByEmail(ctx, in.Email)
	updated, _ := tn.UpdateUser(ctx, in.ID, func(*linking.User) error { return nil })
	for _, u := range append([]linking.User{got, byEmail[0], updated}, tn.Users()...) {
		mutate(u)
	}

	wantAdded := newUser()
	wantAdded.ID, wantAdded.Identities[0].UserID = "auth0|added", "added"
	if diff := cmp.Diff([]linking.User{newUser(), wantAdded}, tn.Users()); diff != "" {
		t.Errorf("tenant changed through copies (-want +got):\n%s", diff)
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	const n = 50
	var users []linking.User
	for i := range n {
		id := fmt.Sprintf("%024d", i)
		users = append(users,
			linking.User{ID: "auth0|" + id, Email: fmt.Sprintf("u%d@example.com", i),
				Identities: []linking.Identity{{Provider: "auth0", UserID: id}}},
			linking.User{ID: "email|" + id, Email: fmt.Sprintf("u%d@example.com", i),
				Identities: []linking.Identity{{Provider: "email", UserID: id}}},
		)
	}
	tn := linkingtest.NewTenant(users...)

	// Every goroutine links pair i%(n/2) and reads: each pair is linked by
	// two goroutines at once, so exactly one of them must win.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pair := i % (n / 2)
			id := fmt.Sprintf("%024d", pair)
			err := tn.Link(ctx, "auth0|"+id, linking.Identity{Provider: "email", UserID: id})
			errs <- err
			if _, err := tn.UsersByEmail(ctx, fmt.Sprintf("u%d@example.com", pair)); err != nil {
				t.Errorf("UsersByEmail: got error %v, want none", err)
			}
			if _, err := tn.User(ctx, "auth0|"+id); err != nil {
				t.Errorf("User: got error %v, want none", err)
			}
			tn.Users()
			tn.Calls()
		}()
	}
	wg.Wait()
	close(errs)

	var ok, conflict int
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, linking.ErrConflict):
			conflict++
		default:
			t.Errorf("Link: got error %v, want none or linking.ErrConflict", err)
		}
	}
	if ok != n/2 || conflict != n/2 {
		t.Errorf("Links: got %d successes and %d conflicts, want %d of each", ok, conflict, n/2)
	}
	if got, want := len(tn.Users()), n+n/2; got != want {
		t.Errorf("users after the links: got %d, want %d", got, want)
	}
	if got := tn.Calls()[linkingtest.MethodLink]; got != n {
		t.Errorf("Link calls: got %d, want %d", got, n)
	}
}

func TestConnections(t *testing.T) {
	tn := linkingtest.NewTenant()
	tn.AddConnection(linkingtest.Connection{ID: "con_0000000000000003", Name: "google-oauth2", Strategy: "google-oauth2"})
	want := []linkingtest.Connection{
		{ID: "con_0000000000000001", Name: "Username-Password-Authentication", Strategy: "auth0"},
		{ID: "con_0000000000000002", Name: "email", Strategy: "email"},
		{ID: "con_0000000000000003", Name: "google-oauth2", Strategy: "google-oauth2"},
	}
	if diff := cmp.Diff(want, tn.Connections()); diff != "" {
		t.Errorf("Connections mismatch (-want +got):\n%s", diff)
	}
	if c, ok := tn.ConnectionByName("email"); !ok || c != want[1] {
		t.Errorf("ConnectionByName(email): got %v, %t, want %v, true", c, ok, want[1])
	}
	if _, ok := tn.ConnectionByName("nope"); ok {
		t.Error("ConnectionByName(nope): got true, want false")
	}
}
