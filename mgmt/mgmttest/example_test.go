package mgmttest_test

import (
	"context"
	"fmt"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// ExampleNewServer runs a lost link response against the real go-auth0 SDK:
// the emulator commits the link and drops the connection, the SDK sends the
// link again and the emulator refuses it; the Linker reads the primary back
// and reports the link.
func ExampleNewServer() {
	db := linking.User{
		ID: "auth0|63d17c6a", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "63d17c6a", Connection: "Username-Password-Authentication"}},
	}
	pwless := linking.User{
		ID: "email|6f1c2b3a", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "email", UserID: "6f1c2b3a", Connection: "email"}},
	}
	srv := mgmttest.NewServer(linkingtest.NewTenant(db, pwless))
	defer srv.Close()
	srv.CommitThenDrop(mgmttest.RouteLink, 1)

	store, err := mgmt.New(context.Background(), srv.Domain(), srv.ClientID(), srv.ClientSecret(), srv.ClientOptions()...)
	if err != nil {
		fmt.Println(err)
		return
	}
	l := &linking.Linker{Store: store}
	r, err := l.Link(context.Background(), linking.Login{User: pwless, Identity: pwless.Identities[0]})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Action, r.PrimaryUserID, r.Reason)
	fmt.Println("link requests:", srv.Requests(mgmttest.RouteLink), "reads:", srv.Requests(mgmttest.RouteUser))
	// Output:
	// link auth0|63d17c6a already_linked
	// link requests: 2 reads: 1
}
