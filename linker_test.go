package linking_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
)

// seedTenant is the seed scenario's tenant right after the first passwordless
// login: the database user and the new passwordless user.
func seedTenant(t *testing.T) *linkingtest.Tenant {
	t.Helper()
	tenant := linkingtest.NewTenant(existing, otp)
	tenant.ResetCalls()
	return tenant
}

func wantCalls(t *testing.T, tenant *linkingtest.Tenant, want linkingtest.Calls) {
	t.Helper()
	got := tenant.Calls()
	for m, n := range got { // drop zero entries so that the diff reads well
		if n == 0 {
			delete(got, m)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("store calls (-want +got):\n%s", diff)
	}
}

// wantSeedLinked checks the tenant holds one user for Jane: the database user
// with both identities, its metadata untouched.
func wantSeedLinked(t *testing.T, tenant *linkingtest.Tenant) {
	t.Helper()
	users := tenant.Users()
	if len(users) != 1 {
		t.Fatalf("tenant has %d users, want 1: %+v", len(users), users)
	}
	got := users[0]
	if got.ID != existing.ID || len(got.Identities) != 2 || !got.Identities[1].Is(otp.Identities[0]) {
		t.Fatalf("tenant user %s with identities %+v, want %s holding %s once",
			got.ID, got.Identities, existing.ID, otp.ID)
	}
}

func TestLinkerSeedScenario(t *testing.T) {
	tenant := seedTenant(t)
	l := &linking.Linker{Store: tenant}

	got, err := l.Link(context.Background(), loginAs(otp))
	if err != nil {
		t.Fatalf("Link: %v", err)
	}
	if got.Action != linking.ActionLink || got.PrimaryUserID != existing.ID || got.Reason != linking.ReasonLinked {
		t.Errorf("got %v/%s primary %q, want link/linked primary %q", got.Action, got.Reason, got.PrimaryUserID, existing.ID)
	}
	wantSeedLinked(t, tenant)
	wantCalls(t, tenant, linkingtest.Calls{linkingtest.MethodUsersByEmail: 1, linkingtest.MethodLink: 1})
}

// TestLinkerRule1_NoStoreCall is rule 1 of docs/security.md: a login whose email is
// unverified or missing causes no store call at all, so certainly no write.
func TestLinkerRule1_NoStoreCall(t *testing.T) {
	unverified := otp
	unverified.EmailVerified = false
	missing := otp
	missing.Email = ""
	for _, u := range []linking.User{unverified, missing} {
		tenant := linkingtest.NewTenant(existing, u)
		tenant.ResetCalls()
		got, err := (&linking.Linker{Store: tenant}).Link(context.Background(), loginAs(u))
		if err != nil || got.Action != linking.ActionNone || got.PrimaryUserID != "" {
			t.Errorf("email %q verified=%v: got %v %q, %v; want none", u.Email, u.EmailVerified, got.Action, got.PrimaryUserID, err)
		}
		wantCalls(t, tenant, linkingtest.Calls{})
	}
}

// TestLinkerR2_LostResponse: the link commits but its response is lost; the
// Linker reads the primary back and reports success, with one identity.
func TestLinkerR2_LostResponse(t *testing.T) {
	tenant := seedTenant(t)
	tenant.CommitThenFail(1, fmt.Errorf("connection reset: %w", linking.ErrUnavailable))
	l := &linking.Linker{Store: tenant}

	got, err := l.Link(context.Background(), loginAs(otp))
	if err != nil {
		t.Fatalf("Link: %v", err)
	}
	if got.Action != linking.ActionLink || got.PrimaryUserID != existing.ID || got.Reason != linking.ReasonAlreadyLinked {
		t.Errorf("got %v/%s primary %q, want link/already_linked primary %q", got.Action, got.Reason, got.PrimaryUserID, existing.ID)
	}
	wantSeedLinked(t, tenant)
	wantCalls(t, tenant, linkingtest.Calls{
		linkingtest.MethodUsersByEmail: 1, linkingtest.MethodLink: 1, linkingtest.MethodUser: 1,
	})
}

// gatedStore holds every lookup until release is closed.
type gatedStore struct {
	linking.UserStore
	release chan struct{}
}

func (s gatedStore) UsersByEmail(ctx context.Context, email string) ([]linking.User, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.UserStore.UsersByEmail(ctx, email)
}

// TestLinkerR3_ConcurrentFirstLogins: 50 concurrent calls for one login share
// one lookup and one link, and all end as the same primary.
func TestLinkerR3_ConcurrentFirstLogins(t *testing.T) {
	tenant := seedTenant(t)
	release := make(chan struct{})
	l := &linking.Linker{Store: gatedStore{tenant, release}}

	const n = 50
	results := make([]linking.Result, n)
	errs := make([]error, n)
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			started.Done()
			results[i], errs[i] = l.Link(context.Background(), loginAs(otp))
		}()
	}
	started.Wait()
	// Give every goroutine time to reach the shared call before the lookup
	// is let through. This only makes the sharing observable; the outcome
	// must be right either way (a late call finds the link in place).
	time.Sleep(100 * time.Millisecond)
	close(release)
	done.Wait()

	for i := range n {
		if errs[i] != nil || results[i].Action != linking.ActionLink || results[i].PrimaryUserID != existing.ID {
			t.Fatalf("call %d: got %v primary %q, %v; want link into %q", i, results[i].Action, results[i].PrimaryUserID, errs[i], existing.ID)
		}
	}
	wantSeedLinked(t, tenant)
	wantCalls(t, tenant, linkingtest.Calls{linkingtest.MethodUsersByEmail: 1, linkingtest.MethodLink: 1})
}

