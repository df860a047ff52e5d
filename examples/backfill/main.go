// Command backfill merges the duplicate users an Auth0 tenant already has:
// plan from a user export, review, apply at the rate limit, undo.
//
//	backfill export -domain D -out export.json.gz [-force]
//	backfill plan  -in export.json.gz -out plan.jsonl [-summary summary.json] [-force]
//	backfill apply -domain D -plan plan.jsonl -journal journal.jsonl [-rate N] [-apply]
//	backfill undo  -domain D -journal journal.jsonl [-rate N] [-apply]
//
// apply and undo are dry runs unless -apply is given. The client credentials
// come from -client-id and the environment variable AUTH0_CLIENT_SECRET (or
// -client-secret). No command overwrites a file unless -force is given, and
// none ever overwrites a journal. See README.md for a walk-through and the
// exit codes.
package main

import (
	"context"
	"crypto/x509"
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
	"github.com/idlink/linking/mgmt"
)

// Exit codes.
const (
	exitDone       = 0 // everything done
	exitRefused    = 1 // bad usage or input, refused before anything was written
	exitIncomplete = 2 // stopped (interrupted, tenant unavailable): run again to resume
	exitFailures   = 3 // finished, but some links were refused or skipped: see the report
	exitError      = 4 // stopped on an unexpected error (I/O); the journal is consistent
	exitConfig     = 5 // the tenant cannot be reached as configured (domain, credentials, scopes)
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

const usage = `usage:
  backfill export -domain DOMAIN -out EXPORT [-force] [client flags]
  backfill plan  -in EXPORT -out PLAN [-summary FILE] [-force] [policy flags]
  backfill apply -domain DOMAIN -plan PLAN -journal JOURNAL [-rate N -burst M] [-apply] [policy and client flags]
  backfill undo  -domain DOMAIN -journal JOURNAL [-rate N -burst M] [-apply] [client flags]
Run "backfill COMMAND -h" for the flags of a command.
`

// run runs the command of args and returns the exit code. ctx is done on
// an interrupt.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitRefused
	}
	switch args[0] {
	case "export":
		return runExport(ctx, args[1:], stdout, stderr)
	case "plan":
		return runPlan(ctx, args[1:], stdout, stderr)
	case "apply", "undo":
		return runApply(ctx, args[0], args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitDone
	}
	fmt.Fprintf(stderr, "backfill: unknown command %q\n%s", args[0], usage)
	return exitRefused
}

// policyFlags are the flags of the linking policy and of the choice of
// primaries, for plan and apply.
type policyFlags struct {
	providers, connections, prefer string
}

func (p *policyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.providers, "trust-providers", "", "comma-separated `providers` whose verified emails are trusted (default: auth0,email)")
	fs.StringVar(&p.connections, "trust-connections", "", "comma-separated `connections` trusted in addition")
	fs.StringVar(&p.prefer, "prefer-connections", "", "comma-separated `connections` whose users are preferred as primaries, before the oldest user")
}

func (p *policyFlags) policy() (linking.Policy, error) {
	pol := linking.Policy{TrustedProviders: list(p.providers), TrustedConnections: list(p.connections)}
	return pol, pol.Validate()
}

// primary returns the PrimaryPolicy of -prefer-connections; nil is the
// default.
func (p *policyFlags) primary() backfill.PrimaryPolicy {
	if names := list(p.prefer); len(names) > 0 {
		return backfill.PreferConnections(names...)
	}
	return nil
}

func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parse parses the flags of a command; it returns false with the exit code
// when the command must not go on.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) (bool, int) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, exitDone
		}
		return false, exitRefused
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "backfill %s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return false, exitRefused
	}
	return true, 0
}

