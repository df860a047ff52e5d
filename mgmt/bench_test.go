package mgmt_test

import (
	"context"
	"testing"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// BenchmarkLinkerThroughSDK measures the Management API calls a login costs
// when the Linker runs over mgmt.Store, the go-auth0 SDK and the emulator, as
// the emulator counts them:
//
//   - link: the first passwordless login of a person with a database user
//     (one lookup, one link);
//   - nothing-to-link: a first passwordless login with no other user (one
//     lookup);
//   - already-linked: a login that arrives as the primary, holding two
//     identities (no call);
//   - seed-action: the link path as the seed's Action does it, with a new
//     Management client per login (a token request every time);
//   - select/link-into-existing, select/absorb-one, select/absorb-two: with
//     Policy.Select preferring the database connection, a passwordless login
//     linked into the database user (one lookup, one link), and a database
//     login absorbing one or two passwordless users (one lookup, one link
//     each).
//
// It reports api-calls/login, token-requests/login, and token-requests for
// the whole run: one Store serves every login, so one token. The time per
// login includes the in-memory tenant's linear scan of its users by email
// (the tenant holds every login's users) and loopback HTTP: it is not a
// measure of Auth0's latency.
func BenchmarkLinkerThroughSDK(b *testing.B) {
	preferDB := linking.Policy{
		TrustedProviders: []string{"auth0", "email", "google-oauth2"},
		Select:           linking.Selector{linking.PreferConnection("Username-Password-Authentication")},
	}
	ctx := context.Background()
	paths := []struct {
		name string
		// users returns the tenant's users and the login of iteration i.
		users     func(i int) ([]linking.User, linking.Login)
		perLogin  bool // a new Store per login
		action    linking.Action
		wantCalls float64
		policy    linking.Policy
	}{
		{"link", func(i int) ([]linking.User, linking.Login) {
			db, pwless := pair(i)
			return []linking.User{db, pwless}, loginOf(pwless)
		}, false, linking.ActionLink, 2, linking.Policy{}},
		{"nothing-to-link", func(i int) ([]linking.User, linking.Login) {
			_, pwless := pair(i)
			return []linking.User{pwless}, loginOf(pwless)
		}, false, linking.ActionNone, 1, linking.Policy{}},
		{"already-linked", func(i int) ([]linking.User, linking.Login) {
			db, pwless := pair(i)
			db.Identities = append(db.Identities, pwless.Identities[0])
			return []linking.User{db}, linking.Login{User: db, Identity: pwless.Identities[0]}
		}, false, linking.ActionNone, 0, linking.Policy{}},
		{"seed-action", func(i int) ([]linking.User, linking.Login) {
			db, pwless := pair(i)
			return []linking.User{db, pwless}, loginOf(pwless)
		}, true, linking.ActionLink, 2, linking.Policy{}},
		{"select/link-into-existing", func(i int) ([]linking.User, linking.Login) {
			db, pwless := pair(i)
			return []linking.User{db, pwless}, loginOf(pwless)
		}, false, linking.ActionLink, 2, preferDB},
		{"select/absorb-one", func(i int) ([]linking.User, linking.Login) {
			db, pwless := pair(i)
			return []linking.User{db, pwless}, loginOf(db)
		}, false, linking.ActionAbsorb, 2, preferDB},
		{"select/absorb-two", func(i int) ([]linking.User, linking.Login) {
			db, pwless := pair(i)
			google := linking.User{ID: "google-oauth2|g" + db.ID[len("auth0|"):], Email: db.Email, EmailVerified: true,
				Identities: []linking.Identity{{Provider: "google-oauth2", UserID: "g" + db.ID[len("auth0|"):], Connection: "google-oauth2", IsSocial: true}}}
			return []linking.User{db, pwless, google}, loginOf(db)
		}, false, linking.ActionAbsorb, 3, preferDB},
	}
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			tenant := linkingtest.NewTenant()
			logins := make([]linking.Login, b.N)
			for i := range b.N {
				users, login := p.users(i)
				for _, u := range users {
					if err := tenant.AddUser(ctx, u); err != nil {
						b.Fatal(err)
					}
				}
				logins[i] = login
			}
			srv := mgmttest.NewServer(tenant)
			defer srv.Close()
			newLinker := func() *linking.Linker {
				s, err := mgmt.New(ctx, srv.Domain(), srv.ClientID(), srv.ClientSecret(), srv.ClientOptions()...)
				if err != nil {
					b.Fatal(err)
				}
				return &linking.Linker{Store: s, Policy: p.policy}
			}
			shared := newLinker()
			b.ReportAllocs()
			b.ResetTimer()

			for i := range b.N {
				l := shared
				if p.perLogin {
					l = newLinker()
				}
				r, err := l.Link(ctx, logins[i])
				if err != nil {
					b.Fatal(err)
				}
				if r.Action != p.action {
					b.Fatalf("login %d: got %v (%s), want %v", i, r.Action, r.Reason, p.action)
				}
			}

			b.StopTimer()
			calls := float64(srv.APIRequests()) / float64(b.N)
			if calls != p.wantCalls {
				b.Errorf("api-calls/login: got %v, want %v", calls, p.wantCalls)
			}
			b.ReportMetric(calls, "api-calls/login")
			b.ReportMetric(float64(srv.TokenRequests())/float64(b.N), "token-requests/login")
			b.ReportMetric(float64(srv.TokenRequests()), "token-requests")
		})
	}
}
