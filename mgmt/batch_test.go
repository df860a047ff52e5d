package mgmt_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/idlink/linking"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// busyStore returns a Store over a tenant limited to 5 requests per second
// in bursts of 1, after one lookup that empties the bucket: the next lookups
// queue for the budget.
func busyStore(t *testing.T, users []linking.User, opts ...mgmttest.Option) (*mgmttest.Server, *mgmt.Store) {
	t.Helper()
	srv := newServer(t, users, append(opts, mgmttest.WithRateLimit(5, 1))...)
	store := srv.Store(t)
	if _, err := store.UsersByEmail(context.Background(), "nobody@example.com"); err != nil {
		t.Fatal(err)
	}
	return srv, store
}

// TestBatchedLookupsCoalesce: 25 logins look up at once while the budget is
// busy; two user searches serve them all (batches of 20), each lookup gets
// exactly the users with its email, case included, marked stale; and no
// request draws a 429.
func TestBatchedLookupsCoalesce(t *testing.T) {
	t.Parallel()
	var users []linking.User
	for i := range 25 {
		db, _ := pair(i)
		users = append(users, db)
	}
	upper := linking.User{ID: "google-oauth2|7", Email: "User3@Example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "google-oauth2", UserID: "7", Connection: "google-oauth2", IsSocial: true}}}
	users = append(users, upper)
	srv, store := busyStore(t, users)
	before := srv.Requests(mgmttest.RouteListUsers)

	type answer struct {
		users []linking.User
		stale bool
		err   error
	}
	answers := make([]answer, 25)
	var wg sync.WaitGroup
	for i := range 25 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			db, _ := pair(i)
			u, stale, err := store.UsersByEmailMaybeStale(ctx, db.Email)
			answers[i] = answer{u, stale, err}
		}()
	}
	wg.Wait()
	for i, a := range answers {
		db, _ := pair(i)
		if a.err != nil || !a.stale {
			t.Errorf("lookup %d: stale %v, %v; want a stale answer", i, a.stale, a.err)
			continue
		}
		if diff := cmp.Diff([]string{db.ID}, ids(a.users)); diff != "" {
			t.Errorf("lookup %d of %s (-want +got):\n%s", i, db.Email, diff)
		}
	}
	if got := srv.Requests(mgmttest.RouteListUsers) - before; got != 2 {
		t.Errorf("user searches: got %d, want 2 for 25 lookups in batches of 20", got)
	}
	if got := srv.RateLimited(); got != 0 {
		t.Errorf("answers 429: got %d, want 0", got)
	}
}

func ids(users []linking.User) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.ID
	}
	return out
}

// TestBatchedLookupsAreExact: a batched answer holds exactly what
// users-by-email would: the email as given, case included.
func TestBatchedLookupsAreExact(t *testing.T) {
	t.Parallel()
	social := linking.User{ID: "google-oauth2|1", Email: "Jane@Example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "google-oauth2", UserID: "1", Connection: "google-oauth2", IsSocial: true}}}
	users := []linking.User{dbJane, emailJane, social}
	for _, email := range []string{"jane@example.com", "Jane@Example.com", "JANE@EXAMPLE.COM", "john@example.com"} {
		direct, err := newServer(t, users).Store(t).UsersByEmail(context.Background(), email)
		if err != nil {
			t.Fatal(err)
		}
		_, store := busyStore(t, users)
		batched, stale, err := store.UsersByEmailMaybeStale(context.Background(), email)
		if err != nil || !stale {
			t.Fatalf("%s: stale %v, %v; want a batched answer", email, stale, err)
		}
		if diff := cmp.Diff(ids(direct), ids(batched), cmpopts.EquateEmpty(), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
			t.Errorf("%s: batched against users-by-email (-direct +batched):\n%s", email, diff)
		}
	}
}

// TestBatchedLookupLagsThenLinks: the database user was created a moment
// ago, and the search index does not hold it yet. A login under load is
// answered from the search: nothing to link, stale — so the Action does not
// remember it. The next login, when the tenant is idle, uses users-by-email,
// finds the user and links.
func TestBatchedLookupLagsThenLinks(t *testing.T) {
	t.Parallel()
	fresh := dbJane
	fresh.CreatedAt = time.Time{} // created now, by the tenant's clock
	srv, store := busyStore(t, []linking.User{fresh, emailJane}, mgmttest.WithSearchLag(time.Hour))
	l := &linking.Linker{Store: store}

	r, err := l.Link(context.Background(), loginOf(emailJane))
	if err != nil || r.Action != linking.ActionNone || r.Reason != linking.ReasonNoCandidate || !r.Stale {
		t.Fatalf("login under load: got %v/%s stale %v, %v; want none/no_candidate, stale", r.Action, r.Reason, r.Stale, err)
	}
	time.Sleep(1200 * time.Millisecond) // the bucket refills: the tenant is idle
	r, err = l.Link(context.Background(), loginOf(emailJane))
	if err != nil || r.Action != linking.ActionLink || r.PrimaryUserID != fresh.ID || r.Stale {
		t.Fatalf("next login: got %v/%s into %q stale %v, %v; want a fresh link into %s", r.Action, r.Reason, r.PrimaryUserID, r.Stale, err, fresh.ID)
	}
	if got := srv.RateLimited(); got != 0 {
		t.Errorf("answers 429: got %d, want 0", got)
	}
}

// TestLookupBatchOne: LookupBatch 1 never batches: every lookup is a fresh
// users-by-email.
func TestLookupBatchOne(t *testing.T) {
	t.Parallel()
	srv, store := busyStore(t, []linking.User{dbJane})
	store.LookupBatch = 1
	users, stale, err := store.UsersByEmailMaybeStale(context.Background(), dbJane.Email)
	if err != nil || stale || len(users) != 1 {
		t.Fatalf("got %v stale %v, %v; want dbJane, fresh", ids(users), stale, err)
	}
	if got := srv.Requests(mgmttest.RouteListUsers); got != 0 {
		t.Errorf("user searches: got %d, want none", got)
	}
}
