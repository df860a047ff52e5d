// Command backfill merges the duplicate users an Auth0 tenant already has:
// plan from a user export, review, apply at the rate limit, undo; and
// generates test tenants to rehearse it on.
//
//	backfill generate -users N [-seed S] -out tenant.json.gz
//	backfill export -domain D -out export.json.gz
//	backfill plan  -in export.json.gz -out plan.jsonl [-summary summary.json] [-select oldest]
//	backfill apply -domain D -plan plan.jsonl -journal journal.jsonl [-rate N] [-apply]
//	backfill undo  -domain D -journal journal.jsonl [-rate N] [-apply]
//
// apply and undo are dry runs unless -apply is given. The client credentials
// come from -client-id and the environment variable AUTH0_CLIENT_SECRET (or
// -client-secret). No command overwrites a file unless -force is given, and
// none ever overwrites a journal. Every command takes -h and -version. See
// README.md for a walk-through and the exit codes.
package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/backfill"
	"github.com/idlink/linking/backfill/backfilltest"
	"github.com/idlink/linking/examples/internal/cli"
	"github.com/idlink/linking/mgmt"
)

// Exit codes; 0 to 2 and 5 are those of every program (package cli).
const (
	exitDone       = cli.ExitOK    // everything done
	exitError      = cli.ExitError // refused input (nothing written), or an unexpected error (the journal is consistent)
	exitUsage      = cli.ExitUsage // an error in the command line
	exitIncomplete = 3             // stopped (interrupted, tenant unavailable): run again to resume
	exitFailures   = 4             // finished, but some links were refused or skipped: see the report
	exitConfig     = cli.ExitConfig
	exitLocked     = 6 // another run holds the journal; nothing was read or written
)

// checkTimeout bounds the check of the credentials at startup.
const checkTimeout = 15 * time.Second

var _ backfill.Store = (*mgmt.Store)(nil)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second interrupt ends the process at once
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `Usage:
  backfill generate -users N [-seed S] -out FILE      write a test tenant as an export
  backfill export -domain DOMAIN -out FILE            the tenant's users (Auth0's export job)
  backfill plan   -in EXPORT -out PLAN [-summary FILE] [-select LIST]
  backfill apply  -domain DOMAIN -plan PLAN -journal JOURNAL [-rate N] [-apply]
  backfill undo   -domain DOMAIN -journal JOURNAL [-rate N] [-apply]

Merges the duplicate users a tenant already has: plan from an export, review
the plan, apply it at the rate limit with a journal, undo it. apply and undo
are dry runs without -apply. Run 'backfill COMMAND -h' for the flags of a
command, 'backfill -version' for the version.

Exit codes:
  0  done
  1  error: refused input, nothing written (a malformed export, an unsafe
     plan line, a journal of another tenant or plan, an output that exists),
     or an unexpected error, the journal consistent; the message says which
  2  usage: an error in the command line
  3  incomplete: interrupted, or the tenant unavailable; run the same
     command again to resume
  4  finished, but some links were refused (failed:) or skipped (skipped:)
  5  configuration: credentials, scopes, domain, scheme or certificate
     refused; trying again cannot help until it is fixed
  6  another run holds the journal; nothing was read or written
`

// run runs the command of args and returns the exit code. ctx is done on
// an interrupt.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return cli.Report(stderr, "backfill", cli.Usagef("no command: want generate, export, plan, apply or undo"))
	}
	switch args[0] {
	case "generate":
		return runGenerate(args[1:], stdout, stderr)
	case "export":
		return runExport(ctx, args[1:], stdout, stderr)
	case "plan":
		return runPlan(ctx, args[1:], stdout, stderr)
	case "apply", "undo":
		return runApply(ctx, args[0], args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitDone
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, cli.Version("backfill"))
		return exitDone
	}
	return cli.Report(stderr, "backfill", cli.Usagef("unknown command %q: want generate, export, plan, apply or undo", args[0]))
}

// command is a subcommand being run: its flags and its messages.
type command struct {
	fs        *flag.FlagSet
	stderr    io.Writer // standard error, each line prefixed with the command's name
	rawStderr io.Writer
}

