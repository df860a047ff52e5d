package linkingtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/idlink/linking"
)

// TestConvergence checks primary selection end to end: one person holds 2 to
// 5 users with one verified email, from connections the policy trusts, made
// at different times, some already linked into one of them. Each identity
// then signs in once, in a random order, through a linking.Linker with a
// Selector over a store over the tenant. Afterwards the person must be
// exactly one user, the one the Selector names for the users as they were at
// the start, holding every identity once; and no login may have ended as a
// user that no longer exists, or been denied.
//
// Each seed draws one person; the same seeds draw the same people and orders.
// newStore returns a store over tenant, which holds the person's users:
//
//	linkingtest.TestConvergence(t, 200, func(t *testing.T, tenant *linkingtest.Tenant) linking.UserStore {
//		return tenant
//	})
func TestConvergence(t *testing.T, seeds int, newStore func(t *testing.T, tenant *Tenant) linking.UserStore) {
	for seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			testConvergence(t, uint64(seed), newStore)
		})
	}
}

// convergenceConnections are the connections a person's users come from.
var convergenceConnections = []linking.Identity{
	{Provider: "auth0", Connection: "Username-Password-Authentication"},
	{Provider: "auth0", Connection: "Legacy-Database"},
	{Provider: "email", Connection: "email"},
	{Provider: "google-oauth2", Connection: "google-oauth2"},
}

// convergenceSelectors are the selectors the suite draws from.
var convergenceSelectors = []linking.Selector{
	linking.RecommendedSelector,
	{linking.PreferConnection("Username-Password-Authentication"), linking.PreferOldest},
	{linking.PreferProvider("email"), linking.PreferOldest},
}

func testConvergence(t *testing.T, seed uint64, newStore func(*testing.T, *Tenant) linking.UserStore) {
	r := rand.New(rand.NewPCG(seed, 0x11))
	ctx := context.Background()
	n := 2 + r.IntN(4)
	days := r.Perm(n) // distinct creation days: the oldest is always one user
	var users []linking.User
	var identities []linking.Identity
	for i := range n {
		c := convergenceConnections[r.IntN(len(convergenceConnections))]
		id := linking.Identity{Provider: c.Provider, UserID: fmt.Sprintf("%x%02d", seed, i), Connection: c.Connection,
			IsSocial: c.Provider == "google-oauth2"}
		identities = append(identities, id)
		users = append(users, linking.User{
			ID: id.UserIDOf(), Email: "jane@example.com", EmailVerified: true,
			Identities: []linking.Identity{id},
			CreatedAt:  time.Date(2024, 1, 1+days[i], 9, 0, 0, 0, time.UTC),
		})
	}
	tenant := NewTenant(users...)
	if n > 2 && r.IntN(2) == 0 {
		// One user already holds some of the others.
		primary := r.IntN(n)
		for i := range n {
			if i != primary && r.IntN(2) == 0 {
				if err := tenant.Link(ctx, users[primary].ID, identities[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	sel := convergenceSelectors[r.IntN(len(convergenceSelectors))]
	start := tenant.Users()
	best, _, ok := sel.Select(start)
	if !ok {
		t.Fatalf("selector %s cannot choose among %s: the suite's people must be decidable", sel, describe(start))
	}
	want := start[best].ID

	store := newStore(t, tenant)
	l := &linking.Linker{Store: store, Policy: linking.Policy{
		TrustedProviders: []string{"auth0", "email", "google-oauth2"},
		Select:           sel,
	}}
	order := r.Perm(n)
	for _, i := range order {
		id := identities[i]
		holder, ok := holderOf(tenant, id)
		if !ok {
			t.Fatalf("identity %s belongs to no user: lost (tenant %s)", id.UserIDOf(), describe(tenant.Users()))
		}
		res, err := l.Link(ctx, linking.Login{User: holder, Identity: id})
		if err != nil || res.Action == linking.ActionDeny {
			t.Fatalf("login with %s as %s (selector %s, start %s): %v/%s, %v",
				id.UserIDOf(), holder.ID, sel, describe(start), res.Action, res.Reason, err)
		}
		endsAs := holder.ID
		if res.Action == linking.ActionLink {
			endsAs = res.PrimaryUserID
			if endsAs == holder.ID {
				t.Fatalf("login with %s linked %s into itself", id.UserIDOf(), holder.ID)
			}
		}
		if u, ok := holderOf(tenant, id); !ok || u.ID != endsAs {
			t.Fatalf("login with %s ended as %s, but the identity is held by %q (%v): the login's user does not exist",
				id.UserIDOf(), endsAs, u.ID, ok)
		}
	}

	end := tenant.Users()
	if len(end) != 1 || end[0].ID != want {
		t.Fatalf("selector %s, start %s, logins in order %v: end %s, want %s alone",
			sel, describe(start), order, describe(end), want)
	}
	got := make([]string, 0, n)
	for _, id := range end[0].Identities {
		got = append(got, id.UserIDOf())
	}
	wantIDs := make([]string, 0, n)
	for _, id := range identities {
		wantIDs = append(wantIDs, id.UserIDOf())
	}
	slices.Sort(got)
	slices.Sort(wantIDs)
	if !slices.Equal(got, wantIDs) {
		t.Fatalf("identities of %s: got %v, want each of %v once", want, got, wantIDs)
	}
}

// holderOf returns the user of tenant that holds id, as the tenant has it
// now: the user Auth0 makes the subject of a login with id.
func holderOf(tenant *Tenant, id linking.Identity) (linking.User, bool) {
	for _, u := range tenant.Users() {
		if u.Holds(id) {
			return u, true
		}
	}
	return linking.User{}, false
}

// describe lists users as "id(connection, day, identities)".
func describe(users []linking.User) string {
	s := ""
	for _, u := range users {
		main, _ := u.MainIdentity()
		s += fmt.Sprintf(" %s(%s, %s, %d)", u.ID, main.Connection, u.CreatedAt.Format("01-02"), len(u.Identities))
	}
	return "[" + s + " ]"
}
