package postlogintest_test

import (
	"context"
	"fmt"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/postlogin/postlogintest"
)

// The seed's failure, with the Action's part played by hand: Jane signed up
// with a password; her first passwordless login creates a new user, whose
// identity is linked into her first user during the login. The Action does
// not call setPrimaryUser, so the login's subject no longer exists and the
// login fails. Her next login resolves the identity to the primary and
// succeeds.
func ExampleLoginFlow() {
	ctx := context.Background()
	tenant := linkingtest.NewTenant(linking.User{
		ID: "auth0|63d1", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "63d1", Connection: "Username-Password-Authentication"}},
	})
	flow := &postlogintest.LoginFlow{Tenant: tenant, NewUserID: func() string { return "6f1c" }}

	for range 2 {
		tx, err := flow.PasswordlessEmail(ctx, "jane@example.com")
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("login as", tx.User.ID, "created:", tx.Created)
		if tx.Created {
			// What the Action's service does during the first login.
			if err := tenant.Link(ctx, "auth0|63d1", tx.Identity); err != nil {
				fmt.Println(err)
				return
			}
		}
		res, err := tx.Finish(ctx, postlogintest.ActionRun{}) // the Action called nothing
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("succeeded:", res.Succeeded, "as", res.Subject)
		if res.Err != nil {
			fmt.Println(res.Err)
		}
	}
	// Output:
	// login as email|6f1c created: true
	// succeeded: false as email|6f1c
	// postlogintest: login failed: the login's user does not exist: "email|6f1c" (its identity email|6f1c was linked into "auth0|63d1" during the login, and the Action did not call setPrimaryUser)
	// login as auth0|63d1 created: false
	// succeeded: true as auth0|63d1
}