func newCommand(name, usage string, stderr io.Writer) *command {
	name = "backfill " + name
	return &command{fs: cli.NewFlagSet(name, usage), stderr: cli.Prefix(stderr, name+": "), rawStderr: stderr}
}

// parse parses the flags; done means the command must return code: -h or
// -version answered, or a usage error reported.
func (c *command) parse(args []string, stdout io.Writer) (done bool, code int) {
	done, err := cli.Parse(c.fs, args, stdout)
	if err != nil {
		return true, c.usage(err)
	}
	return done, exitDone
}

// usage reports err, a usage error, and returns its exit code.
func (c *command) usage(err error) int {
	return cli.Report(c.rawStderr, c.fs.Name(), err)
}

// policyFlags are the flags of the linking policy (package cli) and of the
// choice of primaries, for plan and apply.
type policyFlags struct {
	cli.PolicyFlags
	prefer string
}

func (p *policyFlags) register(fs *flag.FlagSet) {
	p.Register(fs)
	fs.StringVar(&p.prefer, "prefer-connections", "", "comma-separated `connections` whose users are preferred as primaries, before the oldest user")
}

// policy returns the linking policy and the choice of primaries the flags
// ask for (a nil PrimaryPolicy is the default), or a UsageError.
func (p *policyFlags) policy() (linking.Policy, backfill.PrimaryPolicy, error) {
	pol, err := p.Policy()
	names := cli.List(p.prefer)
	switch {
	case err != nil || len(names) == 0:
		return pol, nil, err
	case len(pol.Select) > 0:
		return pol, nil, cli.Usagef("-prefer-connections and -select do not go together: with -select, name the connections in it, e.g. -select connection:%s,oldest", names[0])
	}
	return pol, backfill.PreferConnections(names...), nil
}

const planUsage = `Usage: backfill plan -in EXPORT [-out plan.jsonl] [-summary FILE] [-force] [policy flags]

Reads a user export (gzipped or plain newline-delimited JSON, or a JSON
array) and writes the plan: one JSON line per group of users to link, for
review. Needs no credentials. Give apply the same policy flags.
`

func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("plan", planUsage, stderr)
	fs := c.fs
	in := fs.String("in", "", "the user export `file`: gzipped or plain newline-delimited JSON, or a JSON array")
	out := fs.String("out", "plan.jsonl", "the plan `file` to write")
	summaryPath := fs.String("summary", "", "write the summary, with every refused and ambiguous group, as JSON to this `file`")
	force := fs.Bool("force", false, "replace the output files when they exist (never a journal)")
	var pf policyFlags
	pf.register(fs)
	if done, code := c.parse(args, stdout); done {
		return code
	}
	if *in == "" {
		return c.usage(cli.Usagef("-in is required"))
	}
	policy, primary, err := pf.policy()
	if err != nil {
		return c.usage(err)
	}
	err = checkOutputs(*force, []file{{"-in", *in}}, []file{{"-out", *out}, {"-summary", *summaryPath}})
	if err != nil {
		fmt.Fprintf(c.stderr, "%v\nnothing written\n", err)
		return exitError
	}
	planner := backfill.Planner{Policy: policy, Primary: primary}

	start := time.Now()
	s, err := writeAtomically(*out, *force, func(w io.Writer) (backfill.Summary, error) {
		return planner.Plan(ctx, func() (io.ReadCloser, error) { return os.Open(*in) }, w)
	})
	if err != nil {
		fmt.Fprintf(c.stderr, "%v\nnothing written\n", err)
		if ctx.Err() != nil {
			return exitIncomplete
		}
		return exitError
	}
	if *summaryPath != "" {
		_, err := writeAtomically(*summaryPath, *force, func(w io.Writer) (struct{}, error) {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return struct{}{}, enc.Encode(s)
		})
		if err != nil {
			fmt.Fprintln(c.stderr, err)
			return exitError
		}
	}
	printPlanSummary(stdout, s, *out, *summaryPath, time.Since(start))
	return exitDone
}