// TestLinkerRepeatedCall: the same login handled again after its link (the
// Action retried) ends as the primary without a second link.
func TestLinkerRepeatedCall(t *testing.T) {
	tenant := seedTenant(t)
	l := &linking.Linker{Store: tenant}
	if _, err := l.Link(context.Background(), loginAs(otp)); err != nil {
		t.Fatal(err)
	}
	tenant.ResetCalls()
	got, err := l.Link(context.Background(), loginAs(otp))
	if err != nil || got.PrimaryUserID != existing.ID || got.Reason != linking.ReasonAlreadyLinked {
		t.Errorf("got %v/%s primary %q, %v; want link/already_linked into %q", got.Action, got.Reason, got.PrimaryUserID, err, existing.ID)
	}
	wantSeedLinked(t, tenant)
	wantCalls(t, tenant, linkingtest.Calls{linkingtest.MethodUsersByEmail: 1})
}

// TestLinkerR4_NextLoginArrivesAsPrimary: the link was made but
// setPrimaryUser never applied; the next login arrives as the primary. No
// second link, no failure, and no store call at all.
func TestLinkerR4_NextLoginArrivesAsPrimary(t *testing.T) {
	tenant := seedTenant(t)
	l := &linking.Linker{Store: tenant}
	if _, err := l.Link(context.Background(), loginAs(otp)); err != nil {
		t.Fatal(err)
	}
	primary, err := tenant.User(context.Background(), existing.ID)
	if err != nil {
		t.Fatal(err)
	}
	tenant.ResetCalls()

	got, err := l.Link(context.Background(), linking.Login{User: primary, Identity: otp.Identities[0]})
	if err != nil || got.Action != linking.ActionNone || got.Reason != linking.ReasonLoginIsPrimary {
		t.Errorf("got %v/%s, %v; want none/login_is_primary", got.Action, got.Reason, err)
	}
	wantSeedLinked(t, tenant)
	wantCalls(t, tenant, linkingtest.Calls{})
}

// TestLinkerCaseVariants: Auth0's users-by-email is case-sensitive; a login
// whose provider kept capitals finds the lowercased database user through the
// second, normalized lookup.
func TestLinkerCaseVariants(t *testing.T) {
	social := user("google-oauth2", "1098", "google-oauth2", "Jane@Example.com", true)
	social.Identities[0].IsSocial = true
	tenant := linkingtest.NewTenant(existing, social)
	tenant.ResetCalls()
	l := &linking.Linker{Store: tenant, Policy: linking.Policy{TrustedProviders: []string{"auth0", "email", "google-oauth2"}}}

	got, err := l.Link(context.Background(), loginAs(social))
	if err != nil || got.PrimaryUserID != existing.ID {
		t.Fatalf("got %v/%s primary %q, %v; want link into %q", got.Action, got.Reason, got.PrimaryUserID, err, existing.ID)
	}
	wantCalls(t, tenant, linkingtest.Calls{linkingtest.MethodUsersByEmail: 2, linkingtest.MethodLink: 1})
}

