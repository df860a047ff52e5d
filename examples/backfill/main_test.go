package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/idlink/linking"
	"github.com/idlink/linking/backfill"
	"github.com/idlink/linking/backfill/backfilltest"
	"github.com/idlink/linking/examples/internal/cli"
	"github.com/idlink/linking/examples/internal/clitest"
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
	users := readExport(t, filepath.Join("testdata", "users.json"))
	return linkingtest.NewTenant(users...), users
}

type rig struct {
	t    *testing.T
	srv  *mgmttest.Server
	dir  string
	args []string // client flags
}

func newRig(t *testing.T, tenant *linkingtest.Tenant, opts ...mgmttest.Option) *rig {
	srv := mgmttest.NewServer(tenant, opts...)
	t.Cleanup(srv.Close)
	return &rig{
		t: t, srv: srv, dir: t.TempDir(),
		args: []string{"-domain", srv.Domain(), "-insecure-http", "-client-id", srv.ClientID(), "-client-secret", srv.ClientSecret()},
	}
}

func (c *rig) path(name string) string { return filepath.Join(c.dir, name) }

// makePlan plans testdata/users.json into the plan of c, trusting Google
// as the walk-through does, with more flags.
func (c *rig) makePlan(more ...string) {
	c.t.Helper()
	args := append([]string{"plan", "-in", filepath.Join("testdata", "users.json"), "-out", c.path("plan.jsonl"),
		"-trust-providers", "auth0,email,google-oauth2"}, more...)
	if code, _, errOut := c.run(context.Background(), args...); code != exitDone {
		c.t.Fatalf("plan: exit %d: %s", code, errOut)
	}
}