func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	in := fs.String("in", "", "the user export `file`: gzipped or plain newline-delimited JSON, or a JSON array")
	out := fs.String("out", "plan.jsonl", "the plan `file` to write")
	summaryPath := fs.String("summary", "", "write the summary, with every refused and ambiguous group, as JSON to this `file`")
	force := fs.Bool("force", false, "replace the output files when they exist (never a journal)")
	var pf policyFlags
	pf.register(fs)
	if ok, code := parse(fs, args, stderr); !ok {
		return code
	}
	if *in == "" {
		fmt.Fprintln(stderr, "backfill plan: -in is required")
		return exitRefused
	}
	policy, err := pf.policy()
	if err != nil {
		fmt.Fprintf(stderr, "backfill plan: %v\n", err)
		return exitRefused
	}
	err = checkOutputs(*force, []file{{"-in", *in}}, []file{{"-out", *out}, {"-summary", *summaryPath}})
	if err != nil {
		fmt.Fprintf(stderr, "backfill plan: %v\nnothing written\n", err)
		return exitRefused
	}
	planner := backfill.Planner{Policy: policy, Primary: pf.primary()}

	start := time.Now()
	s, err := writeAtomically(*out, *force, func(w io.Writer) (backfill.Summary, error) {
		return planner.Plan(ctx, func() (io.ReadCloser, error) { return os.Open(*in) }, w)
	})
	if err != nil {
		fmt.Fprintf(stderr, "%v\nnothing written\n", err)
		if ctx.Err() != nil {
			return exitIncomplete
		}
		return exitRefused
	}
	if *summaryPath != "" {
		_, err := writeAtomically(*summaryPath, *force, func(w io.Writer) (struct{}, error) {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return struct{}{}, enc.Encode(s)
		})
		if err != nil {
			fmt.Fprintf(stderr, "backfill plan: %v\n", err)
			return exitError
		}
	}
	printPlanSummary(stdout, s, *out, *summaryPath, time.Since(start))
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

// clientFlags are the flags that reach the tenant.
type clientFlags struct {
	domain, clientID, clientSecret, caFile string
	insecureHTTP                           bool
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.domain, "domain", os.Getenv("AUTH0_DOMAIN"), "the tenant's `domain`, e.g. example.eu.auth0.com (default $AUTH0_DOMAIN)")
	fs.StringVar(&c.clientID, "client-id", os.Getenv("AUTH0_CLIENT_ID"), "the machine-to-machine application's client `id` (default $AUTH0_CLIENT_ID)")
	fs.StringVar(&c.clientSecret, "client-secret", "", "the client `secret`; prefer $AUTH0_CLIENT_SECRET, which other users of the machine cannot see")
	fs.StringVar(&c.caFile, "ca", "", "PEM `file` of the certificate authority to trust for the domain (a local emulator over HTTPS)")
	fs.BoolVar(&c.insecureHTTP, "insecure-http", false, "speak plain HTTP to the domain, secret included: a local emulator only")
}

// connect returns a Store over the tenant, whose access it has checked
// (within checkTimeout): the credentials are accepted and grant scopes, or,
// with none given, the scopes linking needs. Its errors are worded for the operator; they wrap
// mgmt.ErrConfig for a configuration error.
//
// go-auth0's retries are off: the Applier is the only retry layer, so that
// every attempt waits for its rate limit and is counted in its report.
func (c *clientFlags) connect(ctx context.Context, scopes ...string) (*mgmt.Store, error) {
	if c.clientSecret == "" {
		c.clientSecret = os.Getenv("AUTH0_CLIENT_SECRET")
	}
	if c.domain == "" || c.clientID == "" || c.clientSecret == "" {
		return nil, errors.New("the domain, client id and client secret are required (-domain, -client-id, $AUTH0_CLIENT_SECRET)")
	}
	opts := []mgmt.Option{mgmt.WithoutRetries()}
	if c.insecureHTTP {
		opts = append(opts, mgmt.WithInsecureHTTP())
	}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", c.caFile)
		}
		opts = append(opts, mgmt.WithRootCAs(pool))
	}
	// The token source lives as long as the process, not as the run's
	// ctx: an interrupt must not stop the call in flight from completing.
	store, err := mgmt.New(context.Background(), c.domain, c.clientID, c.clientSecret, opts...)
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
func connectFailed(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "backfill %s: %v\n", cmd, err)
	switch {
	case errors.Is(err, mgmt.ErrConfig):
		fmt.Fprintln(stderr, configHint)
		return exitConfig
	case errors.Is(err, linking.ErrUnavailable):
		fmt.Fprintln(stderr, "incomplete: the tenant is out of reach (or the run was interrupted); nothing was written: run the same command again")
		return exitIncomplete
	}
	return exitRefused
}

