package backfill_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/idlink/linking"
	"github.com/idlink/linking/backfill"
	"github.com/idlink/linking/linkingtest"
)

// export is a tiny Auth0 user export: Jane signed up with a password, then
// with a passwordless code; Mallory pre-registered an unverified password
// account with Bob's email before Bob signed in with a code.
const export = `{"user_id":"auth0|jane","email":"jane@example.com","email_verified":true,"created_at":"2021-01-01T00:00:00.000Z","identities":[{"provider":"auth0","user_id":"jane","connection":"Username-Password-Authentication","isSocial":false}]}
{"user_id":"email|jane","email":"jane@example.com","email_verified":true,"created_at":"2023-06-01T00:00:00.000Z","identities":[{"provider":"email","user_id":"jane","connection":"email","isSocial":false}],"user_metadata":{"theme":"dark"}}
{"user_id":"auth0|mallory","email":"bob@example.com","email_verified":false,"created_at":"2021-01-01T00:00:00.000Z","identities":[{"provider":"auth0","user_id":"mallory","connection":"Username-Password-Authentication","isSocial":false}]}
{"user_id":"email|bob","email":"bob@example.com","email_verified":true,"created_at":"2022-01-01T00:00:00.000Z","identities":[{"provider":"email","user_id":"bob","connection":"email","isSocial":false}]}
`

func Example() {
	ctx := context.Background()
	open := func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(export)), nil }

	// Plan, and review.
	var plan bytes.Buffer
	summary, err := backfill.Planner{}.Plan(ctx, open, &plan)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("groups: %d, to link: %d\n", summary.Groups, summary.Links)
	for _, r := range summary.Refused {
		fmt.Printf("refused %s: %s (%s is %s)\n", r.Email, r.Reason, r.PrimaryID, r.PrimaryVerdict)
	}

	// Apply to a tenant (here in memory), with a journal.
	var tenantUsers []linking.User
	for u, err := range backfill.ReadExport(strings.NewReader(export)) {
		if err != nil {
			fmt.Println(err)
			return
		}
		tenantUsers = append(tenantUsers, u)
	}
	tenant := linkingtest.NewTenant(tenantUsers...)
	dir, _ := os.MkdirTemp("", "backfill")
	defer os.RemoveAll(dir)
	journal := filepath.Join(dir, "journal.jsonl")

	pl, err := backfill.ReadPlan(&plan)
	if err != nil {
		fmt.Println(err)
		return
	}
	a := &backfill.Applier{Store: tenant, Tenant: "example.eu.auth0.com", Rate: 100}
	rep, err := a.Apply(ctx, pl, journal)
	fmt.Printf("linked: %d, calls: %d, err: %v\n", rep.Done, rep.Calls, err)
	jane, _ := tenant.User(ctx, "auth0|jane")
	fmt.Println("jane's identities:", len(jane.Identities))

	// Undo: the passwordless user comes back with its metadata.
	rep, err = a.Undo(ctx, journal)
	fmt.Printf("undone: %d, err: %v\n", rep.Done, err)
	back, _ := tenant.User(ctx, "email|jane")
	fmt.Println("restored metadata:", back.UserMetadata["theme"])
	// Output:
	// groups: 2, to link: 1
	// refused bob@example.com: primary_ineligible (auth0|mallory is email_unverified)
	// linked: 1, calls: 3, err: <nil>
	// jane's identities: 2
	// undone: 1, err: <nil>
	// restored metadata: dark
}

// threeAccounts is an export in which Ann signed up three times: with a
// passwordless code, with Google, then with a password.
const threeAccounts = `{"user_id":"email|ann","email":"ann@example.com","email_verified":true,"created_at":"2021-02-01T00:00:00.000Z","identities":[{"provider":"email","user_id":"ann","connection":"email","isSocial":false}]}
{"user_id":"google-oauth2|1234","email":"ann@example.com","email_verified":true,"created_at":"2022-03-01T00:00:00.000Z","identities":[{"provider":"google-oauth2","user_id":"1234","connection":"google-oauth2","isSocial":true}]}
{"user_id":"auth0|ann","email":"ann@example.com","email_verified":true,"created_at":"2023-04-01T00:00:00.000Z","identities":[{"provider":"auth0","user_id":"ann","connection":"Username-Password-Authentication","isSocial":false}]}
`

// With a Selector, the rule a login uses chooses each group's primary, and
// every other eligible member is linked into it.
func Example_select() {
	ctx := context.Background()
	open := func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(threeAccounts)), nil }
	policy := linking.Policy{
		TrustedProviders: []string{"auth0", "email", "google-oauth2"},
		Select:           linking.RecommendedSelector, // the oldest user
	}
	var plan bytes.Buffer
	if _, err := (backfill.Planner{Policy: policy}).Plan(ctx, open, &plan); err != nil {
		fmt.Println(err)
		return
	}
	pl, err := backfill.ReadPlan(&plan)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range pl.Lines {
		fmt.Printf("%s: keep %s (chosen by %s), link %d\n", l.Email, l.Primary.ID, l.ChosenBy, len(l.Secondaries))
	}
	// Output:
	// ann@example.com: keep email|ann (chosen by oldest), link 2
}
