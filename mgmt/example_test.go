package mgmt_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// ExampleStore_UsersByEmail looks a user up through the go-auth0 SDK, against
// the emulator.
func ExampleStore_UsersByEmail() {
	jane := linking.User{
		ID: "auth0|64b7f0c2a1e3d4c5b6a79801", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "auth0", UserID: "64b7f0c2a1e3d4c5b6a79801", Connection: "Username-Password-Authentication"},
		},
	}
	srv := mgmttest.NewServer(linkingtest.NewTenant(jane))
	defer srv.Close()

	// In production: mgmt.New(ctx, "example.eu.auth0.com", clientID, clientSecret).
	store, err := mgmt.New(context.Background(), srv.Domain(), srv.ClientID(), srv.ClientSecret(), srv.ClientOptions()...)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, email := range []string{"jane@example.com", "Jane@Example.com"} {
		users, err := store.UsersByEmail(context.Background(), email)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: %d user(s)\n", email, len(users))
	}
	// Output:
	// jane@example.com: 1 user(s)
	// Jane@Example.com: 0 user(s)
}

// ExampleNew links the seed scenario's first passwordless login into the
// existing database user.
func ExampleNew() {
	db, pwless := pair(1)
	srv := mgmttest.NewServer(linkingtest.NewTenant(db, pwless))
	defer srv.Close()

	store, err := mgmt.New(context.Background(), srv.Domain(), srv.ClientID(), srv.ClientSecret(), srv.ClientOptions()...)
	if err != nil {
		fmt.Println(err)
		return
	}
	// At startup: get the token, which the calls then use, and check its
	// scopes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := store.CheckAccess(ctx); err != nil {
		fmt.Println(err)
		return
	}
	l := &linking.Linker{Store: store}
	r, err := l.Link(context.Background(), loginOf(pwless))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Action, r.PrimaryUserID)
	fmt.Println("API calls:", srv.APIRequests(), "token requests:", srv.TokenRequests())
	// Output:
	// link auth0|db000001
	// API calls: 2 token requests: 1
}

// ExampleStore_CheckAccess tells a configuration error, which stops a
// program at startup, from a tenant out of reach for now.
func ExampleStore_CheckAccess() {
	srv := mgmttest.NewServer(linkingtest.NewTenant(), mgmttest.WithScopes("read:users", "update:users"))
	defer srv.Close()

	for _, secret := range []string{"wrong", srv.ClientSecret()} {
		store, err := mgmt.New(context.Background(), srv.Domain(), srv.ClientID(), secret, srv.ClientOptions()...)
		if err != nil {
			fmt.Println(err)
			return
		}
		err = store.CheckAccess(context.Background())
		switch {
		case errors.Is(err, mgmt.ErrConfig):
			fmt.Println("stop:", err)
		case errors.Is(err, linking.ErrUnavailable):
			fmt.Println("start, not ready yet:", err)
		}
	}
	// Output:
	// stop: mgmt: check access: 401 Unauthorized: token request refused: Unauthorized (access_denied)
	// stop: mgmt: check access: mgmt: configuration error: the client's token lacks the scopes read:connections (granted: read:users update:users); grant them to the application for the Auth0 Management API
}
