// Command backfill merges the duplicate users an Auth0 tenant already has:
// plan from a user export, review, apply at the rate limit, undo.
//
//	backfill export -domain D -out export.json.gz
//	backfill plan  -in export.json.gz -out plan.jsonl [-summary summary.json]
//	backfill apply -domain D -plan plan.jsonl -journal journal.jsonl [-rate N] [-apply]
//	backfill undo  -domain D -journal journal.jsonl [-rate N] [-apply]
//
// apply and undo are dry runs unless -apply is given. The client credentials
// come from -client-id and the environment variable AUTH0_CLIENT_SECRET (or
// -client-secret). See README.md for a walk-through and the exit codes.
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
	exitFailures   = 3 // finished, but the tenant refused some links: see the summary
	exitError      = 4 // stopped on an unexpected error (credentials, I/O); the journal is consistent
)

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
  backfill export -domain DOMAIN -out EXPORT [client flags]
  backfill plan  -in EXPORT -out PLAN [-summary FILE] [policy flags]
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

// policyFlags are the flags of the linking policy, for plan and apply.
type policyFlags struct {
	providers, connections string
}

func (p *policyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.providers, "trust-providers", "", "comma-separated `providers` whose verified emails are trusted (default: auth0,email)")
	fs.StringVar(&p.connections, "trust-connections", "", "comma-separated `connections` trusted in addition")
}

func (p *policyFlags) policy() (linking.Policy, error) {
	pol := linking.Policy{TrustedProviders: list(p.providers), TrustedConnections: list(p.connections)}
	return pol, pol.Validate()
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
	prefer := fs.String("prefer-connections", "", "comma-separated `connections` whose users are preferred as primaries, before the oldest user")
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
	planner := backfill.Planner{Policy: policy}
	if names := list(*prefer); len(names) > 0 {
		planner.Primary = backfill.PreferConnections(names...)
	}

	start := time.Now()
	s, err := writeAtomically(*out, func(w io.Writer) (backfill.Summary, error) {
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
		_, err := writeAtomically(*summaryPath, func(w io.Writer) (struct{}, error) {
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

// writeAtomically writes a file through fn: to a temporary file renamed into
// place when fn succeeds, so that a failure leaves nothing behind.
func writeAtomically[T any](path string, fn func(io.Writer) (T, error)) (T, error) {
	var zero T
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return zero, err
	}
	v, err := fn(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return zero, err
	}
	return v, nil
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

// store returns a Store over the tenant, or an error worded for the
// operator.
func (c *clientFlags) store() (*mgmt.Store, error) {
	if c.clientSecret == "" {
		c.clientSecret = os.Getenv("AUTH0_CLIENT_SECRET")
	}
	if c.domain == "" || c.clientID == "" || c.clientSecret == "" {
		return nil, errors.New("the domain, client id and client secret are required (-domain, -client-id, $AUTH0_CLIENT_SECRET)")
	}
	var opts []mgmt.Option
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
	return mgmt.New(context.Background(), c.domain, c.clientID, c.clientSecret, opts...)
}

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	out := fs.String("out", "export.json.gz", "the `file` to write the export to (gzipped newline-delimited JSON, as Auth0 makes it)")
	timeout := fs.Duration("timeout", time.Hour, "how long to wait for the export job and its download")
	var cf clientFlags
	cf.register(fs)
	if ok, code := parse(fs, args, stderr); !ok {
		return code
	}
	store, err := cf.store()
	if err != nil {
		fmt.Fprintf(stderr, "backfill export: %v\n", err)
		return exitRefused
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	var n countWriter
	_, err = writeAtomically(*out, func(w io.Writer) (struct{}, error) {
		n.w = w
		return struct{}{}, store.ExportUsers(ctx, &n)
	})
	if err != nil {
		fmt.Fprintf(stderr, "backfill export: %v\nnothing written\n", err)
		if errors.Is(err, linking.ErrUnavailable) {
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

	a := &backfill.Applier{Tenant: cf.domain, Policy: policy, Rate: *rate, Burst: *burst, DryRun: !*write}
	if *write {
		store, err := cf.store()
		if err != nil {
			fmt.Fprintf(stderr, "backfill %s: %v\n", cmd, err)
			return exitRefused
		}
		a.Store = store
		if isTerminal(stderr) {
			p := &progress{w: stderr, what: map[string]string{"apply": "links", "undo": "unlinks"}[cmd]}
			a.Progress = p.update
		}
	}

	var rep backfill.Report
	if cmd == "apply" {
		var plan *backfill.Plan
		plan, err = readPlan(*planPath)
		if err == nil {
			rep, err = a.Apply(ctx, plan, *journalPath)
		}
	} else {
		rep, err = a.Undo(ctx, *journalPath)
	}
	if a.Progress != nil && rep.Calls > 0 {
		fmt.Fprintln(stderr)
	}
	code := exitCode(stderr, rep, err)
	if code != exitRefused {
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
	case err == nil && len(rep.Failed) > 0:
		return exitFailures
	case err == nil:
		return exitDone
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
		fmt.Fprintf(w, "dry run: %d %s in all, %d already done, %d to do; nothing written (add -apply to write)\n",
			rep.Total, what, rep.AlreadyDone, rep.Remaining)
		return
	}
	fmt.Fprintf(w, "%s: %d %s done (%d confirmed by reading back), %d already done, %d failed, %d remaining, of %d\n",
		cmd, rep.Done, what, rep.Confirmed, rep.AlreadyDone, len(rep.Failed), rep.Remaining, rep.Total)
	perSecond := 0.0
	if s := rep.Elapsed.Seconds(); s > 0 {
		perSecond = float64(rep.Calls) / s
	}
	fmt.Fprintf(w, "%d API calls in %v (%.1f/s), %d answered 429; journal: %s\n",
		rep.Calls, rep.Elapsed.Round(time.Millisecond), perSecond, rep.RateLimited, journal)
	for _, f := range rep.Failed {
		fmt.Fprintf(w, "failed: plan line %d: %s into %s: %s\n", f.Line, f.SecondaryID, f.PrimaryID, f.Err)
	}
}
