package linkingtest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
)

// A person signed up with a password, then signed in with a passwordless
// email code: the tenant holds two users. Linking the second into the first
// leaves one user holding both identities; the secondary's metadata is gone,
// and linking again is refused as Auth0 refuses it.
func ExampleTenant() {
	ctx := context.Background()
	tn := linkingtest.NewTenant(
		linking.User{
			ID: "auth0|64b7f0c2a1e3d4c5b6a79801", Email: "jane@example.com", EmailVerified: true,
			Identities: []linking.Identity{
				{Provider: "auth0", UserID: "64b7f0c2a1e3d4c5b6a79801", Connection: "Username-Password-Authentication"},
			},
			AppMetadata: map[string]any{"plan": "pro"},
		},
		linking.User{
			ID: "email|6650a1b2c3d4e5f6a7b8c9d0", Email: "jane@example.com", EmailVerified: true,
			Identities: []linking.Identity{
				{Provider: "email", UserID: "6650a1b2c3d4e5f6a7b8c9d0", Connection: "email"},
			},
			AppMetadata: map[string]any{"roles": []any{"admin"}},
		},
	)

	secondary := linking.Identity{Provider: "email", UserID: "6650a1b2c3d4e5f6a7b8c9d0"}
	if err := tn.Link(ctx, "auth0|64b7f0c2a1e3d4c5b6a79801", secondary); err != nil {
		fmt.Println("link:", err)
		return
	}
	for _, u := range tn.Users() {
		fmt.Println(u.ID, u.Email, u.AppMetadata)
		for _, id := range u.Identities {
			fmt.Printf("  %s (%s) %v\n", id.UserIDOf(), id.Connection, id.ProfileData)
		}
	}

	err := tn.Link(ctx, "auth0|64b7f0c2a1e3d4c5b6a79801", secondary)
	fmt.Println("again:", err, errors.Is(err, linking.ErrConflict))
	fmt.Println("calls:", tn.Calls()[linkingtest.MethodLink])
	// Output:
	// auth0|64b7f0c2a1e3d4c5b6a79801 jane@example.com map[plan:pro]
	//   auth0|64b7f0c2a1e3d4c5b6a79801 (Username-Password-Authentication) map[]
	//   email|6650a1b2c3d4e5f6a7b8c9d0 (email) map[email:jane@example.com email_verified:true]
	// again: linkingtest: 409: Specified identity already exists true
	// calls: 2
}