const generateUsage = `Usage: backfill generate -users N [-seed S] [-groups G] [-out tenant.json.gz] [-force]

Writes a test tenant of N users as a user export (gzipped newline-delimited
JSON, as Auth0 and backfill export write it): duplicate groups of every kind
the rule tells apart, spread among users with an email of their own. The same
seed gives the same users. Serve it with the emulator:
  go run ./examples/emulator -users tenant.json.gz
`

// errStop stops Spec.Each at its first user.
var errStop = errors.New("stop")

func runGenerate(args []string, stdout, stderr io.Writer) int {
	c := newCommand("generate", generateUsage, stderr)
	fs := c.fs
	users := fs.Int("users", 0, "the `number` of users")
	seed := fs.Uint64("seed", 1, "the `seed` the users are made from")
	groups := fs.Int("groups", -1, "the `number` of duplicate groups of each kind (default: one per 100 users, at least 1)")
	out := fs.String("out", "tenant.json.gz", "the `file` to write")
	force := fs.Bool("force", false, "replace the output file when it exists (never a journal)")
	if done, code := c.parse(args, stdout); done {
		return code
	}
	if *users <= 0 {
		return c.usage(cli.Usagef("-users must be positive"))
	}
	if *groups < 0 {
		*groups = max(1, *users/100)
	}
	spec := backfilltest.Spec{Seed: *seed, Users: *users, Groups: *groups}
	// Each checks the spec before the first user.
	if err := spec.Each(func(linking.User) error { return errStop }); !errors.Is(err, errStop) {
		return c.usage(cli.Usagef("-users %d, -groups %d: %v", *users, *groups, err))
	}
	if err := checkOutputs(*force, nil, []file{{"-out", *out}}); err != nil {
		fmt.Fprintf(c.stderr, "%v\nnothing written\n", err)
		return exitError
	}
	start := time.Now()
	_, err := writeAtomically(*out, *force, func(w io.Writer) (struct{}, error) {
		zw := gzip.NewWriter(w)
		if err := spec.WriteExport(zw); err != nil {
			return struct{}{}, err
		}
		return struct{}{}, zw.Close()
	})
	if err != nil {
		fmt.Fprintf(c.stderr, "%v\nnothing written\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "generated %d users, %d duplicate groups of each of %d kinds, in %v -> %s\n",
		*users, *groups, len(backfilltest.Kinds), time.Since(start).Round(time.Millisecond), *out)
	return exitDone
}

// file is a file a command reads or writes, and the flag that names it.
type file struct{ flag, path string }

// checkOutputs refuses, before a command does anything, output files that it
// must not write: one that is also an input or another output, a journal
// (the only copy of the metadata Auth0 discards on link), and without force
// any existing file. Outputs with no path are not written.
func checkOutputs(force bool, inputs, outputs []file) error {
	for i, o := range outputs {
		if o.path == "" {
			continue
		}
		for _, other := range append(slices.Clone(inputs), outputs[:i]...) {
			if other.path != "" && sameFile(o.path, other.path) {
				return fmt.Errorf("%s and %s name the same file, %s", other.flag, o.flag, o.path)
			}
		}
		if err := checkOverwrite(o.path, force); err != nil {
			return fmt.Errorf("%s: %w", o.flag, err)
		}
	}
	return nil
}

// sameFile reports whether the paths a and b name the same file: the same
// file once links are followed when both exist, the same absolute path
// otherwise.
func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(fa, fb)
	}
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	return errA == nil && errB == nil && absA == absB
}

// checkOverwrite refuses to replace the file at path: a journal always, any
// other existing file unless force.
func checkOverwrite(path string, force bool) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if backfill.IsJournal(f) {
		return fmt.Errorf("%s is a backfill journal, the only copy of the metadata Auth0 discarded on link: it is never overwritten, -force or not", path)
	}
	if !force {
		return existsError(path)
	}
	return nil
}

func existsError(path string) error {
	return fmt.Errorf("%s exists: give -force to replace it", path)
}

