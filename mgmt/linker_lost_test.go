package mgmt_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// TestLinkerLostResponses: the emulator commits the link and drops the
// connection of the first 1, 2 or 3 link requests (go-auth0 sends at most
// three, a second or more apart). The caller has the decision service's 4 s.
// One lost answer is confirmed as a link by the read-back; with more, the
// SDK's back-off may outlast the caller, who is then denied to try again. A
// failing read-back denies to try again too. Under FailOpen as under
// FailClosed, the login never goes on as the user that was linked away, and
// the work, which outlives the caller, leaves exactly one link.
func TestLinkerLostResponses(t *testing.T) {
	t.Parallel()
	for _, lost := range []int{1, 2, 3} {
		for _, readBackFails := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d lost, read-back fails %v", lost, readBackFails), func(t *testing.T) {
				t.Parallel()
				srv := newServer(t, []linking.User{dbJane, emailJane})
				srv.CommitThenDrop(mgmttest.RouteLink, lost)
				if readBackFails {
					srv.FailNext(mgmttest.RouteUser, 3, http.StatusServiceUnavailable)
				}
				l := &linking.Linker{Store: srv.Store(t), Policy: linking.Policy{OnStoreError: linking.FailOpen}}
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
				defer cancel()

				r, err := l.Link(ctx, loginOf(emailJane))
				linked := err == nil && r.Action == linking.ActionLink && r.PrimaryUserID == dbJane.ID
				unconfirmed := r.Action == linking.ActionDeny && r.Reason == linking.ReasonLinkUnconfirmed && errors.Is(err, linking.ErrUnavailable)
				switch {
				case readBackFails && !unconfirmed:
					t.Errorf("got %v/%s, %v; want deny/link_unconfirmed and ErrUnavailable", r.Action, r.Reason, err)
				case !readBackFails && lost == 1 && !linked:
					t.Errorf("got %v/%s into %q, %v; want link into %q", r.Action, r.Reason, r.PrimaryUserID, err, dbJane.ID)
				case !linked && !unconfirmed:
					t.Errorf("got %v/%s into %q, %v; want link into %q, or deny/link_unconfirmed",
						r.Action, r.Reason, r.PrimaryUserID, err, dbJane.ID)
				}

				// The same login again, patiently: it joins the work still in
				// flight, and shares its outcome, or finds the link in place.
				again, err := l.Link(context.Background(), loginOf(emailJane))
				if again.Reason == linking.ReasonLinkUnconfirmed {
					again, err = l.Link(context.Background(), loginOf(emailJane))
				}
				if err != nil || again.Action != linking.ActionLink || again.PrimaryUserID != dbJane.ID {
					t.Errorf("again: got %v/%s into %q, %v; want link into %q", again.Action, again.Reason, again.PrimaryUserID, err, dbJane.ID)
				}
				primary, err := srv.Tenant.User(context.Background(), dbJane.ID)
				if err != nil {
					t.Fatal(err)
				}
				if n := identityCopies(primary, emailJane.Identities[0]); n != 1 {
					t.Errorf("copies of the passwordless identity on the primary: got %d, want 1", n)
				}
			})
		}
	}
}