// TestLinkerSearchCaseVariants: a social user stored as "Jane@Example.com"
// is invisible to users-by-email for a login carrying "jane@example.com";
// SearchCaseVariants finds it, at the cost of one search.
func TestLinkerSearchCaseVariants(t *testing.T) {
	social := user("google-oauth2", "1098", "google-oauth2", "Jane@Example.com", true)
	social.Identities[0].IsSocial = true
	policy := linking.Policy{TrustedProviders: []string{"auth0", "email", "google-oauth2"}}

	tenant := linkingtest.NewTenant(social, otp)
	tenant.ResetCalls()
	got, err := (&linking.Linker{Store: tenant, Policy: policy}).Link(context.Background(), loginAs(otp))
	if err != nil || got.Action != linking.ActionNone || got.Reason != linking.ReasonNoCandidate {
		t.Errorf("without the search: got %v/%s, %v; want none/no_candidate", got.Action, got.Reason, err)
	}
	wantCalls(t, tenant, linkingtest.Calls{linkingtest.MethodUsersByEmail: 1})

	tenant = linkingtest.NewTenant(social, otp)
	tenant.ResetCalls()
	l := &linking.Linker{Store: tenant, Policy: policy, SearchCaseVariants: true}
	got, err = l.Link(context.Background(), loginAs(otp))
	if err != nil || got.PrimaryUserID != social.ID {
		t.Fatalf("with the search: got %v/%s primary %q, %v; want link into %q", got.Action, got.Reason, got.PrimaryUserID, err, social.ID)
	}
	wantCalls(t, tenant, linkingtest.Calls{
		linkingtest.MethodUsersByEmail: 1, linkingtest.MethodSearchUsersByEmail: 1, linkingtest.MethodLink: 1,
	})
}

func TestLinkerStoreFailures(t *testing.T) {
	unavailable := fmt.Errorf("503: %w", linking.ErrUnavailable)
	limited := fmt.Errorf("429: %w", linking.ErrRateLimited)
	refusedCredentials := errors.New("401: access_denied") // no sentinel: not the store being unavailable
	failOpen := linking.Policy{OnStoreError: linking.FailOpen}
	tests := []struct {
		name   string
		fault  func(*linkingtest.Tenant)
		policy linking.Policy
		want   linking.Action
		reason linking.Reason
		is     error
	}{
		{"lookup fails, fail closed", func(t *linkingtest.Tenant) { t.FailNext(linkingtest.MethodUsersByEmail, 1, unavailable) },
			linking.Policy{}, linking.ActionDeny, linking.ReasonStoreError, linking.ErrUnavailable},
		{"lookup fails, fail open", func(t *linkingtest.Tenant) { t.FailNext(linkingtest.MethodUsersByEmail, 1, unavailable) },
			failOpen, linking.ActionNone, linking.ReasonStoreError, linking.ErrUnavailable},
		{"lookup refused for its credentials, fail open", func(t *linkingtest.Tenant) {
			t.FailNext(linkingtest.MethodUsersByEmail, 1, refusedCredentials)
		}, failOpen, linking.ActionDeny, linking.ReasonStoreError, refusedCredentials},
		{"link rate limited, confirmed not committed", func(t *linkingtest.Tenant) { t.FailNext(linkingtest.MethodLink, 1, limited) },
			linking.Policy{}, linking.ActionDeny, linking.ReasonStoreError, linking.ErrRateLimited},
		{"link unavailable, confirmed not committed, fail open", func(t *linkingtest.Tenant) {
			t.FailNext(linkingtest.MethodLink, 1, unavailable)
		}, failOpen, linking.ActionNone, linking.ReasonStoreError, linking.ErrUnavailable},
		{"link and read-back fail, fail closed", func(t *linkingtest.Tenant) {
			t.FailNext(linkingtest.MethodLink, 1, unavailable)
			t.FailNext(linkingtest.MethodUser, 1, unavailable)
		}, linking.Policy{}, linking.ActionDeny, linking.ReasonLinkUnconfirmed, linking.ErrUnavailable},
		{"link and read-back fail, fail open", func(t *linkingtest.Tenant) {
			t.FailNext(linkingtest.MethodLink, 1, unavailable)
			t.FailNext(linkingtest.MethodUser, 1, unavailable)
		}, failOpen, linking.ActionDeny, linking.ReasonLinkUnconfirmed, linking.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant := seedTenant(t)
			tt.fault(tenant)
			before := tenant.Users()
			got, err := (&linking.Linker{Store: tenant, Policy: tt.policy}).Link(context.Background(), loginAs(otp))
			if !errors.Is(err, tt.is) {
				t.Errorf("error %v, want one wrapping %v", err, tt.is)
			}
			if got.Action != tt.want || got.Reason != tt.reason || got.PrimaryUserID != "" {
				t.Errorf("got %v/%s primary %q, want %v/%s and no primary", got.Action, got.Reason, got.PrimaryUserID, tt.want, tt.reason)
			}
			if got.FailedOpen() != (tt.want == linking.ActionNone) {
				t.Errorf("FailedOpen() = %v", got.FailedOpen())
			}
			if diff := cmp.Diff(before, tenant.Users()); diff != "" {
				t.Errorf("tenant changed (-before +after):\n%s", diff)
			}
		})
	}
}

