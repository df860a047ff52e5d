package postlogintest_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt/mgmttest"
	"github.com/idlink/linking/postlogin/postlogintest"
)

// dbUser is the user who signed up with email and password.
var dbUser = linking.User{
	ID: "auth0|63d1", Email: "jane@example.com", EmailVerified: true,
	Identities:  []linking.Identity{{Provider: "auth0", UserID: "63d1", Connection: "Username-Password-Authentication"}},
	AppMetadata: map[string]any{"plan": "pro"},
}

// newFlow returns a LoginFlow over a tenant holding users, whose new
// passwordless users get the ids "6f1c", "6f1d", ...
func newFlow(users ...linking.User) *postlogintest.LoginFlow {
	ids := []string{"6f1c", "6f1d", "6f1e"}
	return &postlogintest.LoginFlow{
		Tenant: linkingtest.NewTenant(users...),
		NewUserID: func() string {
			id := ids[0]
			ids = ids[1:]
			return id
		},
	}
}

// call is an api call with its arguments as JSON.
func call(t *testing.T, method string, args ...any) postlogintest.ActionCall {
	t.Helper()
	c := postlogintest.ActionCall{Method: method}
	for _, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		c.Args = append(c.Args, b)
	}
	return c
}

func TestLoginFlow_FirstPasswordlessLoginCreatesTheUser(t *testing.T) {
	ctx := context.Background()
	flow := newFlow(dbUser)
	tx, err := flow.PasswordlessEmail(ctx, " Jane@Example.COM")
	if err != nil {
		t.Fatal(err)
	}
	if !tx.Created {
		t.Errorf("Created: got false, want true")
	}
	wantID := linking.Identity{Provider: "email", UserID: "6f1c", Connection: "email"}
	if diff := cmp.Diff(wantID, tx.Identity); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	stored, err := flow.Tenant.User(ctx, "email|6f1c")
	if err != nil {
		t.Fatalf("the new user: %v", err)
	}
	want := linking.User{
		ID: "email|6f1c", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{wantID}, CreatedAt: stored.CreatedAt,
	}
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("stored user (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, tx.User); diff != "" {
		t.Errorf("the login's user (-want +got):\n%s", diff)
	}

	ev := tx.Event()
	wantEvent := postlogintest.Event{
		User: postlogintest.EventUser{
			UserID: "email|6f1c", Email: "jane@example.com", EmailVerified: true,
			Identities:  []postlogintest.EventIdentity{{Provider: "email", UserID: "6f1c", Connection: "email"}},
			CreatedAt:   stored.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z"),
			AppMetadata: map[string]any{}, UserMetadata: map[string]any{},
		},
		Connection:  postlogintest.EventConnection{ID: "con_0000000000000002", Name: "email", Strategy: "email"},
		Client:      postlogintest.EventClient{ClientID: "app-client-id", Name: "My App"},
		Request:     postlogintest.EventRequest{IP: "127.0.0.1", Method: "POST", UserAgent: "Mozilla/5.0"},
		Transaction: postlogintest.EventTransaction{ID: tx.ID, Protocol: "oidc-basic-profile"},
		Secrets:     map[string]string{},
	}
	if diff := cmp.Diff(wantEvent, ev); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(tx.ID, "tx_") {
		t.Errorf("transaction id: got %q, want tx_...", tx.ID)
	}
	// The Action reads these fields by their Auth0 names.
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"user_id":"email|6f1c"`, `"email_verified":true`, `"isSocial":false`,
		`"app_metadata":{}`, `"user_metadata":{}`, `"strategy":"email"`, `"secrets":{}`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("event JSON %s: want %s in it", b, field)
		}
	}
}

func TestLoginFlow_LaterLoginsFindTheUser(t *testing.T) {
	ctx := context.Background()
	flow := newFlow(dbUser)
	first, err := flow.PasswordlessEmail(ctx, "jane@example.com")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("not linked: the passwordless user", func(t *testing.T) {
		tx, err := flow.PasswordlessEmail(ctx, "JANE@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if tx.Created || tx.User.ID != first.User.ID || !tx.Identity.Is(first.Identity) {
			t.Errorf("got user %q (created %v) with %s, want %q with %s, not created",
				tx.User.ID, tx.Created, tx.Identity.UserIDOf(), first.User.ID, first.Identity.UserIDOf())
		}
	})

	if err := flow.Tenant.Link(ctx, dbUser.ID, first.Identity); err != nil {
		t.Fatal(err)
	}
	t.Run("linked: the primary", func(t *testing.T) {
		tx, err := flow.PasswordlessEmail(ctx, "jane@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if tx.Created || tx.User.ID != dbUser.ID || !tx.Identity.Is(first.Identity) {
			t.Errorf("got user %q (created %v) with %s, want %q with %s, not created",
				tx.User.ID, tx.Created, tx.Identity.UserIDOf(), dbUser.ID, first.Identity.UserIDOf())
		}
		ev := tx.Event()
		if got := len(ev.User.Identities); got != 2 {
			t.Errorf("event.user.identities: got %d, want 2", got)
		}
		if got := ev.User.AppMetadata["plan"]; got != "pro" {
			t.Errorf("event.user.app_metadata.plan: got %v, want pro", got)
		}
	})
	if n := len(flow.Tenant.Users()); n != 1 {
		t.Errorf("users: got %d, want 1", n)
	}
}

// TestTransaction_Finish applies Auth0's rules to what the Action did, for
// the seed scenario's first passwordless login.
func TestTransaction_Finish(t *testing.T) {
	const passwordlessID = "email|6f1c"
	tests := []struct {
		name string
		// linked: the service linked the login's identity into dbUser
		// while the Action ran.
		linked bool
		calls  func(t *testing.T) []postlogintest.ActionCall
		threw  string

		wantSucceeded bool
		wantSubject   string
		wantErr       error
		wantErrText   string // in the error's message
		wantDenied    string
		wantDiscarded bool
		// wantMeta is the app_metadata of wantSubject afterwards.
		wantMeta map[string]any
	}{
		{
			name: "linked, then setPrimaryUser: the login ends as the primary", linked: true,
			calls: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APISetPrimaryUser, dbUser.ID)}
			},
			wantSucceeded: true, wantSubject: dbUser.ID, wantMeta: map[string]any{"plan": "pro"},
		},
		{
			name: "linked, no setPrimaryUser: the seed's failure", linked: true,
			calls:       func(*testing.T) []postlogintest.ActionCall { return nil },
			wantSubject: passwordlessID, wantErr: postlogintest.ErrUserNotFound,
			wantErrText: `does not exist: "email|6f1c" (its identity email|6f1c was linked into "auth0|63d1"`,
		},
		{
			name:          "nothing to link, nothing called: the login goes on",
			calls:         func(*testing.T) []postlogintest.ActionCall { return nil },
			wantSucceeded: true, wantSubject: passwordlessID,
		},
		{
			name: "nothing to link, the marker: written to the login's user",
			calls: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APISetAppMetadata, "linking", map[string]any{"checked_email": "jane@example.com"})}
			},
			wantSucceeded: true, wantSubject: passwordlessID,
			wantMeta: map[string]any{"linking": map[string]any{"checked_email": "jane@example.com"}},
		},
		{
			name: "metadata with setPrimaryUser: discarded", linked: true,
			calls: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{
					call(t, postlogintest.APISetAppMetadata, "linking", map[string]any{"checked_email": "jane@example.com"}),
					call(t, postlogintest.APISetUserMetadata, "locale", "fr"),
					call(t, postlogintest.APISetPrimaryUser, dbUser.ID),
				}
			},
			wantSucceeded: true, wantSubject: dbUser.ID, wantDiscarded: true, wantMeta: map[string]any{"plan": "pro"},
		},
		{
			name: "setPrimaryUser without a link: the primary does not hold the identity",
			calls: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APISetPrimaryUser, dbUser.ID)}
			},
			wantSubject: dbUser.ID, wantErr: postlogintest.ErrIdentityNotHeld,
			wantErrText: `email|6f1c is not among the identities of "auth0|63d1"`,
		},
		{
			name: "setPrimaryUser to a user that does not exist", linked: true,
			calls: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APISetPrimaryUser, "auth0|nobody")}
			},
			wantSubject: "auth0|nobody", wantErr: postlogintest.ErrUserNotFound,
		},
		{
			name: "setPrimaryUser twice", linked: true,
			calls: func(t *testing.T) []postlogintest.ActionCall {
				c := call(t, postlogintest.APISetPrimaryUser, dbUser.ID)
				return []postlogintest.ActionCall{c, c}
			},
			wantSubject: passwordlessID, wantErr: postlogintest.ErrSetPrimaryUser, wantErrText: "more than once",
		},
		{
			name: "setPrimaryUser with 129 characters", linked: true,
			calls: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APISetPrimaryUser, "auth0|"+strings.Repeat("a", 123))}
			},
			wantSubject: passwordlessID, wantErr: postlogintest.ErrSetPrimaryUser, wantErrText: "got 129",
		},
		{
			name: "setPrimaryUser with a number", linked: true,
			calls: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APISetPrimaryUser, 63)}
			},
			wantSubject: passwordlessID, wantErr: postlogintest.ErrSetPrimaryUser, wantErrText: "not a string",
		},
		{
			name: "deny wins over setPrimaryUser", linked: true,
			calls: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{
					call(t, postlogintest.APISetPrimaryUser, dbUser.ID),
					call(t, postlogintest.APIDeny, "Please contact support."),
					call(t, postlogintest.APIDeny, "second"),
				}
			},
			wantSubject: passwordlessID, wantErr: postlogintest.ErrAccessDenied, wantDenied: "Please contact support.",
		},
		{
			name: "the Action threw", linked: true,
			calls: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APISetPrimaryUser, dbUser.ID)}
			},
			threw:       "fetch failed",
			wantSubject: passwordlessID, wantErr: postlogintest.ErrActionFailed, wantErrText: "fetch failed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			flow := newFlow(dbUser)
			tx, err := flow.PasswordlessEmail(ctx, "jane@example.com")
			if err != nil {
				t.Fatal(err)
			}
			if tt.linked {
				if err := flow.Tenant.Link(ctx, dbUser.ID, tx.Identity); err != nil {
					t.Fatal(err)
				}
			}
			got, err := tx.Finish(ctx, postlogintest.ActionRun{Calls: tt.calls(t), Error: tt.threw})
			if err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if got.Succeeded != tt.wantSucceeded || got.Subject != tt.wantSubject || got.Denied != tt.wantDenied ||
				got.MetadataDiscarded != tt.wantDiscarded {
				t.Errorf("got succeeded %v, subject %q, denied %q, discarded %v; want %v, %q, %q, %v (err %v)",
					got.Succeeded, got.Subject, got.Denied, got.MetadataDiscarded,
					tt.wantSucceeded, tt.wantSubject, tt.wantDenied, tt.wantDiscarded, got.Err)
			}
			if got.Succeeded != (got.Err == nil) {
				t.Errorf("Succeeded %v with Err %v", got.Succeeded, got.Err)
			}
			if tt.wantErr != nil && !errors.Is(got.Err, tt.wantErr) {
				t.Errorf("Err: got %v, want %v", got.Err, tt.wantErr)
			}
			if got.Err != nil && !strings.Contains(got.Err.Error(), tt.wantErrText) {
				t.Errorf("Err: got %q, want %q in it", got.Err, tt.wantErrText)
			}
			if !tt.wantSucceeded {
				return
			}
			u, err := flow.Tenant.User(ctx, tt.wantSubject)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantMeta, u.AppMetadata); diff != "" {
				t.Errorf("app_metadata of %s (-want +got):\n%s", tt.wantSubject, diff)
			}
			if tt.wantDiscarded && u.UserMetadata != nil {
				t.Errorf("user_metadata of %s: got %v, want none", tt.wantSubject, u.UserMetadata)
			}
		})
	}
}

func TestTransaction_FinishMisuse(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		calls []postlogintest.ActionCall
	}{
		{"an api method the model does not know", []postlogintest.ActionCall{{Method: "idToken.setCustomClaim"}}},
		{"metadata without a key", []postlogintest.ActionCall{{Method: postlogintest.APISetAppMetadata}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := newFlow(dbUser).PasswordlessEmail(ctx, "jane@example.com")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Finish(ctx, postlogintest.ActionRun{Calls: tt.calls}); err == nil {
				t.Errorf("Finish: got no error, want one")
			}
		})
	}

	t.Run("finished twice", func(t *testing.T) {
		tx, err := newFlow(dbUser).PasswordlessEmail(ctx, "jane@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Finish(ctx, postlogintest.ActionRun{}); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Finish(ctx, postlogintest.ActionRun{}); err == nil {
			t.Errorf("second Finish: got no error, want one")
		}
	})
}

// TestLoginFlow_MakesNoAPIRequest: the model changes the tenant as Auth0
// does, not through the Management API, so the mgmttest Emulator's counters
// show only what a service did.
func TestLoginFlow_MakesNoAPIRequest(t *testing.T) {
	ctx := context.Background()
	srv := mgmttest.NewServer(linkingtest.NewTenant(dbUser))
	defer srv.Close()
	flow := &postlogintest.LoginFlow{Tenant: srv.Tenant}
	tx, err := flow.PasswordlessEmail(ctx, "jane@example.com")
	if err != nil {
		t.Fatal(err)
	}
	res, err := tx.Finish(ctx, postlogintest.ActionRun{Calls: []postlogintest.ActionCall{
		call(t, postlogintest.APISetAppMetadata, "linking", map[string]any{"checked_email": "jane@example.com"}),
	}})
	if err != nil || !res.Succeeded {
		t.Fatalf("Finish: got %+v, %v; want a success", res, err)
	}
	if got := srv.APIRequests() + srv.TokenRequests(); got != 0 {
		t.Errorf("emulator requests: got %d, want 0", got)
	}
	// A generated id has Auth0's shape.
	if id := tx.Identity.UserID; len(id) != 24 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Errorf("generated user id: got %q, want 24 hex digits", id)
	}
}

// TestLoginFlow_SignIn: a password or social login arrives as the user that
// holds its identity, a primary when the identity was linked; an identity no
// user holds, or of a connection the tenant lacks, is an error.
func TestLoginFlow_SignIn(t *testing.T) {
	ctx := context.Background()
	db := linking.User{ID: "auth0|63d1", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "63d1", Connection: "Username-Password-Authentication"}}}
	otp := linking.User{ID: "email|6f1c", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "email", UserID: "6f1c", Connection: "email"}}}
	tenant := linkingtest.NewTenant(db, otp)
	flow := &postlogintest.LoginFlow{Tenant: tenant}

	tx, err := flow.SignIn(ctx, db.Identities[0])
	if err != nil || tx.User.ID != db.ID || !tx.Identity.Is(db.Identities[0]) || tx.Created {
		t.Fatalf("SignIn: got %+v, %v; want a login of %s", tx, err, db.ID)
	}
	if err := tenant.Link(ctx, db.ID, otp.Identities[0]); err != nil {
		t.Fatal(err)
	}
	tx, err = flow.SignIn(ctx, otp.Identities[0])
	if err != nil || tx.User.ID != db.ID || len(tx.User.Identities) != 2 {
		t.Fatalf("SignIn of a linked identity: got %+v, %v; want the primary %s", tx, err, db.ID)
	}
	for _, id := range []linking.Identity{
		{Provider: "auth0", UserID: "nobody", Connection: "Username-Password-Authentication"},
		{Provider: "google-oauth2", UserID: "1089", Connection: "google-oauth2"},
	} {
		if tx, err := flow.SignIn(ctx, id); err == nil {
			t.Errorf("SignIn(%s): got %+v, want an error", id.UserIDOf(), tx)
		}
	}
}
