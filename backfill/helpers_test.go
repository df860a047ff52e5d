package backfill_test

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

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
	p, _ := prepareUsers(t, spec.All(), backfill.Planner{Policy: backfilltest.Policy()})
	return p
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
// the tenant keeps of it, with metadata as JSON decodes it, its linked
// identities sorted after its main one, without the profile Auth0 copies
// into a linked identity and without the creation time (a user recreated by
// an unlink gets a new one). Users read back from a tenant compare with
// generated ones this way, and a difference shows as whole users.
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
		if len(c.Identities) > 1 {
			slices.SortFunc(c.Identities[1:], func(a, b identity) int {
				return cmp.Or(strings.Compare(a.Provider, b.Provider), strings.Compare(a.UserID, b.UserID))
			})
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
	return gocmp.Diff(canonical(t, want), canonical(t, got))
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

// signup is one user of a person, by the connection it signed up with and
// the day, after groupEpoch, it was created.
type signup struct {
	conn string
	day  int
}

var groupEpoch = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)

// person returns the users of person n, one per signup, all with the
// verified email person.N@example.com and metadata of their own.
func person(n int, signups ...signup) []linking.User {
	email := fmt.Sprintf("person.%d@example.com", n)
	users := make([]linking.User, len(signups))
	for i, su := range signups {
		id := linking.Identity{UserID: fmt.Sprintf("p%03d-%d", n, i), Connection: su.conn}
		switch su.conn {
		case backfilltest.ConnEmail:
			id.Provider = "email"
		case backfilltest.ConnGoogle:
			id.Provider, id.IsSocial = "google-oauth2", true
		default:
			id.Provider = "auth0"
		}
		users[i] = linking.User{
			ID: id.UserIDOf(), Email: email, EmailVerified: true,
			Identities:   []linking.Identity{id},
			CreatedAt:    groupEpoch.AddDate(0, 0, su.day),
			UserMetadata: map[string]any{"signup": su.conn, "n": float64(i)},
		}
		if i%2 == 1 {
			users[i].AppMetadata = map[string]any{"plan": "trial", "flags": map[string]any{"beta": true}}
		}
	}
	return users
}

// groupConns are the connections of the members of a generated group, in
// order: a group of n has the first n.
var groupConns = []string{
	backfilltest.ConnDatabase, backfilltest.ConnEmail, backfilltest.ConnGoogle,
	backfilltest.ConnLegacy, backfilltest.ConnEmail,
}

// groupOf returns person n with a group of size users, all eligible: the
// member oldest is created first, the others a day apart in order.
func groupOf(n, size, oldest int) []linking.User {
	signups := make([]signup, size)
	for i := range signups {
		signups[i] = signup{conn: groupConns[i], day: 1 + (i-oldest+size)%size}
	}
	return person(n, signups...)
}

// groupsSpec is a tenant of groups of several sizes, with every member
// eligible, and users of their own.
type groupsSpec struct {
	sizes   []int // the sizes of the groups, one group each
	singles int
}

// users returns the tenant's users, and the links a selector that prefers
// the oldest user plans: every member into the oldest of its group.
func (s groupsSpec) users() ([]linking.User, map[string]string) {
	var users []linking.User
	links := make(map[string]string)
	for n, size := range s.sizes {
		group := groupOf(n, size, n%size)
		for _, u := range group {
			if u.ID != group[n%size].ID {
				links[u.ID] = group[n%size].ID
			}
		}
		users = append(users, group...)
	}
	for i := range s.singles {
		users = append(users, person(1000+i, signup{groupConns[i%len(groupConns)], i})...)
	}
	return users, links
}

// exportOf writes users as a gzipped export in dir and returns its path.
func exportOf(t testing.TB, dir string, users []linking.User) string {
	t.Helper()
	return writeExport(t, dir, func(write func(linking.User) error) error {
		for _, u := range users {
			if err := write(u); err != nil {
				return err
			}
		}
		return nil
	})
}

// selectPolicy is backfilltest.Policy with a selector.
func selectPolicy(sel ...linking.Preference) linking.Policy {
	p := backfilltest.Policy()
	p.Select = sel
	return p
}

// prepareUsers plans users with planner, for a tenant that holds them.
func prepareUsers(t testing.TB, users []linking.User, planner backfill.Planner) (prepared, backfill.Summary) {
	t.Helper()
	dir := t.TempDir()
	planPath, s := makePlan(t, dir, exportOf(t, dir, users), planner)
	return prepared{
		dir:      dir,
		users:    users,
		tenant:   linkingtest.NewTenant(users...),
		planPath: planPath,
		plan:     readPlan(t, planPath),
		journal:  filepath.Join(dir, "journal.jsonl"),
	}, s
}

// editPlan rewrites the line n (from 1) of the plan file at path with edit,
// as a person editing the plan would.
func editPlan(t testing.TB, path string, n int, edit func(*backfill.PlanLine)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	var l backfill.PlanLine
	if err := json.Unmarshal([]byte(lines[n-1]), &l); err != nil {
		t.Fatal(err)
	}
	edit(&l)
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	lines[n-1] = string(b) + "\n"
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// applyFile reads the plan at path and applies it with a, as a program does.
func applyFile(a *backfill.Applier, path, journal string) (backfill.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return backfill.Report{}, err
	}
	defer f.Close()
	pl, err := backfill.ReadPlan(f)
	if err != nil {
		return backfill.Report{}, err
	}
	return a.Apply(context.Background(), pl, journal)
}

// checkRefused checks that err is the refusal of the plan line line, as
// unsafe, with a message that holds text.
func checkRefused(t testing.TB, err error, line int, text string) {
	t.Helper()
	var le *backfill.LineError
	if !errors.As(err, &le) || !errors.Is(err, backfill.ErrUnsafePlan) {
		t.Fatalf("got %v, want an unsafe plan line", err)
	}
	if le.Input != "plan" || le.Line != line {
		t.Errorf("got %s line %d, want plan line %d (%v)", le.Input, le.Line, line, err)
	}
	if !strings.Contains(err.Error(), text) {
		t.Errorf("got message %q, want it to mention %q", err, text)
	}
}
