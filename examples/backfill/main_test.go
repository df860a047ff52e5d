package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/idlink/linking"
	"github.com/idlink/linking/backfill"
	"github.com/idlink/linking/backfill/backfilltest"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt/mgmttest"
)

var update = flag.Bool("update", false, "rewrite testdata/users.json")

// testdataSpec is the tenant of testdata/users.json: two groups of each kind.
var testdataSpec = backfilltest.Spec{Seed: 1, Users: 50, Groups: 2}

// TestTestdataUsers: testdata/users.json holds the generated tenant, as a
// JSON array like GET /api/v2/users answers (go test -update rewrites it).
func TestTestdataUsers(t *testing.T) {
	var lines bytes.Buffer
	if err := testdataSpec.WriteExport(&lines); err != nil {
		t.Fatal(err)
	}
	want := "[\n" + strings.Join(strings.Split(strings.TrimSpace(lines.String()), "\n"), ",\n") + "\n]\n"
	path := filepath.Join("testdata", "users.json")
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("%s is not the generated tenant; run go test -update (-want +got):\n%s", path, diff)
	}
}

// loadTenant returns a tenant with the users of testdata/users.json.
func loadTenant(t *testing.T) (*linkingtest.Tenant, []linking.User) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var users []linking.User
	for u, err := range backfill.ReadExport(f) {
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	return linkingtest.NewTenant(users...), users
}

type cli struct {
	t    *testing.T
	srv  *mgmttest.Server
	dir  string
	args []string // client flags
}

func newCLI(t *testing.T, tenant *linkingtest.Tenant, opts ...mgmttest.Option) *cli {
	srv := mgmttest.NewServer(tenant, opts...)
	t.Cleanup(srv.Close)
	return &cli{
		t: t, srv: srv, dir: t.TempDir(),
		args: []string{"-domain", srv.Domain(), "-insecure-http", "-client-id", srv.ClientID(), "-client-secret", srv.ClientSecret()},
	}
}

func (c *cli) path(name string) string { return filepath.Join(c.dir, name) }

