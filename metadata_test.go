package linking_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
)

func TestFillMerge(t *testing.T) {
	primary := map[string]any{"theme": "dark", "prefs": map[string]any{"lang": "en"}, "tags": []any{"a"}}
	secondary := map[string]any{"theme": "light", "prefs": map[string]any{"lang": "fr", "tz": "CET"}, "nick": "jj", "tags": []any{"b"}}
	got := linking.FillMerge(primary, secondary)
	want := map[string]any{"theme": "dark", "prefs": map[string]any{"lang": "en", "tz": "CET"}, "nick": "jj", "tags": []any{"a"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FillMerge (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"theme": "dark", "prefs": map[string]any{"lang": "en"}, "tags": []any{"a"}}, primary); diff != "" {
		t.Errorf("FillMerge changed its argument (-want +got):\n%s", diff)
	}
}

// TestLinkerSideEffects runs the side-effect suite on the in-memory tenant;
// mgmt runs it through go-auth0 and the emulator.
func TestLinkerSideEffects(t *testing.T) {
	linkingtest.TestSideEffects(t, func(t *testing.T, tenant *linkingtest.Tenant) (linking.UserStore, func() int) {
		return tenant, func() int { return tenant.Calls()[linkingtest.MethodUpdateMetadata] }
	})
}

// TestRule8_AppMetadataNeverCarriedByDefault is rule 8 of docs/security.md: the
// secondary's app_metadata (roles, plans) never flows into the primary unless
// the caller lists the keys.
func TestRule8_AppMetadataNeverCarriedByDefault(t *testing.T) {
	secondary := otp
	secondary.AppMetadata = map[string]any{"roles": []any{"admin"}}
	for _, policy := range []linking.MetadataPolicy{{}, {MergeUserMetadata: true}, {AppMetadataKeys: []string{"plan"}}} {
		tenant := linkingtest.NewTenant(existing, secondary)
		r, err := (&linking.Linker{Store: tenant, Metadata: policy}).Link(context.Background(), loginAs(secondary))
		if err != nil || r.PrimaryUserID != existing.ID {
			t.Fatalf("policy %+v: Link: %v into %q, %v", policy, r.Action, r.PrimaryUserID, err)
		}
		after := tenant.Users()[0]
		if after.AppMetadata != nil || len(r.MetadataKeys) != 0 || tenant.Calls()[linkingtest.MethodUpdateMetadata] != 0 {
			t.Errorf("policy %+v: primary app_metadata %v, keys %v, %d updates; want nothing moved",
				policy, after.AppMetadata, r.MetadataKeys, tenant.Calls()[linkingtest.MethodUpdateMetadata])
		}
	}
}

// TestLinkerRule4_TrojanIdentityWritesNothing is rule 4 of docs/security.md through
// the Linker: a candidate holding an untrusted identity, or a linked identity
// with another email, is refused and nothing is written.
func TestLinkerRule4_TrojanIdentityWritesNothing(t *testing.T) {
	for name, extra := range map[string]linking.Identity{
		"untrusted identity": {Provider: "samlp", UserID: "evil", Connection: "evil-saml"},
		"identity with another email": {Provider: "email", UserID: "mallory", Connection: "email",
			ProfileData: map[string]any{"email": "mallory@example.net"}},
	} {
		t.Run(name, func(t *testing.T) {
			trojan := existing
			trojan.Identities = append([]linking.Identity{}, existing.Identities[0], extra)
			tenant := linkingtest.NewTenant(trojan, otp)
			tenant.ResetCalls()
			before := tenant.Users()
			r, err := (&linking.Linker{Store: tenant}).Link(context.Background(), loginAs(otp))
			if err != nil || r.Action != linking.ActionNone || r.PrimaryUserID != "" {
				t.Errorf("got %v primary %q, %v; want none", r.Action, r.PrimaryUserID, err)
			}
			wantCalls(t, tenant, linkingtest.Calls{linkingtest.MethodUsersByEmail: 1})
			if diff := cmp.Diff(before, tenant.Users()); diff != "" {
				t.Errorf("tenant changed (-before +after):\n%s", diff)
			}
		})
	}
}

func TestLinkerRevokeSessions(t *testing.T) {
	t.Run("after a confirmed link", func(t *testing.T) {
		tenant := seedTenant(t)
		tenant.OpenSession(existing.ID)
		r, err := (&linking.Linker{Store: tenant, RevokeSessions: true}).Link(context.Background(), loginAs(otp))
		if err != nil || !r.SessionsRevoked || r.SideEffectErr != nil {
			t.Fatalf("got revoked=%v, side effect error %v, %v", r.SessionsRevoked, r.SideEffectErr, err)
		}
		if n := tenant.Sessions(existing.ID); n != 0 {
			t.Errorf("primary has %d sessions, want 0", n)
		}
		wantCalls(t, tenant, linkingtest.Calls{linkingtest.MethodUsersByEmail: 1, linkingtest.MethodLink: 1, linkingtest.MethodRevokeSessions: 1})
	})
	t.Run("after a link confirmed by read-back", func(t *testing.T) {
		tenant := seedTenant(t)
		tenant.OpenSession(existing.ID)
		tenant.CommitThenFail(1, linking.ErrUnavailable)
		r, err := (&linking.Linker{Store: tenant, RevokeSessions: true}).Link(context.Background(), loginAs(otp))
		if err != nil || !r.SessionsRevoked || tenant.Sessions(existing.ID) != 0 {
			t.Errorf("got revoked=%v, %d sessions, %v; want revoked", r.SessionsRevoked, tenant.Sessions(existing.ID), err)
		}
	})
	t.Run("never after a refused link", func(t *testing.T) {
		tenant := linkingtest.NewTenant(existing, dbUser("second", "jane@example.com", true), otp)
		tenant.OpenSession(existing.ID)
		r, _ := (&linking.Linker{Store: tenant, RevokeSessions: true}).Link(context.Background(), loginAs(otp))
		if r.Action != linking.ActionDeny || r.SessionsRevoked || tenant.Sessions(existing.ID) != 1 {
			t.Errorf("ambiguous: got %v revoked=%v, %d sessions; want deny and the session kept", r.Action, r.SessionsRevoked, tenant.Sessions(existing.ID))
		}
		if n := tenant.Calls()[linkingtest.MethodRevokeSessions]; n != 0 {
			t.Errorf("got %d revocations, want 0", n)
		}
	})
	t.Run("never after a failed link", func(t *testing.T) {
		tenant := seedTenant(t)
		tenant.OpenSession(existing.ID)
		tenant.FailNext(linkingtest.MethodLink, 1, linking.ErrUnavailable)
		r, err := (&linking.Linker{Store: tenant, RevokeSessions: true}).Link(context.Background(), loginAs(otp))
		if err == nil || r.SessionsRevoked || tenant.Sessions(existing.ID) != 1 || tenant.Calls()[linkingtest.MethodRevokeSessions] != 0 {
			t.Errorf("failed link: err %v, revoked=%v, %d sessions; want an error and the session kept", err, r.SessionsRevoked, tenant.Sessions(existing.ID))
		}
	})
	t.Run("a failure to revoke is reported and keeps the link", func(t *testing.T) {
		tenant := seedTenant(t)
		tenant.OpenSession(existing.ID)
		boom := errors.New("revocation endpoint down")
		tenant.FailNext(linkingtest.MethodRevokeSessions, 1, boom)
		var events []linking.Event
		l := &linking.Linker{Store: tenant, RevokeSessions: true, Observe: func(e linking.Event) { events = append(events, e) }}
		r, err := l.Link(context.Background(), loginAs(otp))
		if err != nil || r.PrimaryUserID != existing.ID || r.SessionsRevoked || !errors.Is(r.SideEffectErr, boom) {
			t.Fatalf("got primary %q revoked=%v side effect %v, %v; want the link kept and the failure reported",
				r.PrimaryUserID, r.SessionsRevoked, r.SideEffectErr, err)
		}
		wantSeedLinked(t, tenant)
		var failed []linking.Event
		for _, e := range events {
			if e.Kind == linking.EventSideEffectFailed {
				failed = append(failed, e)
			}
		}
		if len(failed) != 1 || !errors.Is(failed[0].Err, boom) {
			t.Errorf("side_effect_failed events %+v, want one carrying the error", failed)
		}
	})
}

// capabilityless hides the optional capabilities of a store.
type capabilityless struct{ linking.UserStore }

func TestLinkerNeedsCapabilities(t *testing.T) {
	open := linking.Policy{OnStoreError: linking.FailOpen} // a misconfiguration denies all the same
	for name, l := range map[string]*linking.Linker{
		"metadata": {Store: capabilityless{seedTenant(t)}, Policy: open, Metadata: linking.MetadataPolicy{MergeUserMetadata: true}},
		"sessions": {Store: capabilityless{seedTenant(t)}, Policy: open, RevokeSessions: true},
		"search":   {Store: capabilityless{seedTenant(t)}, Policy: open, SearchCaseVariants: true},
	} {
		r, err := l.Link(context.Background(), loginAs(otp))
		if err == nil || r.Action != linking.ActionDeny || r.Reason != linking.ReasonMisconfigured {
			t.Errorf("%s: a store without the capability: got %v/%s, %v; want deny/misconfigured and an error", name, r.Action, r.Reason, err)
		}
	}
}

type recordingNotifier struct{ got []string }

func (n *recordingNotifier) NotifyLinked(_ context.Context, primary linking.User, linked linking.Identity) error {
	n.got = append(n.got, fmt.Sprintf("%s <- %s", primary.ID, linked.UserIDOf()))
	return nil
}

func TestLinkerNotifier(t *testing.T) {
	tenant := seedTenant(t)
	n := &recordingNotifier{}
	l := &linking.Linker{Store: tenant, Notifier: n}
	for range 2 { // the second call finds the link in place: no new notice
		if _, err := l.Link(context.Background(), loginAs(otp)); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"auth0|63d17c6a <- email|6f1c2b3a"}, n.got); diff != "" {
		t.Errorf("notices (-want +got):\n%s", diff)
	}
}

