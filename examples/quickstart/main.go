// Command quickstart runs the seed scenario on an in-memory tenant: a person
// who signed up with email and password signs in with a passwordless email
// code, and the login ends as the existing user on the first attempt.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer) error {
	// Jane signed up with email and password in March.
	password := linking.User{
		ID: "auth0|63d17c6a", Email: "jane@example.com", EmailVerified: true,
		Identities:   []linking.Identity{{Provider: "auth0", UserID: "63d17c6a", Connection: "Username-Password-Authentication"}},
		CreatedAt:    time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
		UserMetadata: map[string]any{"plan": "pro"},
	}
	// Someone else registered Jane's address and never verified it.
	squatter := linking.User{
		ID: "auth0|5eed0bad", Email: "jane@example.com", EmailVerified: false,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "5eed0bad", Connection: "Username-Password-Authentication"}},
		CreatedAt:  time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC),
	}
	// Today Jane signs in with a code sent to her email: Auth0 has just
	// created a second user for that identity.
	passwordless := linking.User{
		ID: "email|6f1c2b3a", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "email", UserID: "6f1c2b3a", Connection: "email"}},
		CreatedAt:  time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
	}
	tenant := linkingtest.NewTenant(password, squatter, passwordless)
	tenant.ResetCalls()

	linker := &linking.Linker{Store: tenant}
	login := linking.Login{User: passwordless, Identity: passwordless.Identities[0]}
	r, err := linker.Link(ctx, login)
	if err != nil {
		return err
	}

	fmt.Fprintf(w, "login:    %s signs in with %s (%s)\n", login.User.ID, login.Identity.Connection, login.User.Email)
	fmt.Fprintf(w, "decision: %s (%s)\n", r.Decision.Action, r.Decision.Reason)
	for _, v := range r.Decision.Candidates {
		fmt.Fprintf(w, "  candidate %-16s %s\n", v.UserID, v.Reason)
	}
	if r.PrimaryUserID == "" {
		return fmt.Errorf("nothing was linked (%s)", r.Reason)
	}
	fmt.Fprintf(w, "action:   api.authentication.setPrimaryUser(%q)\n", r.PrimaryUserID)

	calls := tenant.Calls()
	fmt.Fprintf(w, "store:    %d lookup, %d link\n", calls[linkingtest.MethodUsersByEmail], calls[linkingtest.MethodLink])
	fmt.Fprintln(w, "tenant afterwards:")
	for _, u := range tenant.Users() {
		if u.Email != "jane@example.com" || !u.EmailVerified {
			fmt.Fprintf(w, "  %s (unverified, untouched)\n", u.ID)
			continue
		}
		fmt.Fprintf(w, "  %s %s metadata=%v\n", u.ID, u.Email, u.UserMetadata)
		for _, id := range u.Identities {
			fmt.Fprintf(w, "    identity %s (%s)\n", id.UserIDOf(), id.Connection)
		}
	}
	return nil
}