// TestLinkerLostResponseUnconfirmed: the link commits, its answer is lost
// and the read-back fails too. Whatever the policy, the login is denied to be
// tried again, never let through as a user that was just linked away; the
// next attempt finds the link in place.
func TestLinkerLostResponseUnconfirmed(t *testing.T) {
	for _, mode := range []linking.FailureMode{linking.FailClosed, linking.FailOpen} {
		tenant := seedTenant(t)
		tenant.CommitThenFail(1, fmt.Errorf("connection reset: %w", linking.ErrUnavailable))
		tenant.FailNext(linkingtest.MethodUser, 1, fmt.Errorf("timeout: %w", linking.ErrUnavailable))
		l := &linking.Linker{Store: tenant, Policy: linking.Policy{OnStoreError: mode}}

		got, err := l.Link(context.Background(), loginAs(otp))
		if !errors.Is(err, linking.ErrUnavailable) || got.Action != linking.ActionDeny || got.Reason != linking.ReasonLinkUnconfirmed {
			t.Errorf("failure mode %d: got %v/%s, %v; want deny/link_unconfirmed and ErrUnavailable", mode, got.Action, got.Reason, err)
		}
		wantSeedLinked(t, tenant)

		// The Action tries again: the login now arrives as the primary.
		primary, err := tenant.User(context.Background(), existing.ID)
		if err != nil {
			t.Fatal(err)
		}
		again, err := l.Link(context.Background(), linking.Login{User: primary, Identity: otp.Identities[0]})
		if err != nil || again.Action != linking.ActionNone || again.Reason != linking.ReasonLoginIsPrimary {
			t.Errorf("failure mode %d, next login: got %v/%s, %v; want none/login_is_primary", mode, again.Action, again.Reason, err)
		}
	}
}

// gatedLinkStore holds every link until release is closed, and tells when a
// link has arrived.
type gatedLinkStore struct {
	linking.UserStore
	arrived chan struct{}
	release chan struct{}
}

func (s gatedLinkStore) Link(ctx context.Context, primaryID string, secondary linking.Identity) error {
	s.arrived <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", linking.ErrUnavailable, ctx.Err())
	}
	return s.UserStore.Link(ctx, primaryID, secondary)
}

