package mgmt_test

import (
	"context"
	"testing"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// BenchmarkLinkerSideEffectsThroughSDK measures the Management API calls a
// linking login costs with each side effect of the Linker on, over
// mgmt.Store, the go-auth0 SDK and the emulator, as the emulator counts
// them. Every login is the link path of BenchmarkLinkerThroughSDK (one
// lookup, one link), then:
//
//   - none: no side effect (2 calls);
//   - metadata-change: Metadata.MergeUserMetadata, and the passwordless
//     user holds a key the primary lacks: one update (3 calls);
//   - metadata-no-change: the same, but the primary holds the key with the
//     same value: no update (2 calls);
//   - revoke-sessions: RevokeSessions, which revokes the refresh tokens and
//     then the sessions (4 calls).
//
// It reports api-calls/login.
func BenchmarkLinkerSideEffectsThroughSDK(b *testing.B) {
	ctx := context.Background()
	locale := map[string]any{"locale": "fr"}
	cases := []struct {
		name string
		// linker sets the side effect on l.
		linker func(l *linking.Linker)
		// primaryMetadata is the database user's user_metadata; the
		// passwordless user's is locale.
		primaryMetadata map[string]any
		wantCalls       float64
		// check reports what the result lacks.
		check func(r linking.Result) string
	}{
		{"none", func(*linking.Linker) {}, nil, 2, func(r linking.Result) string {
			if len(r.MetadataKeys) > 0 || r.SessionsRevoked {
				return "side effects"
			}
			return ""
		}},
		{"metadata-change", mergeMetadata, nil, 3, func(r linking.Result) string {
			if len(r.MetadataKeys) != 1 {
				return "one metadata key written"
			}
			return ""
		}},
		{"metadata-no-change", mergeMetadata, locale, 2, func(r linking.Result) string {
			if len(r.MetadataKeys) != 0 {
				return "no metadata key written"
			}
			return ""
		}},
		{"revoke-sessions", func(l *linking.Linker) { l.RevokeSessions = true }, nil, 4, func(r linking.Result) string {
			if !r.SessionsRevoked {
				return "sessions revoked"
			}
			return ""
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			tenant := linkingtest.NewTenant()
			logins := make([]linking.Login, b.N)
			for i := range b.N {
				db, pwless := pair(i)
				db.UserMetadata = c.primaryMetadata
				pwless.UserMetadata = locale
				for _, u := range []linking.User{db, pwless} {
					if err := tenant.AddUser(ctx, u); err != nil {
						b.Fatal(err)
					}
				}
				logins[i] = loginOf(pwless)
			}
			srv := mgmttest.NewServer(tenant)
			defer srv.Close()
			s, err := mgmt.New(ctx, srv.Domain(), srv.ClientID(), srv.ClientSecret(), srv.ClientOptions()...)
			if err != nil {
				b.Fatal(err)
			}
			l := &linking.Linker{Store: s}
			c.linker(l)
			b.ReportAllocs()
			b.ResetTimer()

			for i := range b.N {
				r, err := l.Link(ctx, logins[i])
				if err != nil || r.SideEffectErr != nil {
					b.Fatalf("login %d: %v, side effects: %v", i, err, r.SideEffectErr)
				}
				if r.Action != linking.ActionLink {
					b.Fatalf("login %d: got %v (%s), want link", i, r.Action, r.Reason)
				}
				if want := c.check(r); want != "" {
					b.Fatalf("login %d: got %+v, want %s", i, r, want)
				}
			}

			b.StopTimer()
			calls := float64(srv.APIRequests()) / float64(b.N)
			if calls != c.wantCalls {
				b.Errorf("api-calls/login: got %v, want %v", calls, c.wantCalls)
			}
			b.ReportMetric(calls, "api-calls/login")
		})
	}
}

func mergeMetadata(l *linking.Linker) { l.Metadata.MergeUserMetadata = true }
