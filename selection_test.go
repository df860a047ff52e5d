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

// TestLinkerConvergence: whatever the order of one person's logins, the
// person ends as the one user the Selector names (see
// linkingtest.TestConvergence), on the in-memory tenant.
func TestLinkerConvergence(t *testing.T) {
	linkingtest.TestConvergence(t, 300, func(t *testing.T, tenant *linkingtest.Tenant) linking.UserStore { return tenant })
}

// TestLinkerAbsorb: the Selector chooses the login's own user (the oldest):
// the two other users are linked into it, with one lookup and a link each,
// and the login goes on as itself with their metadata snapshots.
func TestLinkerAbsorb(t *testing.T) {
	old := dbUser("old", "jane@example.com", true)
	old.CreatedAt = created.AddDate(-1, 0, 0)
	mid := otpUser("mid", "jane@example.com")
	mid.UserMetadata = map[string]any{"nick": "jj"}
	young := dbUser("young", "jane@example.com", true)
	young.CreatedAt = created.AddDate(0, 1, 0)
	tenant := linkingtest.NewTenant(old, mid, young)
	tenant.ResetCalls()
	l := &linking.Linker{Store: tenant, Policy: linking.Policy{Select: linking.RecommendedSelector},
		Metadata: linking.MetadataPolicy{MergeUserMetadata: true}}

	r, err := l.Link(context.Background(), loginAs(old))
	if err != nil || r.Action != linking.ActionAbsorb || r.Reason != linking.ReasonAbsorbed || r.PrimaryUserID != "" {
		t.Fatalf("got %v/%s primary %q, %v; want absorb/absorbed and no setPrimaryUser", r.Action, r.Reason, r.PrimaryUserID, err)
	}
	if r.Decision.ChosenBy != "oldest" {
		t.Errorf("chosen by %q, want oldest", r.Decision.ChosenBy)
	}
	var linked []string
	for _, s := range r.Linked {
		linked = append(linked, s.UserID)
	}
	if diff := cmp.Diff([]string{young.ID, mid.ID}, linked); diff != "" { // by user id
		t.Errorf("linked (-want +got):\n%s", diff)
	}
	users := tenant.Users()
	if len(users) != 1 || users[0].ID != old.ID || len(users[0].Identities) != 3 {
		t.Fatalf("tenant: %+v, want %s alone with 3 identities", users, old.ID)
	}
	if users[0].UserMetadata["nick"] != "jj" {
		t.Errorf("user_metadata of %s: %v, want the absorbed user's nick", old.ID, users[0].UserMetadata)
	}
	wantCalls(t, tenant, linkingtest.Calls{linkingtest.MethodUsersByEmail: 1, linkingtest.MethodLink: 2, linkingtest.MethodUpdateMetadata: 1})
}

// TestLinkerAbsorbFails: the second link of an absorb fails. The login's
// user still exists, so the answer is the policy's for a failing store, and
// the user linked before the failure is in the result, metadata and all.
func TestLinkerAbsorbFails(t *testing.T) {
	old := dbUser("old", "jane@example.com", true)
	old.CreatedAt = created.AddDate(-1, 0, 0)
	mid := otpUser("mid", "jane@example.com")
	young := dbUser("young", "jane@example.com", true)
	young.CreatedAt = created.AddDate(0, 1, 0)
	young.UserMetadata = map[string]any{"nick": "jj"}
	for _, mode := range []linking.FailureMode{linking.FailClosed, linking.FailOpen} {
		tenant := linkingtest.NewTenant(old, mid, young)
		tenant.FailNext(linkingtest.MethodLink, 1, nil) // the first link (auth0|young) goes through
		tenant.FailNext(linkingtest.MethodLink, 1, fmt.Errorf("503: %w", linking.ErrUnavailable))
		l := &linking.Linker{Store: tenant, Policy: linking.Policy{Select: linking.RecommendedSelector, OnStoreError: mode}}

		r, err := l.Link(context.Background(), loginAs(old))
		want := map[linking.FailureMode]linking.Action{linking.FailClosed: linking.ActionDeny, linking.FailOpen: linking.ActionNone}[mode]
		if !errors.Is(err, linking.ErrUnavailable) || r.Action != want || r.Reason != linking.ReasonStoreError {
			t.Errorf("mode %d: got %v/%s, %v; want %v/store_error", mode, r.Action, r.Reason, err, want)
		}
		if len(r.Linked) != 1 || r.Linked[0].UserID != young.ID || r.Linked[0].Metadata.UserMetadata["nick"] != "jj" {
			t.Errorf("mode %d: linked %+v, want %s with its metadata", mode, r.Linked, young.ID)
		}
	}
}