// TestLinkerCallerGivesUpAfterLinkSent: a caller whose deadline passes while
// the link is in flight is denied to try again even when the policy fails
// open, since the link may commit; the work goes on without it and the link
// is in place for the next attempt.
func TestLinkerCallerGivesUpAfterLinkSent(t *testing.T) {
	tenant := seedTenant(t)
	store := gatedLinkStore{tenant, make(chan struct{}, 1), make(chan struct{})}
	l := &linking.Linker{Store: store, Policy: linking.Policy{OnStoreError: linking.FailOpen}}

	ctx, cancel := context.WithCancel(context.Background())
	type answer struct {
		r   linking.Result
		err error
	}
	first := make(chan answer, 1)
	go func() {
		r, err := l.Link(ctx, loginAs(otp))
		first <- answer{r, err}
	}()
	<-store.arrived
	cancel()
	a := <-first
	if a.r.Action != linking.ActionDeny || a.r.Reason != linking.ReasonLinkUnconfirmed || !errors.Is(a.err, context.Canceled) {
		t.Errorf("caller that gave up: got %v/%s, %v; want deny/link_unconfirmed and context.Canceled", a.r.Action, a.r.Reason, a.err)
	}

	// A patient caller for the same login joins the work still in flight.
	second := make(chan answer, 1)
	go func() {
		r, err := l.Link(context.Background(), loginAs(otp))
		second <- answer{r, err}
	}()
	close(store.release)
	b := <-second
	if b.err != nil || b.r.Action != linking.ActionLink || b.r.PrimaryUserID != existing.ID {
		t.Errorf("patient caller: got %v into %q, %v; want link into %q", b.r.Action, b.r.PrimaryUserID, b.err, existing.ID)
	}
	wantSeedLinked(t, tenant)
	// One link in all. The patient caller joins the work in flight or, when
	// it comes after, finds the link in place with one more lookup.
	if n := tenant.Calls()[linkingtest.MethodLink]; n != 1 {
		t.Errorf("links: got %d, want 1", n)
	}
}

// TestLinkerEachCallerKeepsItsDeadline: the work for a login does not die
// with the caller that started it. The first caller gives up at 300 ms while
// the lookup is slow; a second caller for the same login, with a long
// deadline, gets the link, and there is one lookup and one link in all.
func TestLinkerEachCallerKeepsItsDeadline(t *testing.T) {
	tenant := seedTenant(t)
	release := make(chan struct{})
	l := &linking.Linker{Store: gatedStore{tenant, release}}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r, err := l.Link(ctx, loginAs(otp))
	if !errors.Is(err, context.DeadlineExceeded) || r.Action != linking.ActionDeny || r.Reason != linking.ReasonStoreError {
		t.Fatalf("impatient caller: got %v/%s, %v; want deny/store_error and DeadlineExceeded", r.Action, r.Reason, err)
	}

	done := make(chan struct{})
	var got linking.Result
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got, err = l.Link(ctx, loginAs(otp))
	}()
	time.Sleep(50 * time.Millisecond) // the store answers only now
	close(release)
	<-done
	if err != nil || got.Action != linking.ActionLink || got.PrimaryUserID != existing.ID {
		t.Fatalf("patient caller: got %v into %q, %v; want link into %q", got.Action, got.PrimaryUserID, err, existing.ID)
	}
	wantSeedLinked(t, tenant)
	wantCalls(t, tenant, linkingtest.Calls{linkingtest.MethodUsersByEmail: 1, linkingtest.MethodLink: 1})
}

