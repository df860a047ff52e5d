package mgmt_test

import (
	"context"
	"fmt"

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

	// The context is that of every token request: give New a long-lived one.
	store, err := mgmt.New(context.Background(), srv.Domain(), srv.ClientID(), srv.ClientSecret(), srv.ClientOptions()...)
	if err != nil {
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
