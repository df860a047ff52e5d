package backfill_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/backfill"
	"github.com/idlink/linking/backfill/backfilltest"
	"github.com/idlink/linking/linkingtest"
)

// smallSpec is a tenant with a few groups of each kind.
var smallSpec = backfilltest.Spec{Seed: 7, Users: 200, Groups: 3}

// writeExport writes users as a gzipped Auth0 export in dir and returns its
// path.
func writeExport(t testing.TB, dir string, each func(func(linking.User) error) error) string {
	t.Helper()
	path := filepath.Join(dir, "export.json.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	x := backfilltest.NewExportWriter(zw)
	if err := each(x.Write); err != nil {
		t.Fatal(err)
	}
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func openFile(path string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return os.Open(path) }
}

// makePlan plans the export at path and writes the plan in dir.
func makePlan(t testing.TB, dir, path string, p backfill.Planner) (string, backfill.Summary) {
	t.Helper()
	var buf bytes.Buffer
	s, err := p.Plan(context.Background(), openFile(path), &buf)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	planPath := filepath.Join(dir, "plan.jsonl")
	if err := os.WriteFile(planPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return planPath, s
}

func readPlan(t testing.TB, path string) *backfill.Plan {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pl, err := backfill.ReadPlan(f)
	if err != nil {
		t.Fatalf("ReadPlan: %v", err)
	}
	return pl
}

// fastApplier returns an Applier for tests: a high rate, no backoff.
func fastApplier(store backfill.Store) *backfill.Applier {
	return &backfill.Applier{
		Store:   store,
		Tenant:  "test.example.com",
		Policy:  backfilltest.Policy(),
		Rate:    1e6,
		Burst:   1000,
		Backoff: func(int, time.Time) time.Duration { return 0 },
	}
}

// prepared is a tenant of smallSpec with its plan.
type prepared struct {
	dir      string
	users    []linking.User
	tenant   *linkingtest.Tenant
	planPath string
	plan     *backfill.Plan
	journal  string
}

func prepare(t testing.TB, spec backfilltest.Spec) prepared {
	t.Helper()
	dir := t.TempDir()
	users := spec.All()
	path := writeExport(t, dir, spec.Each)
	planPath, _ := makePlan(t, dir, path, backfill.Planner{Policy: backfilltest.Policy()})
	return prepared{
		dir:      dir,
		users:    users,
		tenant:   linkingtest.NewTenant(users...),
		planPath: planPath,
		plan:     readPlan(t, planPath),
		journal:  filepath.Join(dir, "journal.jsonl"),
	}
}

// linked returns users after the links secondary → primary, as Auth0 does
// them: the secondary gone, its main identity added to the primary.
func linked(users []linking.User, links map[string]string) []linking.User {
	byID := make(map[string]int, len(users))
	for i, u := range users {
		byID[u.ID] = i
	}
	out := slices.Clone(users)
	for s, p := range links {
		su := users[byID[s]]
		pu := &out[byID[p]]
		pu.Identities = append(slices.Clone(pu.Identities), su.Identities[0])
	}
	return slices.DeleteFunc(out, func(u linking.User) bool { _, ok := links[u.ID]; return ok })
}

// canonical returns each user as one line of JSON, sorted by user id: what
// the tenant keeps of it, with metadata as JSON decodes it, without the
// profile Auth0 copies into a linked identity and without the creation time
// (a user recreated by an unlink gets a new one). Users read back from a
// tenant compare with generated ones this way, and a difference shows as
// whole users.
func canonical(t testing.TB, users []linking.User) []string {
	t.Helper()
	type identity struct {
		Provider, UserID, Connection string
		IsSocial                     bool
	}
	out := make([]string, len(users))
	for i, u := range users {
		c := struct {
			ID, Email                 string
			EmailVerified, Blocked    bool
			Identities                []identity
			UserMetadata, AppMetadata map[string]any
		}{
			ID: u.ID, Email: u.Email, EmailVerified: u.EmailVerified, Blocked: u.Blocked,
			UserMetadata: jsonMap(t, u.UserMetadata), AppMetadata: jsonMap(t, u.AppMetadata),
		}
		for _, id := range u.Identities {
			c.Identities = append(c.Identities, identity{id.Provider, id.UserID, id.Connection, id.IsSocial})
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	slices.Sort(out)
	return out
}

func jsonMap(t testing.TB, m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// diffUsers returns the difference between two sets of users, compared in
// their canonical form.
func diffUsers(t testing.TB, want, got []linking.User) string {
	t.Helper()
	return cmp.Diff(canonical(t, want), canonical(t, got))
}

// checkHeldOnce fails when an identity is held by two users.
func checkHeldOnce(t testing.TB, users []linking.User) {
	t.Helper()
	seen := make(map[string]string)
	for _, u := range users {
		for _, id := range u.Identities {
			if other, ok := seen[id.UserIDOf()]; ok {
				t.Errorf("identity %s held by %s and %s", id.UserIDOf(), other, u.ID)
			}
			seen[id.UserIDOf()] = u.ID
		}
	}
}

// planLinks returns the secondary → primary links of a plan.
func planLinks(pl *backfill.Plan) map[string]string {
	links := make(map[string]string)
	for _, l := range pl.Lines {
		for _, s := range l.Secondaries {
			links[s.ID] = l.Primary.ID
		}
	}
	return links
}

// checkUndo undoes the journal of p with a, and checks that the tenant then
// holds the users want.
func checkUndo(t testing.TB, a *backfill.Applier, p prepared, want []linking.User) {
	t.Helper()
	if _, err := a.Undo(context.Background(), p.journal); err != nil {
		t.Fatalf("Undo: %v", err)
	}
	if diff := diffUsers(t, want, p.tenant.Users()); diff != "" {
		t.Errorf("tenant after undo (-want +got):\n%s", diff)
	}
}
