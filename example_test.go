package linking_test

import (
	"context"
	"fmt"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
)

// Decide applies the rule without any I/O: here an attacker's unverified
// account with the same email is refused, and the login is linked into the
// verified database user.
func ExampleDecide() {
	login := linking.Login{
		User: linking.User{
			ID: "email|6f1c2b3a", Email: "jane@example.com", EmailVerified: true,
			Identities: []linking.Identity{{Provider: "email", UserID: "6f1c2b3a", Connection: "email"}},
		},
		Identity: linking.Identity{Provider: "email", UserID: "6f1c2b3a", Connection: "email"},
	}
	candidates := []linking.User{
		login.User,
		{
			ID: "auth0|63d17c6a", Email: "jane@example.com", EmailVerified: true,
			Identities: []linking.Identity{{Provider: "auth0", UserID: "63d17c6a", Connection: "Username-Password-Authentication"}},
		},
		{
			ID: "auth0|5eed0bad", Email: "Jane@Example.com", EmailVerified: false,
			Identities: []linking.Identity{{Provider: "auth0", UserID: "5eed0bad", Connection: "Username-Password-Authentication"}},
		},
	}

	d := linking.Decide(login, candidates, linking.Policy{})
	fmt.Println(d.Action, d.Reason, d.Primary.ID)
	for _, v := range d.Candidates {
		fmt.Println(" ", v.UserID, v.Reason)
	}
	// Output:
	// link linked auth0|63d17c6a
	//   auth0|5eed0bad email_unverified
	//   auth0|63d17c6a eligible
	//   email|6f1c2b3a self
}

// A Linker runs the rule against a tenant. Result.PrimaryUserID is what a
// post-login Action passes to api.authentication.setPrimaryUser.
func ExampleLinker() {
	password := linking.User{
		ID: "auth0|63d17c6a", Email: "jane@example.com", EmailVerified: true,
		Identities:   []linking.Identity{{Provider: "auth0", UserID: "63d17c6a", Connection: "Username-Password-Authentication"}},
		UserMetadata: map[string]any{"theme": "dark"},
	}
	passwordless := linking.User{
		ID: "email|6f1c2b3a", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "email", UserID: "6f1c2b3a", Connection: "email"}},
	}
	tenant := linkingtest.NewTenant(password, passwordless)
	l := &linking.Linker{Store: tenant}

	r, err := l.Link(context.Background(), linking.Login{User: passwordless, Identity: passwordless.Identities[0]})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("setPrimaryUser:", r.PrimaryUserID)
	for _, u := range tenant.Users() {
		fmt.Println(u.ID, u.UserMetadata)
		for _, id := range u.Identities {
			fmt.Println(" ", id.UserIDOf(), id.Connection)
		}
	}
	// Output:
	// setPrimaryUser: auth0|63d17c6a
	// auth0|63d17c6a map[theme:dark]
	//   auth0|63d17c6a Username-Password-Authentication
	//   email|6f1c2b3a email
}

// With a Selector, the primary is the user it prefers, whichever user logs
// in: here the older database user signs in after a passwordless user was
// created, absorbs it, and keeps its user id.
func ExampleSelector() {
	password := linking.User{
		ID: "auth0|63d17c6a", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "63d17c6a", Connection: "Username-Password-Authentication"}},
		CreatedAt:  time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC),
	}
	passwordless := linking.User{
		ID: "email|6f1c2b3a", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "email", UserID: "6f1c2b3a", Connection: "email"}},
		CreatedAt:  time.Date(2025, 11, 25, 10, 0, 0, 0, time.UTC),
	}
	sel, err := linking.ParseSelector("oldest")
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	tenant := linkingtest.NewTenant(password, passwordless)
	l := &linking.Linker{Store: tenant, Policy: linking.Policy{Select: sel}}

	r, err := l.Link(context.Background(), linking.Login{User: password, Identity: password.Identities[0]})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println(r.Action, r.Reason, "chosen by", r.Decision.ChosenBy)
	for _, u := range tenant.Users() {
		fmt.Println(u.ID, len(u.Identities), "identities")
	}
	// Output:
	// absorb absorbed chosen by oldest
	// auth0|63d17c6a 2 identities
}
