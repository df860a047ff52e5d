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

// TestLinkerRule1_NoStoreCall is DESIGN.md §4 rule 1: a login whose email is
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
	tests := []struct {
		name   string
		fault  func(*linkingtest.Tenant)
		policy linking.Policy
		want   linking.Action
		is     error
	}{
		{"lookup fails, fail closed", func(t *linkingtest.Tenant) { t.FailNext(linkingtest.MethodUsersByEmail, 1, unavailable) },
			linking.Policy{}, linking.ActionDeny, linking.ErrUnavailable},
		{"lookup fails, fail open", func(t *linkingtest.Tenant) { t.FailNext(linkingtest.MethodUsersByEmail, 1, unavailable) },
			linking.Policy{OnStoreError: linking.FailOpen}, linking.ActionNone, linking.ErrUnavailable},
		{"link rate limited, not committed", func(t *linkingtest.Tenant) { t.FailNext(linkingtest.MethodLink, 1, limited) },
			linking.Policy{}, linking.ActionDeny, linking.ErrRateLimited},
		{"link and read-back fail", func(t *linkingtest.Tenant) {
			t.FailNext(linkingtest.MethodLink, 1, unavailable)
			t.FailNext(linkingtest.MethodUser, 1, unavailable)
		}, linking.Policy{OnStoreError: linking.FailOpen}, linking.ActionNone, linking.ErrUnavailable},
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
			if got.Action != tt.want || got.Reason != linking.ReasonStoreError || got.PrimaryUserID != "" {
				t.Errorf("got %v/%s primary %q, want %v/store_error and no primary", got.Action, got.Reason, got.PrimaryUserID, tt.want)
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