// run runs the command and returns its exit code and outputs.
func (c *cli) run(ctx context.Context, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// apply runs apply or undo with the client flags and the files of c.
func (c *cli) apply(ctx context.Context, cmd string, more ...string) (int, string, string) {
	args := append([]string{cmd}, c.args...)
	args = append(args, "-plan", c.path("plan.jsonl"), "-journal", c.path("journal.jsonl"), "-rate", "1000",
		"-trust-providers", "auth0,email,google-oauth2")
	if cmd == "undo" {
		args = slices.DeleteFunc(args, func(s string) bool { return s == "-trust-providers" || s == "auth0,email,google-oauth2" })
	}
	return c.run(ctx, append(args, more...)...)
}

var userOpts = cmp.Options{
	cmpopts.IgnoreFields(linking.Identity{}, "ProfileData"),
	cmpopts.IgnoreFields(linking.User{}, "CreatedAt"),
	cmpopts.SortSlices(func(a, b linking.User) bool { return a.ID < b.ID }),
	cmpopts.EquateEmpty(),
}

// TestWalkthrough runs the README's walk-through against the emulator:
// export, plan, dry run, apply, a rerun that has nothing left to do, undo;
// the tenant ends as it began.
func TestWalkthrough(t *testing.T) {
	tenant, users := loadTenant(t)
	c := newCLI(t, tenant)
	ctx := context.Background()
	links := len(testdataSpec.Expected().Links)

	exportArgs := append([]string{"export", "-out", c.path("export.json.gz")}, c.args...)
	code, out, errOut := c.run(ctx, exportArgs...)
	if code != exitDone || !strings.Contains(out, "exported") {
		t.Fatalf("export: exit %d, want %d: %s %s", code, exitDone, out, errOut)
	}
	if n := c.srv.Requests(mgmttest.RouteCreateExport); n != 1 {
		t.Errorf("export: got %d export jobs, want 1", n)
	}
	c.srv.ResetRequests()

	code, out, errOut = c.run(ctx, "plan", "-in", c.path("export.json.gz"), "-out", c.path("plan.jsonl"),
		"-summary", c.path("summary.json"), "-trust-providers", "auth0,email,google-oauth2")
	if code != exitDone {
		t.Fatalf("plan: exit %d, want %d: %s", code, exitDone, errOut)
	}
	if !strings.Contains(out, "plan: 6 groups, 6 links, 2 members left unlinked") {
		t.Errorf("plan output %q does not say 6 groups and links", out)
	}
	if _, err := os.Stat(c.path("summary.json")); err != nil {
		t.Errorf("summary: %v", err)
	}

	code, out, errOut = c.apply(ctx, "apply")
	if code != exitDone || !strings.Contains(out, "dry run: 6 links in all, 0 already done, 6 to do") {
		t.Errorf("dry run: exit %d, output %q %q", code, out, errOut)
	}
	if n := c.srv.APIRequests(); n != 0 {
		t.Errorf("dry run: got %d API requests, want none", n)
	}

	code, out, errOut = c.apply(ctx, "apply", "-apply")
	if code != exitDone {
		t.Fatalf("apply: exit %d, want %d: %s %s", code, exitDone, out, errOut)
	}
	if got := c.srv.Requests(mgmttest.RouteLink); got != links || c.srv.APIRequests() != links {
		t.Errorf("apply: got %d link requests and %d in all, want %d and %d", got, c.srv.APIRequests(), links, links)
	}
	if !strings.Contains(out, "apply: 6 links done") {
		t.Errorf("apply output %q", out)
	}

	code, out, _ = c.apply(ctx, "apply", "-apply")
	if code != exitDone || !strings.Contains(out, "0 links done (0 confirmed by reading back), 6 already done") {
		t.Errorf("rerun: exit %d, output %q", code, out)
	}

	code, out, errOut = c.apply(ctx, "undo", "-apply")
	if code != exitDone {
		t.Fatalf("undo: exit %d: %s %s", code, out, errOut)
	}
	if diff := cmp.Diff(users, tenant.Users(), userOpts); diff != "" {
		t.Errorf("tenant after undo (-want +got):\n%s", diff)
	}
}

// TestExitCodes: each outcome has its documented exit code, and a refused
// input writes nothing.
func TestExitCodes(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		// setup prepares the files and the tenant; it returns the ctx
		// and the arguments of the command to check.
		setup func(c *cli, tenant *linkingtest.Tenant) (context.Context, []string)
		opts  []mgmttest.Option
		code  int
		text  string
		// noJournal, noPlan: the journal, the plan must not exist
		// afterwards.
		noJournal, noPlan bool
	}{
		{
			name:  "unknown command",
			setup: func(c *cli, _ *linkingtest.Tenant) (context.Context, []string) { return nil, []string{"merge"} },
			code:  exitRefused, text: "unknown command",
		},
		{
			name: "malformed export",
			setup: func(c *cli, _ *linkingtest.Tenant) (context.Context, []string) {
				os.WriteFile(c.path("bad.json"), []byte("{\"user_id\":\"auth0|1\"\n{oops\n"), 0o600)
				os.Remove(c.path("plan.jsonl"))
				return nil, []string{"plan", "-in", c.path("bad.json"), "-out", c.path("plan.jsonl")}
			},
			code: exitRefused, text: "export line 1", noPlan: true,
		},
		{
			name: "unsafe plan",
			setup: func(c *cli, _ *linkingtest.Tenant) (context.Context, []string) {
				data, _ := os.ReadFile(c.path("plan.jsonl"))
				lines := strings.SplitAfter(string(data), "\n")
				lines[1] = strings.Replace(lines[1], `"email_verified":true`, `"email_verified":false`, 1)
				os.WriteFile(c.path("plan.jsonl"), []byte(strings.Join(lines, "")), 0o600)
				return nil, []string{"apply", "-apply"}
			},
			code: exitRefused, text: "plan line 2", noJournal: true,
		},
		{
			name: "journal of another tenant",
			setup: func(c *cli, _ *linkingtest.Tenant) (context.Context, []string) {
				os.WriteFile(c.path("journal.jsonl"), []byte(`{"kind":"header","time":"2024-01-01T00:00:00Z","version":1,"tenant":"prod.eu.auth0.com","plan":"sha256:00"}`+"\n"), 0o600)
				return nil, []string{"undo", "-apply"}
			},
			code: exitRefused, text: `tenant "prod.eu.auth0.com"`,
		},
		{
			name: "interrupted",
			setup: func(c *cli, _ *linkingtest.Tenant) (context.Context, []string) {
				return canceled, []string{"apply", "-apply"}
			},
			code: exitIncomplete, text: "run the same command again",
		},
		{
			name: "a link refused by the tenant",
			setup: func(c *cli, tenant *linkingtest.Tenant) (context.Context, []string) {
				f, _ := os.Open(c.path("plan.jsonl"))
				pl, _ := backfill.ReadPlan(f)
				f.Close()
				tenant.DeleteUser(context.Background(), pl.Lines[0].Secondaries[0].ID)
				return nil, []string{"apply", "-apply"}
			},
			code: exitFailures, text: "",
		},
		{
			name: "application without the update:users scope",
			opts: []mgmttest.Option{mgmttest.WithScopes("read:users")},
			setup: func(c *cli, _ *linkingtest.Tenant) (context.Context, []string) {
				return nil, []string{"apply", "-apply"}
			},
			code: exitError, text: "403",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant, _ := loadTenant(t)
			c := newCLI(t, tenant, tt.opts...)
			code, _, errOut := c.run(context.Background(), "plan", "-in", filepath.Join("testdata", "users.json"),
				"-out", c.path("plan.jsonl"), "-trust-providers", "auth0,email,google-oauth2")
			if code != exitDone {
				t.Fatalf("plan: exit %d: %s", code, errOut)
			}
			ctx, args := tt.setup(c, tenant)
			if ctx == nil {
				ctx = context.Background()
			}
			var out string
			if args[0] == "apply" || args[0] == "undo" {
				code, out, errOut = c.apply(ctx, args[0], args[1:]...)
			} else {
				code, out, errOut = c.run(ctx, args...)
			}
			if code != tt.code {
				t.Errorf("got exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(errOut, tt.text) {
				t.Errorf("stderr %q does not mention %q", errOut, tt.text)
			}
			if tt.noPlan {
				for _, name := range []string{"plan.jsonl", "plan.jsonl.tmp"} {
					if _, err := os.Stat(c.path(name)); err == nil {
						t.Errorf("%s was written", name)
					}
				}
			}
			if tt.noJournal {
				if _, err := os.Stat(c.path("journal.jsonl")); err == nil {
					t.Errorf("a journal was written")
				}
				if n := c.srv.Requests(mgmttest.RouteLink); n != 0 {
					t.Errorf("got %d link requests, want none", n)
				}
			}
		})
	}
}

// TestProgressLine formats the progress with the rate of the run and the
// time left.
func TestProgressLine(t *testing.T) {
	tests := []struct {
		pr   backfill.Progress
		want string
	}{
		{backfill.Progress{Done: 0, Total: 10}, "0/10 links   "},
		{backfill.Progress{Done: 120, Total: 1000, DoneThisRun: 100, Elapsed: 2 * time.Second}, "120/1000 links  50.0/s  ETA 18s   "},
	}
	for _, tt := range tests {
		if got := progressLine(tt.pr, "links"); got != tt.want {
			t.Errorf("progressLine(%+v): got %q, want %q", tt.pr, got, tt.want)
		}
	}
}
