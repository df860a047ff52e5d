package linkingtest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/idlink/linking"
)

// TestSideEffects checks what a linking.Linker writes besides the link,
// through a store over tenant: the metadata each MetadataPolicy moves into
// the primary (exactly, and in one update only when something changes), that
// app_metadata outside the allow-list never arrives, that an empty secondary
// never blanks the primary, and that RevokeSessions ends the primary's
// sessions after a link and only then. Call it for every store that
// implements linking.MetadataWriter and linking.SessionRevoker:
//
//	linkingtest.TestSideEffects(t, func(t *testing.T, tenant *linkingtest.Tenant) (linking.UserStore, func() int) {
//		return tenant, func() int { return tenant.Calls()[linkingtest.MethodUpdateMetadata] }
//	})
//
// newStore returns a store over tenant and a function that counts the
// metadata updates the store has sent to it so far.
func TestSideEffects(t *testing.T, newStore func(t *testing.T, tenant *Tenant) (store linking.UserStore, updates func() int)) {
	t.Run("MetadataPolicies", func(t *testing.T) { testMetadataPolicies(t, newStore) })
	t.Run("RevokeSessions", func(t *testing.T) { testRevokeAfterLink(t, newStore) })
}

// The side-effect suite's users: Jane's database user and the passwordless
// user of her first passwordless login.
var (
	sidePrimary = linking.User{
		ID: "auth0|63d17c6a", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "63d17c6a", Connection: "Username-Password-Authentication"}},
		CreatedAt:  time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC),
	}
	sideSecondary = linking.User{
		ID: "email|6f1c2b3a", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "email", UserID: "6f1c2b3a", Connection: "email"}},
		CreatedAt:  time.Date(2025, 11, 25, 10, 0, 0, 0, time.UTC),
	}
)

func loginOf(u linking.User) linking.Login { return linking.Login{User: u, Identity: u.Identities[0]} }

