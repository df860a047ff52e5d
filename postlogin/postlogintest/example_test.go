package postlogintest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"

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

// A redirecting Action, its two executions played by hand: the first sends
// Jane to a confirming site, and the login waits; while she is there, the
// site links her new identity into her first user; her return to /continue
// resumes the login, the second execution calls setPrimaryUser, and the
// login ends as her first user. The state works once.
func ExampleLoginFlow_Continue() {
	ctx := context.Background()
	tenant := linkingtest.NewTenant(linking.User{
		ID: "auth0|63d1", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "63d1", Connection: "Username-Password-Authentication"}},
	})
	flow := &postlogintest.LoginFlow{Tenant: tenant, NewUserID: func() string { return "6f1c" }}
	tx, err := flow.PasswordlessEmail(ctx, "jane@example.com")
	if err != nil {
		fmt.Println(err)
		return
	}
	apiCall := func(method, arg string) postlogintest.ActionCall {
		return postlogintest.ActionCall{Method: method, Args: []json.RawMessage{json.RawMessage(`"` + arg + `"`)}}
	}

	fmt.Println(tx.Input().Function)
	res, err := tx.Finish(ctx, postlogintest.ActionRun{Calls: []postlogintest.ActionCall{
		apiCall(postlogintest.APISendUserTo, "https://linking.example/confirm"),
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	sent, _ := url.Parse(res.Redirect)
	fmt.Println("sent to", sent.Host+sent.Path, "with a state:", sent.Query().Get("state") != "", "ended:", res.Succeeded || res.Err != nil)

	if err := tenant.Link(ctx, "auth0|63d1", tx.Identity); err != nil { // the confirming site
		fmt.Println(err)
		return
	}
	back := httptest.NewRequest("GET", "https://tenant.example/continue?state="+sent.Query().Get("state"), nil)
	if tx, err = flow.Continue(back); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tx.Input().Function)
	res, err = tx.Finish(ctx, postlogintest.ActionRun{Calls: []postlogintest.ActionCall{
		apiCall(postlogintest.APISetPrimaryUser, "auth0|63d1"),
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("succeeded:", res.Succeeded, "as", res.Subject)
	_, err = flow.Continue(back)
	fmt.Println(err)
	// Output:
	// onExecutePostLogin
	// sent to linking.example/confirm with a state: true ended: false
	// onContinuePostLogin
	// succeeded: true as auth0|63d1
	// postlogintest: /continue: invalid_request: the state names no login waiting to continue
}
