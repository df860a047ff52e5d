package linking_test

import (
	"time"

	"github.com/idlink/linking"
)

// created is the creation time of the users in these tests; the rule does not
// read it, the tenant keeps it.
var created = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// dbUser is a user of the "Username-Password-Authentication" database.
func dbUser(id, email string, verified bool) linking.User {
	return user("auth0", id, "Username-Password-Authentication", email, verified)
}

// otpUser is a passwordless email user, verified by the code it signed in with.
func otpUser(id, email string) linking.User {
	return user("email", id, "email", email, true)
}

func user(provider, id, connection, email string, verified bool) linking.User {
	return linking.User{
		ID:            provider + "|" + id,
		Email:         email,
		EmailVerified: verified,
		Identities:    []linking.Identity{{Provider: provider, UserID: id, Connection: connection}},
		CreatedAt:     created,
	}
}

// loginAs is the first login of u, with its only identity.
func loginAs(u linking.User) linking.Login {
	return linking.Login{User: u, Identity: u.Identities[0]}
}