// configHint follows a configuration error: trying again does not help.
const configHint = "configuration error: check -domain (and -ca or -insecure-http), the client id and secret, and the application's scopes (read:users, update:users, read:connections); trying again cannot help until it is fixed"

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	out := fs.String("out", "export.json.gz", "the `file` to write the export to (gzipped newline-delimited JSON, as Auth0 makes it)")
	timeout := fs.Duration("timeout", time.Hour, "how long to wait for the export job and its download")
	force := fs.Bool("force", false, "replace the output file when it exists (never a journal)")
	var cf clientFlags
	cf.register(fs)
	if ok, code := parse(fs, args, stderr); !ok {
		return code
	}
	if err := checkOutputs(*force, nil, []file{{"-out", *out}}); err != nil {
		fmt.Fprintf(stderr, "backfill export: %v\nnothing written\n", err)
		return exitRefused
	}
	store, err := cf.connect(ctx, "read:users")
	if err != nil {
		return connectFailed(stderr, "export", err)
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
		fmt.Fprintf(stderr, "backfill export: %v\nnothing written\n", err)
		switch {
		case errors.Is(err, mgmt.ErrConfig):
			fmt.Fprintln(stderr, configHint)
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

func runApply(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	planPath := fs.String("plan", "plan.jsonl", "the reviewed plan `file`")
	journalPath := fs.String("journal", "journal.jsonl", "the journal `file`: created by the first apply, read and extended by every later run")
	rate := fs.Float64("rate", backfill.DefaultRate, "Management API `requests` per second; at most the tenant's limit")
	burst := fs.Int("burst", 1, "`requests` that may go at once after a pause")
	write := fs.Bool("apply", false, "write to the tenant; without it, a dry run that only checks and counts")
	var pf policyFlags
	if cmd == "apply" {
		pf.register(fs)
	} else {
		fs.Lookup("plan").Usage = "unused by undo"
	}
	if ok, code := parse(fs, args, stderr); !ok {
		return code
	}
	policy, err := pf.policy()
	if err != nil {
		fmt.Fprintf(stderr, "backfill %s: %v\n", cmd, err)
		return exitRefused
	}
	if cf.domain == "" {
		fmt.Fprintf(stderr, "backfill %s: -domain is required: the journal is bound to the tenant\n", cmd)
		return exitRefused
	}
	if *rate <= 0 {
		fmt.Fprintf(stderr, "backfill %s: -rate must be positive\n", cmd)
		return exitRefused
	}
	if cmd == "apply" && sameFile(*planPath, *journalPath) {
		fmt.Fprintf(stderr, "backfill apply: -plan and -journal name the same file, %s\n", *planPath)
		return exitRefused
	}

	a := &backfill.Applier{Tenant: cf.domain, Policy: policy, Primary: pf.primary(), Rate: *rate, Burst: *burst, DryRun: !*write}
	var plan *backfill.Plan
	if cmd == "apply" {
		if plan, err = readPlan(*planPath); err != nil {
			fmt.Fprintf(stderr, "%v\nrefused: nothing was written\n", err)
			return exitRefused
		}
	}
	if *write {
		store, err := cf.connect(ctx)
		if err != nil {
			return connectFailed(stderr, cmd, err)
		}
		a.Store = store
		if isTerminal(stderr) {
			p := &progress{w: stderr, what: map[string]string{"apply": "links", "undo": "unlinks"}[cmd]}
			a.Progress = p.update
		}
	}

	var rep backfill.Report
	if cmd == "apply" {
		rep, err = a.Apply(ctx, plan, *journalPath)
	} else {
		rep, err = a.Undo(ctx, *journalPath)
	}
	if a.Progress != nil && rep.Calls > 0 {
		fmt.Fprintln(stderr)
	}
	code := exitCode(stderr, rep, err)
	if code != exitRefused && code != exitLocked {
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

// exitCode reports err and returns the exit code for the outcome of a run.
func exitCode(stderr io.Writer, rep backfill.Report, err error) int {
	var le *backfill.LineError
	switch {
	case err == nil && len(rep.Failed)+len(rep.Skipped) > 0:
		return exitFailures
	case err == nil:
		return exitDone
	case errors.Is(err, backfill.ErrJournalLocked):
		fmt.Fprintf(stderr, "%v\nlocked: another run is using this journal; nothing was read or written\n", err)
		return exitLocked
	case errors.Is(err, mgmt.ErrConfig):
		fmt.Fprintf(stderr, "%v\n%s\n", err, configHint)
		return exitConfig
	case errors.Is(err, backfill.ErrIncomplete):
		fmt.Fprintf(stderr, "%v\nincomplete: run the same command again to resume\n", err)
		return exitIncomplete
	case errors.As(err, &le), rep.Calls == 0:
		fmt.Fprintf(stderr, "%v\nrefused: nothing was written\n", err)
		return exitRefused
	}
	fmt.Fprintf(stderr, "%v\nstopped: the journal is consistent; fix the cause and run the same command again\n", err)
	return exitError
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
	perSecond := 0.0
	if s := rep.Elapsed.Seconds(); s > 0 {
		perSecond = float64(rep.Calls) / s
	}
	fmt.Fprintf(w, "%d API calls in %v (%.1f/s), %d answered 429; journal: %s\n",
		rep.Calls, rep.Elapsed.Round(time.Millisecond), perSecond, rep.RateLimited, journal)
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