func testMetadataPolicies(t *testing.T, newStore func(*testing.T, *Tenant) (linking.UserStore, func() int)) {
	primary := linking.Metadata{
		UserMetadata: map[string]any{"theme": "dark", "prefs": map[string]any{"lang": "en"}},
		AppMetadata:  map[string]any{"plan": "free"},
	}
	secondary := linking.Metadata{
		UserMetadata: map[string]any{"theme": "light", "prefs": map[string]any{"tz": "CET"}, "nick": "jj"},
		AppMetadata:  map[string]any{"plan": "pro", "roles": []any{"admin"}, "referrer": "ad-campaign"},
	}
	dropTheme := func(p, s map[string]any) map[string]any {
		return map[string]any{"nick": s["nick"], "theme": nil} // tries to drop and to delete: neither happens
	}
	tests := []struct {
		name      string
		policy    linking.MetadataPolicy
		primary   linking.Metadata
		secondary linking.Metadata
		want      linking.Metadata
		keys      []string
	}{{
		name: "default moves nothing", primary: primary, secondary: secondary, want: primary,
	}, {
		name:    "user_metadata fills gaps, nested objects key by key",
		policy:  linking.MetadataPolicy{MergeUserMetadata: true},
		primary: primary, secondary: secondary,
		want: linking.Metadata{
			UserMetadata: map[string]any{"theme": "dark", "prefs": map[string]any{"lang": "en", "tz": "CET"}, "nick": "jj"},
			AppMetadata:  primary.AppMetadata,
		},
		keys: []string{"user_metadata.nick", "user_metadata.prefs"},
	}, {
		name:    "caller's merge function never deletes",
		policy:  linking.MetadataPolicy{MergeUserMetadata: true, MergeUserMetadataFunc: dropTheme},
		primary: primary, secondary: secondary,
		want: linking.Metadata{
			UserMetadata: map[string]any{"theme": "dark", "prefs": map[string]any{"lang": "en"}, "nick": "jj"},
			AppMetadata:  primary.AppMetadata,
		},
		keys: []string{"user_metadata.nick"},
	}, {
		name:    "app_metadata: only listed keys, primary wins",
		policy:  linking.MetadataPolicy{AppMetadataKeys: []string{"referrer", "plan"}},
		primary: primary, secondary: secondary,
		want: linking.Metadata{
			UserMetadata: primary.UserMetadata,
			AppMetadata:  map[string]any{"plan": "free", "referrer": "ad-campaign"},
		},
		keys: []string{"app_metadata.referrer"},
	}, {
		name:    "app_metadata never moves by default, even when user_metadata does",
		policy:  linking.MetadataPolicy{MergeUserMetadata: true},
		primary: linking.Metadata{}, secondary: linking.Metadata{AppMetadata: map[string]any{"roles": []any{"admin"}}},
		want: linking.Metadata{},
	}, {
		name:    "empty secondary never blanks the primary",
		policy:  linking.MetadataPolicy{MergeUserMetadata: true, AppMetadataKeys: []string{"plan"}},
		primary: primary, secondary: linking.Metadata{UserMetadata: map[string]any{}},
		want: primary,
	}, {
		name:    "nothing changes: no update",
		policy:  linking.MetadataPolicy{MergeUserMetadata: true},
		primary: primary, secondary: linking.Metadata{UserMetadata: map[string]any{"theme": "dark"}},
		want: primary,
	}, {
		name:    "primary without metadata",
		policy:  linking.MetadataPolicy{MergeUserMetadata: true},
		primary: linking.Metadata{}, secondary: secondary,
		want: linking.Metadata{UserMetadata: secondary.UserMetadata},
		keys: []string{"user_metadata.nick", "user_metadata.prefs", "user_metadata.theme"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, s := copyUser(sidePrimary), copyUser(sideSecondary)
			p.UserMetadata, p.AppMetadata = copyMap(tt.primary.UserMetadata), copyMap(tt.primary.AppMetadata)
			s.UserMetadata, s.AppMetadata = copyMap(tt.secondary.UserMetadata), copyMap(tt.secondary.AppMetadata)
			tenant := NewTenant(p, s)
			store, updates := newStore(t, tenant)

			r, err := (&linking.Linker{Store: store, Metadata: tt.policy}).Link(context.Background(), loginOf(s))
			if err != nil || r.Action != linking.ActionLink || r.SideEffectErr != nil {
				t.Fatalf("Link: %v (%s), %v, side effects: %v", r.Action, r.Reason, err, r.SideEffectErr)
			}
			after := tenant.Users()
			if len(after) != 1 || after[0].ID != p.ID {
				t.Fatalf("tenant after the link: %+v, want %s alone", after, p.ID)
			}
			got := linking.Metadata{UserMetadata: after[0].UserMetadata, AppMetadata: after[0].AppMetadata}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("primary metadata (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.keys, r.MetadataKeys); diff != "" {
				t.Errorf("keys written (-want +got):\n%s", diff)
			}
			wantUpdates := 0
			if len(tt.keys) > 0 {
				wantUpdates = 1
			}
			if n := updates(); n != wantUpdates {
				t.Errorf("metadata updates: got %d, want %d", n, wantUpdates)
			}
			if len(r.Linked) != 1 || r.Linked[0].UserID != sideSecondary.ID {
				t.Fatalf("linked: got %+v, want %s alone", r.Linked, sideSecondary.ID)
			}
			if diff := cmp.Diff(tt.secondary, r.Linked[0].Metadata, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("secondary snapshot (-want +got):\n%s", diff)
			}
		})
	}
}

func testRevokeAfterLink(t *testing.T, newStore func(*testing.T, *Tenant) (linking.UserStore, func() int)) {
	t.Run("after a link", func(t *testing.T) {
		tenant := NewTenant(sidePrimary, sideSecondary)
		tenant.OpenSession(sidePrimary.ID)
		store, _ := newStore(t, tenant)
		r, err := (&linking.Linker{Store: store, RevokeSessions: true}).Link(context.Background(), loginOf(sideSecondary))
		if err != nil || !r.SessionsRevoked || r.SideEffectErr != nil {
			t.Fatalf("Link: revoked=%v, side effects %v, %v", r.SessionsRevoked, r.SideEffectErr, err)
		}
		if n := tenant.Sessions(sidePrimary.ID); n != 0 {
			t.Errorf("primary sessions: got %d, want 0", n)
		}
	})
	t.Run("never after a refused link", func(t *testing.T) {
		other := copyUser(sidePrimary)
		other.ID, other.Identities[0].UserID = "auth0|0ther", "0ther"
		tenant := NewTenant(sidePrimary, other, sideSecondary)
		tenant.OpenSession(sidePrimary.ID)
		store, _ := newStore(t, tenant)
		r, _ := (&linking.Linker{Store: store, RevokeSessions: true}).Link(context.Background(), loginOf(sideSecondary))
		if r.Action != linking.ActionDeny || r.SessionsRevoked || tenant.Sessions(sidePrimary.ID) != 1 {
			t.Errorf("ambiguous: got %v revoked=%v with %d sessions; want deny and the session kept",
				r.Action, r.SessionsRevoked, tenant.Sessions(sidePrimary.ID))
		}
	})
}