// TestLinkerAuditEvents: one decided event per Link call with the documented
// fields, one event per side effect, and the same outcome without observer.
func TestLinkerAuditEvents(t *testing.T) {
	second := dbUser("second", "jane@example.com", true)
	tests := []struct {
		name  string
		users []linking.User
		kinds []linking.EventKind
	}{
		{"linked", []linking.User{existing, otp}, []linking.EventKind{
			linking.EventLinked, linking.EventMetadataMerged, linking.EventSessionsRevoked, linking.EventDecided}},
		{"refused", []linking.User{existing, second, otp}, []linking.EventKind{linking.EventDecided}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := func(observe func(linking.Event)) linking.Result {
				users := append([]linking.User{}, tt.users...)
				users[len(users)-1].UserMetadata = map[string]any{"nick": "jj"}
				tenant := linkingtest.NewTenant(users...)
				l := &linking.Linker{Store: tenant, Observe: observe, RevokeSessions: true,
					Metadata: linking.MetadataPolicy{MergeUserMetadata: true}}
				r, _ := l.Link(context.Background(), loginAs(users[len(users)-1]))
				return r
			}
			var events []linking.Event
			with := run(func(e linking.Event) { events = append(events, e) })
			without := run(nil)
			if diff := cmp.Diff(without, with); diff != "" {
				t.Errorf("result depends on the observer (-without +with):\n%s", diff)
			}
			var kinds []linking.EventKind
			for _, e := range events {
				kinds = append(kinds, e.Kind)
			}
			if diff := cmp.Diff(tt.kinds, kinds); diff != "" {
				t.Errorf("event kinds (-want +got):\n%s", diff)
			}
			decided := events[len(events)-1]
			want := linking.Event{
				Kind: linking.EventDecided, LoginUserID: otp.ID, Identity: otp.Identities[0],
				PrimaryUserID: with.PrimaryUserID, Action: with.Action, Reason: with.Reason, Candidates: with.Decision.Candidates,
			}
			if diff := cmp.Diff(want, decided); diff != "" {
				t.Errorf("decided event (-want +got):\n%s", diff)
			}
		})
	}
}

// BenchmarkLinkerSideEffects reports the store calls of a linking login with
// each side effect on.
func BenchmarkLinkerSideEffects(b *testing.B) {
	ctx := context.Background()
	secondary := otp
	secondary.UserMetadata = map[string]any{"nick": "jj"}
	merge := linking.MetadataPolicy{MergeUserMetadata: true}
	options := []struct {
		name     string
		metadata linking.MetadataPolicy
		revoke   bool
		login    linking.User
	}{
		{"none", linking.MetadataPolicy{}, false, secondary},
		{"merge-changes", merge, false, secondary},
		{"merge-no-change", merge, false, otp},
		{"revoke-sessions", linking.MetadataPolicy{}, true, secondary},
	}
	for _, o := range options {
		b.Run(o.name, func(b *testing.B) {
			calls := 0
			for b.Loop() {
				b.StopTimer()
				tenant := linkingtest.NewTenant(existing, o.login)
				l := &linking.Linker{Store: tenant, Metadata: o.metadata, RevokeSessions: o.revoke}
				b.StartTimer()
				if _, err := l.Link(ctx, loginAs(o.login)); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				for _, n := range tenant.Calls() {
					calls += n
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(calls)/float64(b.N), "store-calls/login")
		})
	}
}