// writeAtomically writes a file through fn: to a new temporary file in the
// same directory, moved into place when fn succeeds, so that a failure
// leaves nothing behind. Without force the move fails when path exists by
// then; with force it replaces path, unless path is a journal.
func writeAtomically[T any](path string, force bool, fn func(io.Writer) (T, error)) (T, error) {
	var zero T
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return zero, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	v, err := fn(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return zero, err
	}
	if !force {
		// A hard link, unlike a rename, fails when path exists.
		if err := os.Link(tmp, path); err != nil {
			if errors.Is(err, os.ErrExist) {
				return zero, existsError(path)
			}
			return zero, err
		}
		return v, nil
	}
	if err := checkOverwrite(path, true); err != nil {
		return zero, err
	}
	return v, os.Rename(tmp, path)
}

func printPlanSummary(w io.Writer, s backfill.Summary, out, summaryPath string, elapsed time.Duration) {
	fmt.Fprintf(w, "read %d users in %v: %d distinct emails, %d shared by several users (%d without email, %d invalid)\n",
		s.Users, elapsed.Round(time.Millisecond), s.Emails, s.Groups, s.NoEmail, s.InvalidEmail)
	fmt.Fprintf(w, "plan: %d groups, %d links, %d members left unlinked -> %s\n", s.Planned, s.Links, s.Skipped, out)
	fmt.Fprintf(w, "refused: %d groups, ambiguous: %d groups\n", len(s.Refused), len(s.Ambiguous))
	reasons := make([]string, 0, len(s.Reasons))
	for r, n := range s.Reasons {
		reasons = append(reasons, fmt.Sprintf("  %-28s %d", r, n))
	}
	if len(reasons) > 0 {
		slices.Sort(reasons)
		fmt.Fprintln(w, "not linked, by reason (groups and members):")
		fmt.Fprintln(w, strings.Join(reasons, "\n"))
	}
	if summaryPath != "" {
		fmt.Fprintf(w, "every refused and ambiguous group: %s\n", summaryPath)
	}
}

// connect returns a Store over the tenant, whose access it has checked
// (within checkTimeout): the credentials are accepted and grant scopes, or,
// with none given, those the Store needs. Its errors are a UsageError for a
// flag missing or malformed, and wrap mgmt.ErrConfig for a configuration the
// tenant refuses.
//
// go-auth0's retries are off: the Applier is the only retry layer, so that
// every attempt waits for its rate limit and is counted in its report.
func connect(ctx context.Context, cf *cli.ClientFlags, scopes ...string) (*mgmt.Store, error) {
	store, err := cf.Store(ctx, mgmt.WithoutRetries())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := store.CheckAccess(ctx, scopes...); err != nil {
		return nil, err
	}
	return store, nil
}

// connectFailed reports the error of connect and returns the exit code.
func (c *command) connectFailed(err error) int {
	if cli.IsUsage(err) {
		return c.usage(err)
	}
	fmt.Fprintln(c.stderr, err)
	switch {
	case errors.Is(err, mgmt.ErrConfig):
		fmt.Fprintln(c.stderr, configHint)
		return exitConfig
	case errors.Is(err, linking.ErrUnavailable):
		fmt.Fprintln(c.stderr, "incomplete: the tenant is out of reach (or the run was interrupted); nothing was written: run the same command again")
		return exitIncomplete
	}
	return exitError
}

// configHint follows a configuration error: trying again does not help.
const configHint = "configuration error: check -domain (and -ca or -insecure-http), the client id and secret, and the application's scopes; trying again cannot help until it is fixed"

