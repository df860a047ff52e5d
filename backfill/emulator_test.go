package backfill_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/auth0/go-auth0/management"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/backfill"
	"github.com/idlink/linking/backfill/backfilltest"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

var (
	_ backfill.Store          = (*mgmt.Store)(nil)
	_ backfill.RateLimitReset = (*mgmt.APIError)(nil)
)

// statusCounter counts the answers of each HTTP status a client gets.
type statusCounter struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[int]int
}

func (c *statusCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := c.base.RoundTrip(r)
	if err == nil {
		c.mu.Lock()
		if c.n == nil {
			c.n = make(map[int]int)
		}
		c.n[res.StatusCode]++
		c.mu.Unlock()
	}
	return res, err
}

func (c *statusCounter) count(status int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[status]
}

// noRetries is what an Applier's Store needs: go-auth0's own retries off,
// so that the Applier's attempts are the requests the tenant gets.
var noRetries = mgmt.WithRetryStrategy(management.RetryStrategy{})

// pastClock is an emulator clock a minute behind: its X-RateLimit-Reset
// times are past, so that a test does not wait for them.
func pastClock() time.Time { return time.Now().Add(-time.Minute) }

// TestEmulator plans, applies and undoes a generated tenant of 2,000 users
// through the real go-auth0 client, its retries off as the Applier needs,
// against the Management API emulator, with faults mid-apply (429 storm,
// the emulator's own rate limit, 5xx, a link committed whose connection is
// dropped): every link is in place exactly once, with two reads and one link
// request per secondary when nothing fails; the report counts every request
// the emulator got and every 429 it sent; undo gives back the original
// users, emails and metadata.
func TestEmulator(t *testing.T) {
	spec := backfilltest.Spec{Seed: 5, Users: 2000, Groups: 10}
	want := spec.Expected()
	tests := []struct {
		name  string
		opts  []mgmttest.Option
		fault func(e *mgmttest.Emulator)
		// extra is the link requests beyond one per link, and tooMany
		// the answers 429; -1: some, not known in advance.
		extra, tooMany int
	}{
		{name: "no fault"},
		// Each 429 is one attempt of the Applier: it waits, reads the
		// primary back and links again.
		{name: "429 storm", opts: []mgmttest.Option{mgmttest.WithClock(pastClock)}, fault: func(e *mgmttest.Emulator) { e.FailNext(mgmttest.RouteLink, 3, http.StatusTooManyRequests) }, extra: 3, tooMany: 3},
		{name: "429 on reads", opts: []mgmttest.Option{mgmttest.WithClock(pastClock)},
			fault: func(e *mgmttest.Emulator) { e.FailNext(mgmttest.RouteUser, 4, http.StatusTooManyRequests) }, tooMany: 4},
		// The emulator allows 200 requests/s, two at a time; the Applier
		// goes as fast as it can, and every 429 it gets counts. Its
		// backoff lets the emulator refill two: a read-back and a link.
		{name: "rate limit", opts: []mgmttest.Option{mgmttest.WithRateLimit(200, 2), mgmttest.WithClock(pastClock)}, tooMany: -1},
		{name: "5xx", fault: func(e *mgmttest.Emulator) { e.FailNext(mgmttest.RouteLink, 3, http.StatusBadGateway) }, extra: 3},
		// The dropped link is committed; the Applier reads the primary
		// back and finds it done, without sending it again.
		{name: "commit then drop", fault: func(e *mgmttest.Emulator) { e.CommitThenDrop(mgmttest.RouteLink, 1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := prepare(t, spec)
			srv := mgmttest.NewServer(p.tenant, tt.opts...)
			defer srv.Close()
			statuses := &statusCounter{base: http.DefaultTransport}
			store := srv.Store(t, noRetries, mgmt.WithHTTPClient(&http.Client{Transport: statuses, Timeout: mgmt.DefaultTimeout}))
			a := fastApplier(store)
			a.Tenant = srv.Domain()
			a.Backoff = func(int, time.Time) time.Duration { return 10 * time.Millisecond }
			if tt.fault != nil {
				tt.fault(srv.Emulator)
			}

			rep, err := a.Apply(context.Background(), p.plan, p.journal)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if rep.Done != len(want.Links) || len(rep.Failed)+len(rep.Skipped) != 0 {
				t.Errorf("got %d done, failures %v, skipped %v; want %d done", rep.Done, rep.Failed, rep.Skipped, len(want.Links))
			}
			if got, want := srv.Requests(mgmttest.RouteLink), len(want.Links)+tt.extra; tt.tooMany >= 0 && got != want {
				t.Errorf("got %d link requests, want %d", got, want)
			}
			if tt.fault == nil && tt.tooMany == 0 {
				if got := srv.APIRequests(); got != 3*len(want.Links) {
					t.Errorf("got %d API requests, want three per link: %d", got, 3*len(want.Links))
				}
			}
			if got := srv.APIRequests(); rep.Calls != got {
				t.Errorf("got Report.Calls %d, want the emulator's count %d", rep.Calls, got)
			}
			sent := statuses.count(http.StatusTooManyRequests)
			if rep.RateLimited != sent {
				t.Errorf("got Report.RateLimited %d, want the 429s the emulator sent: %d", rep.RateLimited, sent)
			}
			if tt.tooMany >= 0 && sent != tt.tooMany || tt.tooMany < 0 && sent == 0 {
				t.Errorf("the emulator sent %d answers 429, want %d (-1: some)", sent, tt.tooMany)
			}
			after := p.tenant.Users()
			if diff := diffUsers(t, linked(p.users, want.Links), after); diff != "" {
				t.Errorf("tenant after apply (-want +got):\n%s", diff)
			}
			checkHeldOnce(t, after)

			checkUndo(t, a, p, p.users)
		})
	}
}

// TestEmulatorExport plans from the export the emulator serves through
// mgmt.Store.ExportUsers (Auth0's users-exports job, gzipped NDJSON): the
// plan holds exactly the expected links.
func TestEmulatorExport(t *testing.T) {
	spec := backfilltest.Spec{Seed: 9, Users: 10_000, Groups: 25}
	srv := mgmttest.NewServer(linkingtest.NewTenant(spec.All()...))
	defer srv.Close()
	store := srv.Store(t)
	path := filepath.Join(t.TempDir(), "export.json.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ExportUsers(context.Background(), f); err != nil {
		t.Fatalf("ExportUsers: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	planPath, s := makePlan(t, t.TempDir(), path, backfill.Planner{Policy: backfilltest.Policy()})
	if s.Users != spec.Users {
		t.Errorf("got %d users in the export, want %d", s.Users, spec.Users)
	}
	if diff := cmp.Diff(spec.Expected().Links, planLinks(readPlan(t, planPath))); diff != "" {
		t.Errorf("plan links (-want +got):\n%s", diff)
	}
}

// TestApplyConfigError: a Store that cannot reach its tenant for a
// configuration error (wrong secret, plain HTTP to an HTTPS tenant, a
// certificate not trusted) stops Apply at its first call, without a retry
// and without ErrIncomplete: trying again cannot help.
func TestApplyConfigError(t *testing.T) {
	tests := []struct {
		name  string
		store func(t *testing.T, srv *mgmttest.Server) *mgmt.Store
	}{
		{"wrong secret", func(t *testing.T, srv *mgmttest.Server) *mgmt.Store {
			opts := append(srv.ClientOptions(), noRetries)
			s, err := mgmt.New(t.Context(), srv.Domain(), srv.ClientID(), "wrong-secret", opts...)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"plain HTTP to HTTPS", func(t *testing.T, srv *mgmttest.Server) *mgmt.Store {
			s, err := mgmt.New(t.Context(), srv.Domain(), srv.ClientID(), srv.ClientSecret(), mgmt.WithInsecureHTTP(), noRetries)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"certificate not trusted", func(t *testing.T, srv *mgmttest.Server) *mgmt.Store {
			s, err := mgmt.New(t.Context(), srv.Domain(), srv.ClientID(), srv.ClientSecret(), noRetries)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prepare(t, smallSpec)
			srv := mgmttest.NewTLSServer(p.tenant)
			defer srv.Close()
			a := fastApplier(tt.store(t, srv))
			a.Tenant = srv.Domain()
			a.Backoff = backfill.DefaultBackoff
			start := time.Now()
			rep, err := a.Apply(context.Background(), p.plan, p.journal)
			if !errors.Is(err, mgmt.ErrConfig) || errors.Is(err, backfill.ErrIncomplete) {
				t.Fatalf("got %v, want mgmt.ErrConfig and not ErrIncomplete", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("stopped after %v, want at once", d)
			}
			if rep.Calls != 1 || rep.Done != 0 {
				t.Errorf("got %d calls and %d done, want 1 call and none done", rep.Calls, rep.Done)
			}
			if n := srv.APIRequests(); n != 0 {
				t.Errorf("the tenant got %d API requests, want none", n)
			}
		})
	}
}

// TestEmulatorSelect merges a group of 3 and a group of 5 with a selector
// through the real go-auth0 client against the emulator: every member into
// the oldest of its group, three requests per link; undo gives back the
// original users, metadata included.
func TestEmulatorSelect(t *testing.T) {
	users, links := groupsSpec{sizes: []int{3, 5}, singles: 5}.users()
	policy := selectPolicy(linking.PreferOldest)
	p, _ := prepareUsers(t, users, backfill.Planner{Policy: policy})
	srv := mgmttest.NewServer(p.tenant)
	defer srv.Close()
	a := fastApplier(srv.Store(t, noRetries))
	a.Tenant, a.Policy = srv.Domain(), policy

	rep, err := a.Apply(context.Background(), p.plan, p.journal)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if rep.Done != len(links) || len(rep.Failed)+len(rep.Skipped) != 0 {
		t.Errorf("got %d done, failures %v, skipped %v; want %d done", rep.Done, rep.Failed, rep.Skipped, len(links))
	}
	if got := srv.APIRequests(); got != 3*len(links) || rep.Calls != got {
		t.Errorf("got %d API requests and Report.Calls %d, want three per link: %d", got, rep.Calls, 3*len(links))
	}
	after := p.tenant.Users()
	if diff := diffUsers(t, linked(p.users, links), after); diff != "" {
		t.Errorf("tenant after apply (-want +got):\n%s", diff)
	}
	checkHeldOnce(t, after)

	checkUndo(t, a, p, p.users)
}