// plan reads the plan of c.
func (c *rig) plan() *backfill.Plan {
	c.t.Helper()
	f, err := os.Open(c.path("plan.jsonl"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	pl, err := backfill.ReadPlan(f)
	if err != nil {
		c.t.Fatal(err)
	}
	return pl
}

// run runs the command and returns its exit code and outputs.
func (c *rig) run(ctx context.Context, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// apply runs apply or undo with the client flags and the files of c.
func (c *rig) apply(ctx context.Context, cmd string, more ...string) (int, string, string) {
	args := append([]string{cmd}, c.args...)
	args = append(args, "-journal", c.path("journal.jsonl"), "-rate", "1000")
	if cmd == "apply" {
		args = append(args, "-plan", c.path("plan.jsonl"), "-trust-providers", "auth0,email,google-oauth2")
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
	c := newRig(t, tenant)
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
	if code != exitDone || !strings.Contains(out, "dry run: 6 links in all, 0 already done, 0 skipped, 6 to do") {
		t.Errorf("dry run: exit %d, output %q %q", code, out, errOut)
	}
	if n := c.srv.APIRequests(); n != 0 {
		t.Errorf("dry run: got %d API requests, want none", n)
	}

	code, out, errOut = c.apply(ctx, "apply", "-apply")
	if code != exitDone {
		t.Fatalf("apply: exit %d, want %d: %s %s", code, exitDone, out, errOut)
	}
	// Each link: the primary and the secondary read, then the link.
	if got := c.srv.Requests(mgmttest.RouteLink); got != links || c.srv.APIRequests() != 3*links {
		t.Errorf("apply: got %d link requests and %d in all, want %d and %d", got, c.srv.APIRequests(), links, 3*links)
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
		setup func(c *rig, tenant *linkingtest.Tenant) (context.Context, []string)
		opts  []mgmttest.Option
		code  int
		// text must be in the standard error, notText not; stdout must
		// be in the standard output.
		text, notText, stdout string
		// noJournal, noPlan, noExport: the journal, the plan, the export
		// must not exist afterwards.
		noJournal, noPlan, noExport bool
	}{
		{
			name: "malformed export",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				os.WriteFile(c.path("bad.json"), []byte("{\"user_id\":\"auth0|1\"\n{oops\n"), 0o600)
				os.Remove(c.path("plan.jsonl"))
				return nil, []string{"plan", "-in", c.path("bad.json"), "-out", c.path("plan.jsonl")}
			},
			code: exitError, text: "export line 1", noPlan: true,
		},
		{
			name: "unsafe plan",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				data, _ := os.ReadFile(c.path("plan.jsonl"))
				lines := strings.SplitAfter(string(data), "\n")
				lines[1] = strings.Replace(lines[1], `"email_verified":true`, `"email_verified":false`, 1)
				os.WriteFile(c.path("plan.jsonl"), []byte(strings.Join(lines, "")), 0o600)
				return nil, []string{"apply", "-apply"}
			},
			code: exitError, text: "plan line 2", noJournal: true,
		},
		{
			name: "journal of another tenant",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				os.WriteFile(c.path("journal.jsonl"), []byte(`{"kind":"header","time":"2024-01-01T00:00:00Z","version":1,"tenant":"prod.eu.auth0.com","plan":"sha256:00"}`+"\n"), 0o600)
				return nil, []string{"undo", "-apply"}
			},
			code: exitError, text: `tenant "prod.eu.auth0.com"`,
		},
		{
			name: "interrupted",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				return canceled, []string{"apply", "-apply"}
			},
			code: exitIncomplete, text: "run the same command again",
		},
		{
			name: "a link refused by the tenant",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				c.srv.FailNext(mgmttest.RouteLink, 1, http.StatusConflict)
				return nil, []string{"apply", "-apply"}
			},
			code: exitFailures, stdout: "failed: plan line 1: ",
		},
		{
			name: "a secondary blocked since the plan",
			setup: func(c *rig, tenant *linkingtest.Tenant) (context.Context, []string) {
				s := c.plan().Lines[1].Secondaries[0].ID
				tenant.UpdateUser(context.Background(), s, func(u *linking.User) error { u.Blocked = true; return nil })
				return nil, []string{"apply", "-apply"}
			},
			code: exitFailures, stdout: ": login_blocked\n",
		},
		{
			name: "a primary made unverified since the plan",
			setup: func(c *rig, tenant *linkingtest.Tenant) (context.Context, []string) {
				p := c.plan().Lines[0].Primary.ID
				tenant.UpdateUser(context.Background(), p, func(u *linking.User) error { u.EmailVerified = false; return nil })
				return nil, []string{"apply", "-apply"}
			},
			code: exitFailures, stdout: "primary_ineligible (primary: email_unverified)",
		},
		{
			name: "primary and secondary swapped in the plan",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				data, _ := os.ReadFile(c.path("plan.jsonl"))
				lines := strings.SplitAfter(string(data), "\n")
				var l backfill.PlanLine
				json.Unmarshal([]byte(lines[0]), &l)
				l.Primary, l.Secondaries[0] = l.Secondaries[0], l.Primary
				b, _ := json.Marshal(l)
				lines[0] = string(b) + "\n"
				os.WriteFile(c.path("plan.jsonl"), []byte(strings.Join(lines, "")), 0o600)
				return nil, []string{"apply", "-apply"}
			},
			code: exitError, text: "plan line 1: unsafe plan: primary_not_chosen", noJournal: true,
		},
		{
			name: "apply without the plan's -prefer-connections",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				c.makePlan("-force", "-prefer-connections", "email")
				return nil, []string{"apply", "-apply"}
			},
			code: exitError, text: "primary_not_chosen", noJournal: true,
		},
		{
			name: "apply with the plan's -prefer-connections",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				c.makePlan("-force", "-prefer-connections", "email")
				return nil, []string{"apply", "-apply", "-prefer-connections", "email"}
			},
			code: exitDone, stdout: "apply: 6 links done",
		},
		{
			name: "apply without the plan's -select",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				c.makePlan("-force", "-select", "oldest")
				return nil, []string{"apply", "-apply"}
			},
			code: exitError, text: "plan line 1: unsafe plan: primary_not_chosen: the line was planned with a selector", noJournal: true,
		},
		{
			name: "apply with -select, of a plan made without",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				return nil, []string{"apply", "-apply", "-select", "oldest"}
			},
			code: exitError, text: "plan line 1: unsafe plan: primary_not_chosen: the line was planned without a selector", noJournal: true,
		},
		{
			// With a selector, groups of three are merged whole, and
			// the oldest user is the primary where another would be
			// ambiguous.
			name: "apply with the plan's -select",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				c.makePlan("-force", "-select", "oldest")
				return nil, []string{"apply", "-apply", "-select", "oldest"}
			},
			code: exitDone, stdout: "apply: 10 links done",
		},
		{
			name: "plan and journal the same file",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				return nil, []string{"apply", "-apply", "-journal", c.path("plan.jsonl")}
			},
			code: exitError, text: "-plan and -journal name the same file",
		},
		{
			name: "wrong client secret: apply",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				return nil, []string{"apply", "-apply", "-client-secret", "wrong"}
			},
			code: exitConfig, text: "401", notText: "run the same command again", noJournal: true,
		},
		{
			name: "wrong client secret: undo",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				return nil, []string{"undo", "-apply", "-client-secret", "wrong"}
			},
			code: exitConfig, text: "401", notText: "run the same command again", noJournal: true,
		},
		{
			name: "wrong client secret: export",
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				return nil, append([]string{"export", "-out", c.path("export.json.gz")}, append(c.args, "-client-secret", "wrong")...)
			},
			code: exitConfig, text: "401", notText: "run the same command again", noExport: true,
		},
		{
			name: "application without the update:users scope",
			opts: []mgmttest.Option{mgmttest.WithScopes("read:users", "read:connections")},
			setup: func(c *rig, _ *linkingtest.Tenant) (context.Context, []string) {
				return nil, []string{"apply", "-apply"}
			},
			code: exitConfig, text: "lacks the scopes update:users", noJournal: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant, _ := loadTenant(t)
			c := newRig(t, tenant, tt.opts...)
			c.makePlan()
			ctx, args := tt.setup(c, tenant)
			if ctx == nil {
				ctx = context.Background()
			}
			var code int
			var out, errOut string
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
			prefix := "backfill " + args[0] + ": "
			for _, line := range strings.Split(strings.TrimSuffix(errOut, "\n"), "\n") {
				if errOut != "" && !strings.HasPrefix(line, prefix) {
					t.Errorf("stderr line %q does not begin with %q", line, prefix)
				}
			}
			if tt.notText != "" && strings.Contains(errOut, tt.notText) {
				t.Errorf("stderr %q mentions %q", errOut, tt.notText)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout %q does not mention %q", out, tt.stdout)
			}
			if tt.noPlan {
				if _, err := os.Stat(c.path("plan.jsonl")); err == nil {
					t.Errorf("plan.jsonl was written")
				}
			}
			if tt.noExport {
				if _, err := os.Stat(c.path("export.json.gz")); err == nil {
					t.Errorf("export.json.gz was written")
				}
			}
			if tmp, _ := filepath.Glob(c.path("*.tmp")); len(tmp) > 0 {
				t.Errorf("temporary files left: %v", tmp)
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
// time left, once the run has lasted a second.
func TestProgressLine(t *testing.T) {
	tests := []struct {
		name string
		pr   backfill.Progress
		want string
	}{
		{"nothing done", backfill.Progress{Done: 0, Total: 10}, "0/10 links"},
		{"under a second", backfill.Progress{Done: 1, Total: 10, DoneThisRun: 1, Elapsed: 5 * time.Millisecond}, "1/10 links"},
		{"done before", backfill.Progress{Done: 4, Total: 10, Elapsed: 2 * time.Second}, "4/10 links"},
		{"rate and time left", backfill.Progress{Done: 120, Total: 1000, DoneThisRun: 100, Elapsed: 2 * time.Second}, "120/1000 links, 50.0/s, ETA 18s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := progressLine(tt.pr, "links"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestProgress: away from a terminal, progress is a log line at the first
// link, then one per interval; on a terminal, one line rewritten in place,
// with the last link shown, ended by a newline.
func TestProgress(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Links done at these seconds of the run, of 5.
	at := []time.Duration{0, 1 * time.Second, 6 * time.Second, 7 * time.Second, 12 * time.Second}
	tests := []struct {
		mode string
		want string
	}{
		{"log", "p: 1/5 links\np: 3/5 links, 0.5/s, ETA 4s\np: 5/5 links, 0.4/s, ETA 0s\n"},
		{"tty", "\r1/5 links   \r3/5 links, 0.5/s, ETA 4s   \r5/5 links, 0.4/s, ETA 0s   \n"},
		{"off", ""},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			var stderr bytes.Buffer
			p := newProgress(tt.mode, &stderr, cli.Prefix(&stderr, "p: "), "links")
			var now time.Time
			if p != nil {
				p.every = 5 * time.Second
				p.now = func() time.Time { return now }
				for i, d := range at {
					now = start.Add(d)
					p.update(backfill.Progress{Done: i + 1, Total: len(at), DoneThisRun: i + 1, Elapsed: d})
				}
			}
			p.end()
			if diff := cmp.Diff(tt.want, stderr.String()); diff != "" {
				t.Errorf("progress (-want +got):\n%s", diff)
			}
		})
	}
	// A buffer is not a terminal.
	if p := newProgress("auto", new(bytes.Buffer), io.Discard, "links"); p == nil || p.live {
		t.Errorf("auto on a buffer: got %+v, want log lines", p)
	}
}

// TestCallRate: the rate of the calls after the first over the run's time,
// never above the limit the calls were made at; nothing under a second.
func TestCallRate(t *testing.T) {
	tests := []struct {
		calls   int
		elapsed time.Duration
		want    string
	}{
		{1, 5 * time.Millisecond, ""},
		{18, 900 * time.Millisecond, ""},
		{1, 3 * time.Second, ""},
		// 6 calls at 2/s with a burst of 1: the first at once, then one
		// every 0.5 s.
		{6, 2500 * time.Millisecond, " (2.0/s)"},
		{18, 8513 * time.Millisecond, " (2.0/s)"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d calls in %v", tt.calls, tt.elapsed), func(t *testing.T) {
			if got := callRate(tt.calls, tt.elapsed); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReportRate runs apply at -rate 15 for over a second: the report's
// rate is at most 15/s, and the progress goes to standard error as log
// lines.
func TestReportRate(t *testing.T) {
	tenant, _ := loadTenant(t)
	c := newRig(t, tenant)
	c.makePlan()
	code, out, errOut := c.apply(context.Background(), "apply", "-apply", "-rate", "15", "-burst", "1")
	if code != exitDone {
		t.Fatalf("apply: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	m := regexp.MustCompile(`\n(\d+) API calls in (\S+) \(([\d.]+)/s\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("report %q: no calls, time and rate", out)
	}
	elapsed, err := time.ParseDuration(m[2])
	if err != nil {
		t.Fatal(err)
	}
	rate, err := strconv.ParseFloat(m[3], 64)
	if err != nil {
		t.Fatal(err)
	}
	if m[1] != "18" || elapsed < time.Second || rate > 15 || rate < 5 {
		t.Errorf("report %q: want 18 calls in over a second at 5 to 15/s", out)
	}
	if !strings.HasPrefix(errOut, "backfill apply: 1/6 links\n") || strings.Contains(errOut, "\r") {
		t.Errorf("stderr %q: want the progress as log lines, the first at the first link", errOut)
	}
}

// TestCommandLine: every command answers -h and -version on standard
// output with exit code 0, lists only the flags it uses, and refuses a
// usage error with exit code 2 and a message prefixed with its name.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		// stdout must be in the standard output, notStdout not; stderr
		// is the whole standard error.
		stdout, notStdout []string
		stderr            string
	}{
		{name: "-h", args: []string{"-h"}, stdout: []string{"Usage:", "backfill generate", "Exit codes:"}},
		{name: "help", args: []string{"help"}, stdout: []string{"Usage:"}},
		{name: "-version", args: []string{"-version"}, stdout: []string{"backfill ", runtime.Version() + "\n"}},
		{
			name: "no command", code: exitUsage,
			stderr: "backfill: no command: want generate, export, plan, apply or undo\nbackfill: run 'backfill -h' for usage\n",
		},
		{name: "generate -h", args: []string{"generate", "-h"}, stdout: []string{"Usage: backfill generate", "-users number", "-seed seed", "-force"}, notStdout: []string{"-domain"}},
		{name: "export -help", args: []string{"export", "-help"}, stdout: []string{"Usage: backfill export", "-domain domain", "-out file"}, notStdout: []string{"-select", "-journal"}},
		{name: "plan -h", args: []string{"plan", "-h"}, stdout: []string{"Usage: backfill plan", "-select preferences", "-trust-providers", "-prefer-connections"}, notStdout: []string{"-domain", "-rate"}},
		{name: "apply -h", args: []string{"apply", "-h"}, stdout: []string{"Usage: backfill apply", "-plan file", "-select preferences", "-progress mode", "-domain domain"}, notStdout: []string{"-force", "-in "}},
		{name: "undo -h", args: []string{"undo", "-h"}, stdout: []string{"Usage: backfill undo", "-journal file", "-progress mode"}, notStdout: []string{"-plan", "-select", "-trust-providers", "unused"}},
		{name: "plan -version", args: []string{"plan", "-version"}, stdout: []string{"backfill ", runtime.Version() + "\n"}},
		{name: "undo -version", args: []string{"undo", "-version"}, stdout: []string{"backfill "}},
		{
			name: "unknown flag", args: []string{"plan", "-in", "x", "-bogus"}, code: exitUsage,
			stderr: "backfill plan: flag provided but not defined: -bogus\nbackfill plan: run 'backfill plan -h' for usage\n",
		},
		{
			name: "undo has no -plan", args: []string{"undo", "-plan", "plan.jsonl"}, code: exitUsage,
			stderr: "backfill undo: flag provided but not defined: -plan\nbackfill undo: run 'backfill undo -h' for usage\n",
		},
		{
			name: "plan without -in", args: []string{"plan"}, code: exitUsage,
			stderr: "backfill plan: -in is required\nbackfill plan: run 'backfill plan -h' for usage\n",
		},
		{
			name: "an unknown preference", args: []string{"plan", "-in", "x", "-select", "newest"}, code: exitUsage,
			stderr: "backfill plan: -select \"newest\": linking: unknown preference \"newest\": want oldest, connection:NAME or provider:NAME\nbackfill plan: run 'backfill plan -h' for usage\n",
		},
		{
			name: "a loose provider", args: []string{"apply", "-domain", "example.eu.auth0.com", "-trust-providers", "auth0,oidc"}, code: exitUsage,
			stderr: "backfill apply: -trust-providers: oidc lets its administrators mark any email verified, so it is never trusted; trust the single connections you administer with -trust-connections\nbackfill apply: run 'backfill apply -h' for usage\n",
		},
		{
			name: "-select and -prefer-connections", args: []string{"plan", "-in", "x", "-select", "oldest", "-prefer-connections", "email"}, code: exitUsage,
			stderr: "backfill plan: -prefer-connections and -select do not go together: with -select, name the connections in it, e.g. -select connection:email,oldest\nbackfill plan: run 'backfill plan -h' for usage\n",
		},
		{
			name: "apply without a domain", args: []string{"apply", "-domain", ""}, code: exitUsage,
			stderr: "backfill apply: -domain or AUTH0_DOMAIN is required: the journal is bound to the tenant\nbackfill apply: run 'backfill apply -h' for usage\n",
		},
		{
			name: "a rate of zero", args: []string{"undo", "-domain", "example.eu.auth0.com", "-rate", "0"}, code: exitUsage,
			stderr: "backfill undo: -rate 0 must be positive\nbackfill undo: run 'backfill undo -h' for usage\n",
		},
		{
			name: "an unknown progress mode", args: []string{"apply", "-domain", "example.eu.auth0.com", "-progress", "bar"}, code: exitUsage,
			stderr: "backfill apply: -progress \"bar\": want auto, tty, log, off\nbackfill apply: run 'backfill apply -h' for usage\n",
		},
		{
			name: "export of a malformed domain", args: []string{"export", "-domain", "https://example.eu.auth0.com", "-client-id", "id", "-client-secret", "s", "-out", "{dir}/export.json.gz"}, code: exitUsage,
			stderr: "backfill export: -domain: mgmt: configuration error: the domain \"https://example.eu.auth0.com\" has a scheme; give the tenant's host name alone, e.g. example.eu.auth0.com\nbackfill export: run 'backfill export -h' for usage\n",
		},
		{
			name: "generate without users", args: []string{"generate"}, code: exitUsage,
			stderr: "backfill generate: -users must be positive\nbackfill generate: run 'backfill generate -h' for usage\n",
		},
		{
			name: "generate too few users for the groups", args: []string{"generate", "-users", "10", "-out", "{dir}/t.json.gz"}, code: exitUsage,
			stderr: "backfill generate: -users 10, -groups 1: backfilltest: 10 users cannot hold 1 groups of each kind (18 users)\nbackfill generate: run 'backfill generate -h' for usage\n",
		},
		{name: "unknown command", args: []string{"merge"}, code: exitUsage, stderr: "backfill: unknown command \"merge\": want generate, export, plan, apply or undo\nbackfill: run 'backfill -h' for usage\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var args []string
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "{dir}", dir))
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, &stdout, &stderr)
			clitest.Result{Code: code, Stdout: stdout.String(), Stderr: stderr.String()}.Expect(t, tt.code, tt.stdout...)
			for _, unwanted := range tt.notStdout {
				if strings.Contains(stdout.String(), unwanted) {
					t.Errorf("stdout has %q:\n%s", unwanted, stdout.String())
				}
			}
			if diff := cmp.Diff(tt.stderr, stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Errorf("files written: %v", entries)
			}
		})
	}
}

// readExport returns the users of the export file path.
func readExport(t *testing.T, path string) []linking.User {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readUsers(t, f)
}

// specUsers returns the users of spec as an export gives them back (with
// json.Number metadata).
func specUsers(t *testing.T, spec backfilltest.Spec) []linking.User {
	t.Helper()
	var b bytes.Buffer
	if err := spec.WriteExport(&b); err != nil {
		t.Fatal(err)
	}
	return readUsers(t, &b)
}

func readUsers(t *testing.T, r io.Reader) []linking.User {
	t.Helper()
	var users []linking.User
	for u, err := range backfill.ReadExport(r) {
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	return users
}

// TestGenerate: generate writes the users of its spec as a gzipped export,
// and refuses to replace a file without -force.
func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "tenant.json.gz")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"generate", "-users", "200", "-seed", "3", "-out", out}, &stdout, &stderr); code != exitDone {
		t.Fatalf("generate: exit %d: %s", code, stderr.String())
	}
	if want := "generated 200 users, 2 duplicate groups of each of 8 kinds, in "; !strings.HasPrefix(stdout.String(), want) {
		t.Errorf("stdout: got %q, want %q first", stdout.String(), want)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		t.Errorf("%s is not gzipped", out)
	}
	want := specUsers(t, backfilltest.Spec{Seed: 3, Users: 200, Groups: 2})
	if diff := cmp.Diff(want, readExport(t, out), userOpts); diff != "" {
		t.Errorf("generated users (-want +got):\n%s", diff)
	}

	stderr.Reset()
	code := run(context.Background(), []string{"generate", "-users", "100", "-out", out}, io.Discard, &stderr)
	if wantErr := "backfill generate: -out: " + out + " exists: give -force to replace it\nbackfill generate: nothing written\n"; code != exitError || stderr.String() != wantErr {
		t.Errorf("generate onto the file: got exit %d and %q, want %d and %q", code, stderr.String(), exitError, wantErr)
	}
	if now, _ := os.ReadFile(out); !bytes.Equal(now, data) {
		t.Errorf("the file changed without -force")
	}
	if code := run(context.Background(), []string{"generate", "-users", "100", "-out", out, "-force"}, io.Discard, &stderr); code != exitDone {
		t.Errorf("generate -force: exit %d: %s", code, stderr.String())
	}
	if got := len(readExport(t, out)); got != 100 {
		t.Errorf("after -force: got %d users, want 100", got)
	}
}