const exportUsage = `Usage: backfill export [-out export.json.gz] [-force] -domain DOMAIN -client-id ID [client flags]

Runs Auth0's users-exports job (scope read:users), waits for it, and writes
the export as Auth0 makes it: gzipped newline-delimited JSON. The client
secret comes from $AUTH0_CLIENT_SECRET.
`

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("export", exportUsage, stderr)
	fs := c.fs
	out := fs.String("out", "export.json.gz", "the `file` to write the export to (gzipped newline-delimited JSON, as Auth0 makes it)")
	timeout := fs.Duration("timeout", time.Hour, "how long to wait for the export job and its download")
	force := fs.Bool("force", false, "replace the output file when it exists (never a journal)")
	var cf cli.ClientFlags
	cf.Register(fs, os.Getenv)
	if done, code := c.parse(args, stdout); done {
		return code
	}
	if err := checkOutputs(*force, nil, []file{{"-out", *out}}); err != nil {
		fmt.Fprintf(c.stderr, "%v\nnothing written\n", err)
		return exitError
	}
	store, err := connect(ctx, &cf, "read:users")
	if err != nil {
		return c.connectFailed(err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	var n countWriter
	_, err = writeAtomically(*out, *force, func(w io.Writer) (struct{}, error) {
		n.w = w
		return struct{}{}, store.ExportUsers(ctx, &n)
	})
	if err != nil {
		fmt.Fprintf(c.stderr, "%v\nnothing written\n", err)
		switch {
		case errors.Is(err, mgmt.ErrConfig):
			fmt.Fprintln(c.stderr, configHint)
			return exitConfig
		case errors.Is(err, linking.ErrUnavailable):
			return exitIncomplete
		}
		return exitError
	}
	fmt.Fprintf(stdout, "exported %d bytes in %v -> %s\n", n.n, time.Since(start).Round(time.Millisecond), *out)
	return exitDone
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

const applyUsage = `Usage: backfill apply -domain DOMAIN [-plan plan.jsonl] [-journal journal.jsonl] [-rate N] [-apply] [flags]

Links the secondaries of a reviewed plan into their primaries, at -rate
requests per second, recording every step in the journal; a rerun resumes.
Without -apply, a dry run that checks the plan and the journal and counts.
Give it the policy flags the plan was made with. The client secret comes from
$AUTH0_CLIENT_SECRET.
`

const undoUsage = `Usage: backfill undo -domain DOMAIN [-journal journal.jsonl] [-rate N] [-apply] [flags]

Undoes the links a journal records as done, the last first, and restores
each secondary's metadata; a rerun resumes. Without -apply, a dry run. The
client secret comes from $AUTH0_CLIENT_SECRET.
`

func runApply(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) int {
	c := newCommand(cmd, map[string]string{"apply": applyUsage, "undo": undoUsage}[cmd], stderr)
	fs := c.fs
	var cf cli.ClientFlags
	cf.Register(fs, os.Getenv)
	var planPath *string
	var pf policyFlags
	if cmd == "apply" {
		planPath = fs.String("plan", "plan.jsonl", "the reviewed plan `file`")
		pf.register(fs)
	}
	journalPath := fs.String("journal", "journal.jsonl", "the journal `file`: created by the first apply, read and extended by every later run")
	rate := fs.Float64("rate", backfill.DefaultRate, "Management API `requests` per second; at most the tenant's limit")
	burst := fs.Int("burst", 1, "`requests` that may go at once after a pause")
	write := fs.Bool("apply", false, "write to the tenant; without it, a dry run that only checks and counts")
	progressMode := fs.String("progress", "auto", "how to show progress on standard error: `mode` tty (one line rewritten in place), log (a line every few seconds), off, or auto (tty on a terminal, else log)")
	if done, code := c.parse(args, stdout); done {
		return code
	}
	policy, primary, err := pf.policy()
	if err != nil {
		return c.usage(err)
	}
	switch {
	case cf.Domain() == "":
		return c.usage(cli.Usagef("-domain or AUTH0_DOMAIN is required: the journal is bound to the tenant"))
	case *rate <= 0:
		return c.usage(cli.Usagef("-rate %v must be positive", *rate))
	case *burst < 1:
		return c.usage(cli.Usagef("-burst %d must be at least 1", *burst))
	case !slices.Contains(progressModes, *progressMode):
		return c.usage(cli.Usagef("-progress %q: want %s", *progressMode, strings.Join(progressModes, ", ")))
	}
	if cmd == "apply" && sameFile(*planPath, *journalPath) {
		fmt.Fprintf(c.stderr, "-plan and -journal name the same file, %s\nrefused: nothing was written\n", *planPath)
		return exitError
	}

	a := &backfill.Applier{Tenant: cf.Domain(), Policy: policy, Primary: primary, Rate: *rate, Burst: *burst, DryRun: !*write}
	var plan *backfill.Plan
	if cmd == "apply" {
		if plan, err = readPlan(*planPath); err != nil {
			fmt.Fprintf(c.stderr, "%v\nrefused: nothing was written\n", err)
			return exitError
		}
	}
	var p *progress
	if *write {
		store, err := connect(ctx, &cf)
		if err != nil {
			return c.connectFailed(err)
		}
		a.Store = store
		if p = newProgress(*progressMode, stderr, c.stderr, map[string]string{"apply": "links", "undo": "unlinks"}[cmd]); p != nil {
			a.Progress = p.update
		}
	}

	var rep backfill.Report
	if cmd == "apply" {
		rep, err = a.Apply(ctx, plan, *journalPath)
	} else {
		rep, err = a.Undo(ctx, *journalPath)
	}
	p.end()
	code, ran := exitCode(c.stderr, rep, err)
	if ran {
		printReport(stdout, cmd, rep, *journalPath, !*write)
	}
	return code
}

func readPlan(path string) (*backfill.Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return backfill.ReadPlan(f)
}

// exitCode reports err and returns the exit code for the outcome of a run,
// and whether the run got as far as having a report: it was not refused
// before it began.
func exitCode(stderr io.Writer, rep backfill.Report, err error) (code int, ran bool) {
	var le *backfill.LineError
	switch {
	case err == nil && len(rep.Failed)+len(rep.Skipped) > 0:
		return exitFailures, true
	case err == nil:
		return exitDone, true
	case errors.Is(err, backfill.ErrJournalLocked):
		fmt.Fprintf(stderr, "%v\nlocked: another run is using this journal; nothing was read or written\n", err)
		return exitLocked, false
	case errors.Is(err, mgmt.ErrConfig):
		fmt.Fprintf(stderr, "%v\n%s\n", err, configHint)
		return exitConfig, true
	case errors.Is(err, backfill.ErrIncomplete):
		fmt.Fprintf(stderr, "%v\nincomplete: run the same command again to resume\n", err)
		return exitIncomplete, true
	case errors.As(err, &le), rep.Calls == 0:
		fmt.Fprintf(stderr, "%v\nrefused: nothing was written\n", err)
		return exitError, false
	}
	fmt.Fprintf(stderr, "%v\nstopped: the journal is consistent; fix the cause and run the same command again\n", err)
	return exitError, true
}

func printReport(w io.Writer, cmd string, rep backfill.Report, journal string, dry bool) {
	what := map[string]string{"apply": "links", "undo": "unlinks"}[cmd]
	if dry {
		fmt.Fprintf(w, "dry run: %d %s in all, %d already done, %d skipped, %d to do; nothing written (add -apply to write)\n",
			rep.Total, what, rep.AlreadyDone, len(rep.Skipped), rep.Remaining)
		return
	}
	fmt.Fprintf(w, "%s: %d %s done (%d confirmed by reading back), %d already done, %d failed, %d skipped, %d remaining, of %d\n",
		cmd, rep.Done, what, rep.Confirmed, rep.AlreadyDone, len(rep.Failed), len(rep.Skipped), rep.Remaining, rep.Total)
	fmt.Fprintf(w, "%d API calls in %v%s, %d answered 429; journal: %s\n",
		rep.Calls, rep.Elapsed.Round(time.Millisecond), callRate(rep.Calls, rep.Elapsed), rep.RateLimited, journal)
	for _, f := range rep.Failed {
		fmt.Fprintf(w, "failed: plan line %d: %s into %s: %s\n", f.Line, f.SecondaryID, f.PrimaryID, f.Err)
	}
	for _, s := range rep.Skipped {
		why := string(s.Reason)
		if s.Verdict != "" {
			why += " (primary: " + string(s.Verdict) + ")"
		}
		fmt.Fprintf(w, "skipped: plan line %d: %s into %s: %s\n", s.Line, s.SecondaryID, s.PrimaryID, why)
	}
}
