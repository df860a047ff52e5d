package backfill_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

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

// TestEmulator plans, applies and undoes a generated tenant of 10,000 users
// through the real go-auth0 client against the Management API emulator,
// with faults mid-apply (429 storm, 5xx, a link committed whose connection
// is dropped): every link is in place exactly once, with one link request
// per secondary when nothing fails; undo gives back the original users,
// emails and metadata.
func TestEmulator(t *testing.T) {
	spec := backfilltest.Spec{Seed: 5, Users: 10_000, Groups: 25}
	want := spec.Expected()
	tests := []struct {
		name  string
		fault func(e *mgmttest.Emulator)
		// extra is the link requests beyond one per link.
		extra int
	}{
		{"no fault", func(*mgmttest.Emulator) {}, 0},
		// go-auth0 tries each request three times: three faults reach
		// the Applier as one error.
		{"429 storm", func(e *mgmttest.Emulator) { e.FailNext(mgmttest.RouteLink, 3, http.StatusTooManyRequests) }, 3},
		{"5xx", func(e *mgmttest.Emulator) { e.FailNext(mgmttest.RouteLink, 3, http.StatusBadGateway) }, 3},
		// The dropped link is committed; go-auth0 sends it again and
		// gets 409; the Applier reads the primary back.
		{"commit then drop", func(e *mgmttest.Emulator) { e.CommitThenDrop(mgmttest.RouteLink, 1) }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := prepare(t, spec)
			srv := mgmttest.NewServer(p.tenant)
			defer srv.Close()
			statuses := &statusCounter{base: http.DefaultTransport}
			store := srv.Store(t, mgmt.WithHTTPClient(&http.Client{Transport: statuses, Timeout: mgmt.DefaultTimeout}))
			a := fastApplier(store)
			a.Tenant = srv.Domain()
			tt.fault(srv.Emulator)

			rep, err := a.Apply(context.Background(), p.plan, p.journal)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if rep.Done != len(want.Links) || len(rep.Failed) != 0 {
				t.Errorf("got %d done, failures %v; want %d done", rep.Done, rep.Failed, len(want.Links))
			}
			if got, want := srv.Requests(mgmttest.RouteLink), len(want.Links)+tt.extra; got != want {
				t.Errorf("got %d link requests, want %d", got, want)
			}
			if tt.extra == 0 {
				if got := srv.APIRequests(); got != len(want.Links) {
					t.Errorf("got %d API requests, want one per link: %d", got, len(want.Links))
				}
			}
			after := p.tenant.Users()
			if diff := diffUsers(t, linked(p.users, want.Links), after); diff != "" {
				t.Errorf("tenant after apply (-want +got):\n%s", diff)
			}
			checkHeldOnce(t, after)

			if _, err := a.Undo(context.Background(), p.journal); err != nil {
				t.Fatalf("Undo: %v", err)
			}
			if diff := diffUsers(t, p.users, p.tenant.Users()); diff != "" {
				t.Errorf("tenant after undo (-want +got):\n%s", diff)
			}
			if tt.name == "no fault" && statuses.count(http.StatusTooManyRequests) != 0 {
				t.Errorf("got %d answers 429, want none", statuses.count(http.StatusTooManyRequests))
			}
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