// TestRehearsal runs the programs as the README's rehearsal does: generate
// a tenant, serve it with the emulator program, export it with backfill
// export, and plan it: the plan links what the generated tenant holds to
// link.
func TestRehearsal(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	spec := backfilltest.Spec{Seed: 7, Users: 300, Groups: 3}
	tenant := filepath.Join(dir, "tenant.json.gz")
	if code, _, errOut := (&rig{t: t}).run(ctx, "generate", "-users", "300", "-seed", "7", "-out", tenant); code != exitDone {
		t.Fatalf("generate: exit %d: %s", code, errOut)
	}

	emulator := clitest.Start(t, clitest.Build(t, "../emulator"), "-users", tenant)
	domain := strings.TrimPrefix(emulator.Line, "http://")

	code, out, errOut := (&rig{t: t}).run(ctx, "export", "-domain", domain, "-insecure-http",
		"-client-id", mgmttest.DefaultClientID, "-client-secret", mgmttest.DefaultClientSecret, "-out", filepath.Join(dir, "export.json.gz"))
	if code != exitDone {
		t.Fatalf("export: exit %d: %s %s", code, out, errOut)
	}
	if diff := cmp.Diff(specUsers(t, spec), readExport(t, filepath.Join(dir, "export.json.gz")), userOpts); diff != "" {
		t.Errorf("exported users (-want +got):\n%s", diff)
	}
	code, out, errOut = (&rig{t: t}).run(ctx, "plan", "-in", filepath.Join(dir, "export.json.gz"), "-out", filepath.Join(dir, "plan.jsonl"),
		"-trust-providers", "auth0,email,google-oauth2")
	if code != exitDone {
		t.Fatalf("plan: exit %d: %s %s", code, out, errOut)
	}
	f, err := os.Open(filepath.Join(dir, "plan.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	plan, err := backfill.ReadPlan(f)
	if err != nil {
		t.Fatal(err)
	}
	links := make(map[string]string)
	for _, l := range plan.Lines {
		for _, s := range l.Secondaries {
			links[s.ID] = l.Primary.ID
		}
	}
	if diff := cmp.Diff(spec.Expected().Links, links); diff != "" {
		t.Errorf("planned links (-want +got):\n%s", diff)
	}
}

// TestOutputs: no command overwrites a file that exists unless -force is
// given, never a journal (the only copy of the metadata Auth0 discards on
// link), and never one of its own inputs or outputs; a refused command
// writes nothing, and leaves no temporary file.
func TestOutputs(t *testing.T) {
	users := filepath.Join("testdata", "users.json")
	tests := []struct {
		name string
		// setup writes the files the command finds; args are the
		// command's, with {dir} for the directory of the files.
		setup func(t *testing.T, c *rig)
		args  []string
		code  int
		text  string
		// kept are the files the command must leave as they were.
		kept []string
	}{
		{
			name: "plan -out onto the export",
			args: []string{"plan", "-in", "{dir}/export.json", "-out", "{dir}/export.json"},
			code: exitError, text: "-in and -out name the same file", kept: []string{"export.json"},
		},
		{
			name: "plan -out onto a link to the export",
			setup: func(t *testing.T, c *rig) {
				if err := os.Symlink(c.path("export.json"), c.path("plan.jsonl")); err != nil {
					t.Fatal(err)
				}
			},
			args: []string{"plan", "-in", "{dir}/export.json", "-out", "{dir}/plan.jsonl", "-force"},
			code: exitError, text: "-in and -out name the same file", kept: []string{"export.json"},
		},
		{
			name: "plan -summary onto the plan",
			args: []string{"plan", "-in", "{dir}/export.json", "-out", "{dir}/plan.jsonl", "-summary", "{dir}/plan.jsonl"},
			code: exitError, text: "-out and -summary name the same file",
		},
		{
			name:  "plan -summary onto an existing plan",
			setup: func(t *testing.T, c *rig) { write(t, c.path("old-plan.jsonl"), "{}\n") },
			args:  []string{"plan", "-in", "{dir}/export.json", "-out", "{dir}/plan.jsonl", "-summary", "{dir}/old-plan.jsonl"},
			code:  exitError, text: "old-plan.jsonl exists: give -force", kept: []string{"old-plan.jsonl"},
		},
		{
			name:  "plan -out onto an existing file",
			setup: func(t *testing.T, c *rig) { write(t, c.path("plan.jsonl"), "an older plan\n") },
			args:  []string{"plan", "-in", "{dir}/export.json", "-out", "{dir}/plan.jsonl"},
			code:  exitError, text: "plan.jsonl exists: give -force", kept: []string{"plan.jsonl"},
		},
		{
			name:  "plan -out onto an existing file, with -force",
			setup: func(t *testing.T, c *rig) { write(t, c.path("plan.jsonl"), "an older plan\n") },
			args:  []string{"plan", "-in", "{dir}/export.json", "-out", "{dir}/plan.jsonl", "-force"},
			code:  exitDone,
		},
		{
			name:  "plan -out onto a journal, with -force",
			setup: writeJournal,
			args:  []string{"plan", "-in", "{dir}/export.json", "-out", "{dir}/journal.jsonl", "-force"},
			code:  exitError, text: "journal.jsonl is a backfill journal", kept: []string{"journal.jsonl"},
		},
		{
			name:  "export -out onto a journal, with -force",
			setup: writeJournal,
			args:  []string{"export", "-out", "{dir}/journal.jsonl", "-force"},
			code:  exitError, text: "journal.jsonl is a backfill journal", kept: []string{"journal.jsonl"},
		},
		{
			name:  "export -out onto an existing file",
			setup: func(t *testing.T, c *rig) { write(t, c.path("export.json.gz"), "an older export") },
			args:  []string{"export", "-out", "{dir}/export.json.gz"},
			code:  exitError, text: "export.json.gz exists: give -force", kept: []string{"export.json.gz"},
		},
		{
			name:  "a file of the temporary name is left alone",
			setup: func(t *testing.T, c *rig) { write(t, c.path("plan.jsonl.tmp"), "someone's file\n") },
			args:  []string{"plan", "-in", "{dir}/export.json", "-out", "{dir}/plan.jsonl"},
			code:  exitDone, kept: []string{"plan.jsonl.tmp"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant, _ := loadTenant(t)
			c := newRig(t, tenant)
			data, err := os.ReadFile(users)
			if err != nil {
				t.Fatal(err)
			}
			write(t, c.path("export.json"), string(data))
			if tt.setup != nil {
				tt.setup(t, c)
			}
			before := make(map[string]string)
			for _, name := range tt.kept {
				b, err := os.ReadFile(c.path(name))
				if err != nil {
					t.Fatal(err)
				}
				before[name] = string(b)
			}
			var args []string
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "{dir}", c.dir))
			}
			if args[0] == "export" {
				args = append(args, c.args...)
			}

			code, out, errOut := c.run(context.Background(), args...)
			if code != tt.code {
				t.Errorf("got exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(errOut, tt.text) {
				t.Errorf("stderr %q does not mention %q", errOut, tt.text)
			}
			for name, want := range before {
				got, err := os.ReadFile(c.path(name))
				if err != nil || string(got) != want {
					t.Errorf("%s changed: got %q (%v), want %q", name, got, err, want)
				}
			}
			if tt.code != exitDone && c.srv.APIRequests() != 0 {
				t.Errorf("a refused command sent %d API requests", c.srv.APIRequests())
			}
			if tmp, _ := filepath.Glob(c.path(".*.tmp")); len(tmp) > 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeJournal writes journal.jsonl: the journal of an apply.
func writeJournal(t *testing.T, c *rig) {
	t.Helper()
	c.makePlan()
	code, _, errOut := c.apply(context.Background(), "apply", "-apply")
	if code != exitDone {
		t.Fatalf("apply: exit %d: %s", code, errOut)
	}
	c.srv.ResetRequests()
}

// childEnv names the environment variable that makes the test binary run
// the command of its arguments, as the backfill program does.
const childEnv = "BACKFILL_TEST_RUN_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestJournalLocked runs apply in another process and, while it holds the
// journal, apply and undo here: they are refused at once with their exit
// code and a message naming the journal, and change nothing. After the
// other process is killed (kill -9), apply completes with the same journal.
func TestJournalLocked(t *testing.T) {
	tenant, users := loadTenant(t)
	c := newRig(t, tenant)
	ctx := context.Background()
	c.makePlan()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// One request a second: the other process takes 18 s to apply the
	// plan's 6 links, and is killed long before.
	args := append([]string{"apply"}, c.args...)
	args = append(args, "-plan", c.path("plan.jsonl"), "-journal", c.path("journal.jsonl"), "-rate", "1",
		"-trust-providers", "auth0,email,google-oauth2", "-apply")
	other := exec.Command(exe, args...)
	other.Env = append(os.Environ(), childEnv+"=1")
	var otherOut bytes.Buffer
	other.Stdout, other.Stderr = &otherOut, &otherOut
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	done := make(chan struct{})
	go func() {
		waitErr = other.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		other.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if data, _ := os.ReadFile(c.path("journal.jsonl")); bytes.Contains(data, []byte(`"kind":"header"`)) {
			break
		}
		select {
		case <-done:
			t.Fatalf("the other apply ended: %v\n%s", waitErr, otherOut.String())
		default:
		}
		if time.Now().After(deadline) {
			other.Process.Kill()
			<-done
			t.Fatalf("the other apply wrote no journal:\n%s", otherOut.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	held, _ := os.ReadFile(c.path("journal.jsonl"))

	for _, cmd := range []string{"apply", "undo"} {
		start := time.Now()
		code, out, errOut := c.apply(ctx, cmd, "-apply")
		if code != exitLocked || !strings.Contains(errOut, c.path("journal.jsonl")) || !strings.Contains(errOut, "another run") {
			t.Errorf("%s: got exit %d, want %d with a message naming the journal\nstdout: %s\nstderr: %s", cmd, code, exitLocked, out, errOut)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: refused after %v, want at once", cmd, d)
		}
	}
	if err := other.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done
	// The refused runs wrote nothing: what the journal holds beyond what
	// it held before them is the other process's.
	if now, _ := os.ReadFile(c.path("journal.jsonl")); !bytes.HasPrefix(now, held) || bytes.Count(now, []byte(`"kind":"header"`)) != 1 {
		t.Errorf("the journal changed under the refused runs:\n%s\nheld before:\n%s", now, held)
	}
	code, out, errOut := c.apply(ctx, "apply", "-apply")
	if code != exitDone || !strings.Contains(out, "0 failed, 0 skipped, 0 remaining, of 6") {
		t.Fatalf("apply after the kill: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if code, out, errOut := c.apply(ctx, "undo", "-apply"); code != exitDone {
		t.Fatalf("undo: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if diff := cmp.Diff(users, tenant.Users(), userOpts); diff != "" {
		t.Errorf("tenant after undo (-want +got):\n%s", diff)
	}
}

// TestRateLimitCounted: the report counts every request the tenant got and
// every 429 it sent: go-auth0 does not retry behind the Applier's back.
func TestRateLimitCounted(t *testing.T) {
	tenant, _ := loadTenant(t)
	c := newRig(t, tenant)
	ctx := context.Background()
	c.makePlan()
	c.srv.FailNext(mgmttest.RouteLink, 1, http.StatusTooManyRequests)
	c.srv.FailNext(mgmttest.RouteUser, 1, http.StatusTooManyRequests)
	code, out, errOut := c.apply(ctx, "apply", "-apply")
	if code != exitDone {
		t.Fatalf("apply: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	want := fmt.Sprintf("%d API calls in ", c.srv.APIRequests())
	if !strings.Contains(out, want) || !strings.Contains(out, ", 2 answered 429;") {
		t.Errorf("report %q: want %q and 2 answered 429", out, want)
	}
}