// TestLinkerTimeout: the shared work is bounded by Timeout even when every
// caller waits longer.
func TestLinkerTimeout(t *testing.T) {
	l := &linking.Linker{Store: blockingStore{}, Timeout: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := l.Link(ctx, loginAs(otp))
	if !errors.Is(err, linking.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Link returned after %v, want about Timeout", elapsed)
	}
}

// blockingStore never answers until its ctx is done, like a hung API.
type blockingStore struct{ linking.UserStore }

func (blockingStore) UsersByEmail(ctx context.Context, _ string) ([]linking.User, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("%w: %w", linking.ErrUnavailable, ctx.Err())
}

// TestLinkerR6_StoreDown: a store that hangs makes Link return an error once
// the caller's deadline passes, never hang.
func TestLinkerR6_StoreDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	got, err := (&linking.Linker{Store: blockingStore{}}).Link(ctx, loginAs(otp))
	if !errors.Is(err, linking.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if got.Action != linking.ActionDeny {
		t.Errorf("got %v, want deny (fail closed)", got.Action)
	}
}

func TestLinkerInvalidInput(t *testing.T) {
	forged := loginAs(otp)
	forged.Identity = existing.Identities[0]
	tenant := seedTenant(t)
	got, err := (&linking.Linker{Store: tenant}).Link(context.Background(), forged)
	if !errors.Is(err, linking.ErrInvalidLogin) || got.Action != linking.ActionDeny {
		t.Errorf("forged identity: got %v, %v; want deny and ErrInvalidLogin", got.Action, err)
	}
	for name, l := range map[string]*linking.Linker{
		"loose provider trusted without the insecure flag": {Store: tenant,
			Policy: linking.Policy{TrustedProviders: []string{"waad"}, OnStoreError: linking.FailOpen}},
		"no store": {Policy: linking.Policy{OnStoreError: linking.FailOpen}},
	} {
		r, err := l.Link(context.Background(), loginAs(otp))
		if err == nil || r.Action != linking.ActionDeny || r.Reason != linking.ReasonMisconfigured {
			t.Errorf("%s: got %v/%s, %v; want deny/misconfigured and an error", name, r.Action, r.Reason, err)
		}
	}
	wantCalls(t, tenant, linkingtest.Calls{})
}

// BenchmarkLinker reports the store calls one login costs on each path.
func BenchmarkLinker(b *testing.B) {
	ctx := context.Background()
	paths := []struct {
		name  string
		users []linking.User
		login func(*linkingtest.Tenant) linking.Login
	}{
		{"link", []linking.User{existing, otp}, func(*linkingtest.Tenant) linking.Login { return loginAs(otp) }},
		{"nothing-to-link", []linking.User{otp}, func(*linkingtest.Tenant) linking.Login { return loginAs(otp) }},
		{"already-linked", []linking.User{existing, otp}, func(t *linkingtest.Tenant) linking.Login {
			l := &linking.Linker{Store: t}
			if _, err := l.Link(ctx, loginAs(otp)); err != nil {
				b.Fatal(err)
			}
			primary, _ := t.User(ctx, existing.ID)
			return linking.Login{User: primary, Identity: otp.Identities[0]}
		}},
	}
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			var calls, writes int
			for b.Loop() {
				b.StopTimer()
				tenant := linkingtest.NewTenant(p.users...)
				login := p.login(tenant)
				tenant.ResetCalls()
				l := &linking.Linker{Store: tenant}
				b.StartTimer()
				if _, err := l.Link(ctx, login); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				c := tenant.Calls()
				for _, n := range c {
					calls += n
				}
				writes += c[linkingtest.MethodLink]
				b.StartTimer()
			}
			b.ReportMetric(float64(calls)/float64(b.N), "store-calls/login")
			b.ReportMetric(float64(writes)/float64(b.N), "writes/login")
		})
	}
}

// deadlineStore records what WaitDeadline says during a lookup.
type deadlineStore struct {
	linking.UserStore
	seen chan time.Time
}

func (s deadlineStore) UsersByEmail(ctx context.Context, email string) ([]linking.User, error) {
	d, ok := linking.WaitDeadline(ctx)
	if !ok {
		d = time.Time{}.Add(1) // a mark for "no deadline"
	}
	s.seen <- d
	return s.UserStore.UsersByEmail(ctx, email)
}

// TestLinkerWaitDeadline: the work tells a store how long its callers wait:
// the caller's deadline, or none.
func TestLinkerWaitDeadline(t *testing.T) {
	if _, ok := linking.WaitDeadline(context.Background()); ok {
		t.Error("WaitDeadline outside a Linker's work: ok, want not ok")
	}
	store := deadlineStore{seedTenant(t), make(chan time.Time, 4)}
	l := &linking.Linker{Store: store}
	deadline := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if _, err := l.Link(ctx, loginAs(otpUser("alone", "alone@example.com"))); err != nil {
		t.Fatal(err)
	}
	if got := <-store.seen; !got.Equal(deadline) {
		t.Errorf("WaitDeadline during the caller's lookup: got %v, want %v", got, deadline)
	}
	if _, err := l.Link(context.Background(), loginAs(otpUser("alone", "alone@example.com"))); err != nil {
		t.Fatal(err)
	}
	if got := <-store.seen; !got.Equal(time.Time{}.Add(1)) {
		t.Errorf("WaitDeadline for a caller without deadline: got %v, want none", got)
	}
}
