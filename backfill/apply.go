package backfill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/idlink/linking"
)

// Store is what Apply and Undo need of a tenant: read a user, link,
// unlink, and write metadata. The mgmt package's Store and linkingtest's
// Tenant implement it.
//
// Errors are classified with the linking sentinels, as for
// linking.UserStore: errors wrapping linking.ErrUnavailable (and
// linking.ErrRateLimited) are tried again later; linking.ErrNotFound and
// linking.ErrConflict are refusals of one link or unlink; any other error
// stops the run at once: a configuration error (credentials, scopes, the
// domain) must not wrap linking.ErrUnavailable.
//
// The Applier owns the retries: each Store call should be one request, with
// no retries of its own (for mgmt.New, mgmt.WithRetryStrategy with a zero
// RetryStrategy), so that every attempt waits for the Applier's rate limit
// and is counted in Report.Calls, and every 429 in Report.RateLimited.
type Store interface {
	linking.UserStore
	linking.MetadataWriter

	// Unlink removes the identity provider/userID from the user
	// primaryID, which makes it a standalone user again without its old
	// metadata, and returns the identities primaryID still holds (Auth0's
	// DELETE /api/v2/users/{primaryID}/identities/{provider}/{userID}).
	Unlink(ctx context.Context, primaryID, provider, userID string) ([]linking.Identity, error)
}

// ErrIncomplete is wrapped by the error of a run that stopped before the
// end: interrupted (its ctx done) or the tenant unavailable for
// MaxAttempts attempts. The journal is consistent: run again with the same
// plan and journal to resume.
var ErrIncomplete = errors.New("backfill: incomplete; run again to resume")

// Defaults of an Applier.
const (
	DefaultRate        = 2.0 // requests per second: Auth0's free plan
	DefaultMaxAttempts = 6
	DefaultCallTimeout = 30 * time.Second
)

// Applier applies a plan to a tenant, and undoes it, at a rate limit, with a
// journal that makes a run resumable.
//
// An Applier must not be used by two runs at a time. Two runs on one
// journal, in one process or two, are kept apart by a lock on the journal:
// the second is refused (ErrJournalLocked). Set its fields before the first
// run.
type Applier struct {
	// Store is the tenant. Required, unless DryRun is set.
	Store Store
	// Tenant names the tenant, e.g. its domain. Required: the journal
	// records it, and a journal of another tenant is refused.
	Tenant string
	// Policy is the linking rule's configuration, and Primary chooses each
	// line's primary without Policy.Select (nil means DefaultPrimaryPolicy;
	// it must be nil with Policy.Select); use those the plan was made with
	// (Planner.Policy and Planner.Primary). Every plan line is checked with
	// them before any call (Plan.Check), and each pair of users again, as
	// the tenant has them, just before its link.
	Policy  linking.Policy
	Primary PrimaryPolicy

	// Rate is the number of Management API calls per second, and Burst how
	// many may go at once after a pause. Zero means DefaultRate and 1. Set
	// them at or below the tenant's limit so that no call is refused with
	// 429.
	Rate  float64
	Burst int
	// MaxAttempts bounds the attempts of one call when the tenant is
	// unavailable or rate limited; then the run stops with ErrIncomplete.
	// Zero means DefaultMaxAttempts. This is the only retry layer: see
	// Store.
	MaxAttempts int
	// Backoff says how long to wait before trying again; nil means
	// DefaultBackoff.
	Backoff Backoff
	// CallTimeout bounds one call. A call in flight when the run's ctx is
	// done still runs to its end, within CallTimeout, and is journaled.
	// Zero means DefaultCallTimeout.
	CallTimeout time.Duration

	// DryRun makes Apply and Undo check the plan and the journal and count
	// what they would do, without any call and without writing the
	// journal.
	DryRun bool

	// Progress, when set, is called after each link or unlink (done,
	// failed or skipped), on the run's goroutine.
	Progress func(Progress)
	// Logger receives a record per link or unlink that fails, is skipped
	// or needs a read-back; nil logs nothing.
	Logger *slog.Logger

	once   sync.Once
	bucket *bucket
}

// Progress is how far a run is.
type Progress struct {
	// Done counts the links (or unlinks) settled, this run or before:
	// done, failed or skipped; Total is how many the plan (or journal)
	// holds.
	Done, Total int
	// DoneThisRun counts those completed by this run, in Elapsed.
	DoneThisRun int
	Elapsed     time.Duration
}

// Report is what a run did.
type Report struct {
	// Total is the number of links in the plan (for Undo: of links done in
	// the journal).
	Total int
	// Done counts the links (unlinks) this run completed, Confirmed those
	// of them known by reading the primary back after a failed or
	// interrupted call, and AlreadyDone those the journal had as complete.
	Done, Confirmed, AlreadyDone int
	// Failed are the links (unlinks) the tenant refused and that are not in
	// place. A later run tries them again.
	Failed []Failure
	// Skipped are the links of the plan not made because the users, read
	// just before, no longer qualify: those of this run and those an
	// earlier run with the same journal recorded. A skip is final for the
	// journal: plan again, or apply with a new journal, to decide them
	// anew.
	Skipped []Skip
	// Remaining counts the links (unlinks) left to do when the run stopped;
	// in a dry run, those it would make.
	Remaining int
	// Calls counts the Store calls made, reads and retries included, and
	// RateLimited those answered 429. With a Store that does not retry (see
	// Store), they are the requests the tenant got and its 429 answers.
	Calls, RateLimited int
	// Elapsed is the time the run took.
	Elapsed time.Duration
}

// Failure is a link or unlink the tenant refused.
type Failure struct {
	Line        int    `json:"line"` // the plan line
	PrimaryID   string `json:"primary_id"`
	SecondaryID string `json:"secondary_id"`
	Err         string `json:"error"`
}

// Skip is a link of the plan that Apply did not make: it read both users
// just before, and they no longer qualify under the plan's rule.
type Skip struct {
	Line        int    `json:"line"` // the plan line
	PrimaryID   string `json:"primary_id"`
	SecondaryID string `json:"secondary_id"`
	// Reason is one of:
	//   - ReasonPrimaryGone, ReasonSecondaryGone: the user does not exist
	//     (deleted, or linked into another user);
	//   - linking.ReasonAlreadyLinked: the primary holds the secondary's
	//     identity, linked outside this journal (by a login, another run);
	//     Undo with this journal leaves it alone;
	//   - ReasonPrimaryIneligible: the primary cannot be a primary any more;
	//     Verdict says why (linking.ReasonBlocked,
	//     linking.ReasonEmailUnverified, linking.ReasonEmailMismatch, ...);
	//   - ReasonNotChosen: the rule (the Policy's Selector, or else the
	//     PrimaryPolicy) chooses the secondary, as the tenant has the users;
	//   - linking.ReasonAmbiguous: the Selector cannot tell the two users
	//     apart, as the tenant has them;
	//   - the reason of the secondary's decision as its own login, with the
	//     primary as candidate, when it does not link it: ReasonLoginBlocked,
	//     linking.ReasonLoginEmailUnverified, linking.ReasonLoginIsPrimary
	//     (it holds several identities now), linking.ReasonNoCandidate (the
	//     primary is not eligible for it; Verdict says why, e.g.
	//     linking.ReasonEmailMismatch when the secondary's email changed), ...
	Reason  linking.Reason `json:"reason"`
	Verdict linking.Reason `json:"verdict,omitempty"`
}

func (a *Applier) init() {
	a.once.Do(func() {
		rate := a.Rate
		if rate <= 0 {
			rate = DefaultRate
		}
		a.bucket = newBucket(rate, a.Burst)
	})
}

// Apply links every secondary of the plan into its primary, in the plan's
// order (a line's secondaries one after the other), and records each step in
// the journal at journalPath (created when it does not exist).
//
// Before any call, Apply checks every line of the plan with Plan.Check and
// the journal against the tenant and the plan: an unsafe line, or a journal
// of another tenant or plan, is refused (an error wrapping *LineError, and
// ErrUnsafePlan or ErrWrongJournal) and nothing is written. Apply holds an
// exclusive lock on the journal for the whole run: a journal that another
// run has open is refused at once (ErrJournalLocked).
//
// Each link acts on the tenant as it is, not on the plan's copy: Apply reads
// the primary, then the secondary, and decides the pair again with the
// plan's rule: the primary may still be a primary, is still the choice of
// the Policy's Selector (or else of the PrimaryPolicy) between the two, and
// the secondary's own login, decided with linking.Decide, links it into the
// primary. After the first link of a line, the primary holds several
// identities, which a Selector always prefers. A pair that no longer
// qualifies is not linked: it is journaled as skipped and listed in
// Report.Skipped with its reason (see Skip). A primary that already holds
// the secondary's identity ends there: done, when this journal has an
// intent for the link without outcome (a run stopped around its call), or
// else skipped as linked outside this journal. So a link costs three calls
// when nothing fails: two reads and the link.
//
// Before the link, the journal gets an intent entry holding the secondary as
// just read, metadata included, since Auth0 discards the secondary's
// metadata; after it, a done or failed entry. A link whose call fails is
// confirmed by reading the primary back: the identity there means done. A
// rerun skips what is done or skipped, and starts again with the reads for
// the rest, so that no link is sent twice and none is lost.
//
// When ctx is done, the call in flight runs to its end and is journaled, and
// Apply returns an error wrapping ErrIncomplete; so it does when the tenant
// stays unavailable. Links the tenant refuses (ErrNotFound, ErrConflict, not
// in place on read-back) are listed in Report.Failed and the run goes on.
// Other store errors stop the run.
func (a *Applier) Apply(ctx context.Context, plan *Plan, journalPath string) (Report, error) {
	start := time.Now()
	rep := Report{Total: plan.Links()}
	if err := a.check(); err != nil {
		return rep, err
	}
	rl, err := newRule(a.Policy, a.Primary)
	if err != nil {
		return rep, err
	}
	if err := plan.check(rl); err != nil {
		return rep, err
	}
	j, err := openJournal(journalPath, a.Tenant, plan.Digest, !a.DryRun)
	if err != nil {
		return rep, err
	}
	defer j.close()
	recs, _ := j.records()
	for id, r := range recs {
		switch r.state {
		case kindIntent, kindDone, kindFailed, kindSkipped:
		default:
			return rep, &LineError{Input: "journal", Line: r.number,
				Err: fmt.Errorf("%w: the link of %q was undone; apply the plan with a new journal", ErrWrongJournal, id)}
		}
	}

	settled := 0 // by earlier runs
	for i, line := range plan.Lines {
		for _, s := range line.Secondaries {
			r := recs[s.ID]
			switch {
			case r != nil && r.state == kindDone:
				rep.AlreadyDone++
				settled++
				continue
			case r != nil && r.state == kindSkipped:
				rep.Skipped = append(rep.Skipped, r.skip)
				settled++
				continue
			case a.DryRun:
				rep.Remaining++
				continue
			}
			if err := ctx.Err(); err != nil {
				return a.stopped(&rep, start, fmt.Errorf("%w: %w", ErrIncomplete, context.Cause(ctx)))
			}
			pending := r != nil && r.state == kindIntent
			if err := a.link(ctx, rl, j, &rep, plan.Numbers[i], line, s, pending); err != nil {
				return a.stopped(&rep, start, err)
			}
			a.progress(&rep, start, settled)
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// stopped returns rep, with Remaining set, and err.
func (a *Applier) stopped(rep *Report, start time.Time, err error) (Report, error) {
	rep.Remaining = rep.Total - rep.Done - rep.AlreadyDone - len(rep.Failed) - len(rep.Skipped)
	rep.Elapsed = time.Since(start)
	return *rep, err
}

func (a *Applier) check() error {
	if a.Tenant == "" {
		return errors.New("backfill: Applier has no Tenant")
	}
	if a.Store == nil && !a.DryRun {
		return errors.New("backfill: Applier has no Store")
	}
	a.init()
	return nil
}

// progress reports how far the run is; settled counts the links (unlinks)
// earlier runs settled.
func (a *Applier) progress(rep *Report, start time.Time, settled int) {
	if a.Progress != nil {
		done := rep.Done + rep.AlreadyDone + len(rep.Failed) + len(rep.Skipped)
		a.Progress(Progress{
			Done:        done,
			Total:       rep.Total,
			DoneThisRun: done - settled,
			Elapsed:     time.Since(start),
		})
	}
}

// link links the secondary planned into the primary of line, which is plan
// line number n, if the users as the tenant has them still qualify under the
// rule r, and journals it. pending means the journal holds an intent for it
// without outcome.
func (a *Applier) link(ctx context.Context, r rule, j *journal, rep *Report, n int, line PlanLine, planned linking.User, pending bool) error {
	primaryID := line.Primary.ID
	id, _ := planned.MainIdentity()
	e := entry{Line: n, Primary: primaryID, SecondaryID: planned.ID}
	fail := func(err error) error {
		return fmt.Errorf("backfill: link %s into %q (plan line %d): %w", planned.ID, primaryID, n, err)
	}
	skip := func(reason, verdict linking.Reason) error {
		sk := Skip{Line: n, PrimaryID: primaryID, SecondaryID: planned.ID, Reason: reason, Verdict: verdict}
		rep.Skipped = append(rep.Skipped, sk)
		e.Kind, e.Reason, e.Verdict = kindSkipped, reason, verdict
		a.log(slog.LevelWarn, e, nil)
		return j.append(e)
	}

	p, found, err := a.read(ctx, rep, primaryID)
	switch {
	case err != nil:
		return fail(err)
	case !found:
		return skip(ReasonPrimaryGone, "")
	case p.Holds(id) && pending:
		return a.outcome(j, rep, e, byReadBack, nil, kindDone, kindFailed)
	case p.Holds(id):
		return skip(linking.ReasonAlreadyLinked, "")
	}
	s, found, err := a.read(ctx, rep, planned.ID)
	switch {
	case err != nil:
		return fail(err)
	case !found:
		return skip(ReasonSecondaryGone, "")
	}
	reason, verdict, err := r.recheck(line.Email, p, s)
	switch {
	case err != nil:
		return fail(err)
	case reason != "":
		return skip(reason, verdict)
	}

	intent := func() error {
		w, err := toWire(s)
		if err != nil {
			return err
		}
		ie := e
		ie.Kind, ie.Secondary = kindIntent, &w
		return j.append(ie)
	}
	op := func(ctx context.Context) error { return a.Store.Link(ctx, primaryID, id) }
	confirm := func(ctx context.Context) (bool, error) {
		p, err := a.Store.User(ctx, primaryID)
		return err == nil && p.Holds(id), err
	}
	by, refused, err := a.do(ctx, rep, false, intent, op, confirm)
	if err != nil {
		return fail(err)
	}
	return a.outcome(j, rep, e, by, refused, kindDone, kindFailed)
}

// read reads the user id at the rate limit, trying again while the tenant
// is unavailable. found is false when the user does not exist.
func (a *Applier) read(ctx context.Context, rep *Report, id string) (u linking.User, found bool, err error) {
	op := func(ctx context.Context) (err error) {
		u, err = a.Store.User(ctx, id)
		return err
	}
	_, refused, err := a.do(ctx, rep, false, nil, op, nil)
	switch {
	case err != nil:
		return u, false, err
	case errors.Is(refused, linking.ErrNotFound):
		return u, false, nil
	case refused != nil:
		return u, false, refused
	}
	return u, true, nil
}

// recheck decides the pair of the primary p and the secondary s, as the
// tenant has them, with the rule for a group of the normalized email email:
// the rule of Planner.Plan and Plan.Check, over these two users. It returns
// "" when s is to be linked into p, or else the reason and verdict of the
// Skip.
func (r rule) recheck(email string, p, s linking.User) (reason, verdict linking.Reason, err error) {
	if why := primaryVerdict(email, p, r.policy); why != linking.ReasonEligible {
		return ReasonPrimaryIneligible, why, nil
	}
	o, err := r.decide(email, []linking.User{p, s})
	switch {
	case err != nil:
		return "", "", err
	case o.primary.ID == "" && o.ambiguous:
		return linking.ReasonAmbiguous, "", nil
	case o.primary.ID != p.ID:
		return ReasonNotChosen, "", nil
	case len(o.skipped) > 0:
		m := o.skipped[0]
		for _, v := range m.Candidates {
			if v.UserID == p.ID {
				verdict = v.Reason
			}
		}
		return m.Reason, verdict, nil
	}
	return "", "", nil
}

// outcome journals the outcome of a link or unlink and counts it.
func (a *Applier) outcome(j *journal, rep *Report, e entry, by string, refused error, done, failed string) error {
	if refused != nil {
		e.Kind, e.Error = failed, refused.Error()
		rep.Failed = append(rep.Failed, Failure{Line: e.Line, PrimaryID: e.Primary, SecondaryID: e.SecondaryID, Err: e.Error})
		a.log(slog.LevelError, e, refused)
		return j.append(e)
	}
	e.Kind, e.By = done, by
	rep.Done++
	if by == byReadBack {
		rep.Confirmed++
		a.log(slog.LevelInfo, e, nil)
	}
	return j.append(e)
}

func (a *Applier) log(level slog.Level, e entry, err error) {
	if a.Logger == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("outcome", e.Kind),
		slog.Int("line", e.Line),
		slog.String("primary", e.Primary),
		slog.String("secondary", e.SecondaryID),
	}
	if e.By != "" {
		attrs = append(attrs, slog.String("by", e.By))
	}
	if e.Reason != "" {
		attrs = append(attrs, slog.String("reason", string(e.Reason)))
	}
	if e.Verdict != "" {
		attrs = append(attrs, slog.String("verdict", string(e.Verdict)))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	a.Logger.LogAttrs(context.Background(), level, "backfill", attrs...)
}

// How an outcome was learned.
const (
	byResponse = "response"
	byReadBack = "read_back"
)

// do makes the call op until it succeeds, each call at the rate limit.
// begin, when set, runs once after the first token is taken and before the
// first call (it writes the intent). When op fails, confirm (a read; nil when
// op may simply be repeated) tells whether op's effect is in place anyway.
// checkFirst runs confirm before the first op.
//
// It returns how the effect was learned (byResponse or byReadBack); or
// refused, the refusal of op when its effect is confirmed not in place; or
// err when the run must stop: ErrIncomplete when ctx is done or the tenant
// stayed unavailable, or an unexpected store error.
func (a *Applier) do(ctx context.Context, rep *Report, checkFirst bool, begin func() error,
	op func(context.Context) error, confirm func(context.Context) (bool, error)) (by string, refused, err error) {
	check := checkFirst && confirm != nil
	var last error
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			if attempt > a.maxAttempts() {
				return "", nil, fmt.Errorf("%w: %d attempts: %w", ErrIncomplete, attempt-1, last)
			}
			backoff := a.Backoff
			if backoff == nil {
				backoff = DefaultBackoff
			}
			if err := sleep(ctx, backoff(attempt, resetOf(last))); err != nil {
				return "", nil, fmt.Errorf("%w: %w (after: %w)", ErrIncomplete, err, last)
			}
		}
		if check {
			ok, err := a.confirmed(ctx, rep, confirm)
			switch {
			case err == nil && ok:
				return byReadBack, nil, nil
			case err == nil:
			case refusal(err):
				return "", err, nil
			case transient(err):
				last = err
				continue
			default:
				return "", nil, err
			}
		}
		err := a.call(ctx, rep, begin, op)
		begin = nil
		if err == nil {
			return byResponse, nil, nil
		}
		last = err
		switch {
		case transient(err):
			check = confirm != nil
			continue
		case errors.Is(err, ErrIncomplete):
			return "", nil, err
		case confirm == nil && refusal(err):
			return "", err, nil
		case confirm == nil:
			return "", nil, err
		}
		// Refused, or failed unexpectedly: the effect may be in place (a
		// call committed whose answer was lost, then repeated by the
		// store's retries and refused).
		ok, cerr := a.confirmed(ctx, rep, confirm)
		switch {
		case cerr == nil && ok:
			return byReadBack, nil, nil
		case cerr == nil && refusal(err):
			return "", err, nil
		case cerr == nil:
			return "", nil, err
		case transient(cerr):
			last, check = cerr, true
		default:
			return "", nil, cerr
		}
	}
}

// confirmed makes the call confirm.
func (a *Applier) confirmed(ctx context.Context, rep *Report, confirm func(context.Context) (bool, error)) (bool, error) {
	var ok bool
	err := a.call(ctx, rep, nil, func(ctx context.Context) (err error) {
		ok, err = confirm(ctx)
		return err
	})
	return ok, err
}

// call takes a token of the rate limit, runs begin when set, then fn with a
// context that ctx being done does not cancel, bounded by CallTimeout, so
// that a call once sent completes and its outcome can be journaled. A 429
// answer that says when the limit resets pauses every call until then.
func (a *Applier) call(ctx context.Context, rep *Report, begin func() error, fn func(context.Context) error) error {
	if err := a.bucket.wait(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	if begin != nil {
		if err := begin(); err != nil {
			return err
		}
	}
	timeout := a.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	rep.Calls++
	err := fn(callCtx)
	if errors.Is(err, linking.ErrRateLimited) {
		rep.RateLimited++
		if t := resetOf(err); !t.IsZero() {
			a.bucket.pause(t)
		}
	}
	return err
}

func (a *Applier) maxAttempts() int {
	if a.MaxAttempts > 0 {
		return a.MaxAttempts
	}
	return DefaultMaxAttempts
}

// transient reports whether err may go away by trying again later.
func transient(err error) bool {
	return errors.Is(err, linking.ErrUnavailable) && !errors.Is(err, ErrIncomplete)
}

// refusal reports whether err is the tenant refusing one link or unlink.
func refusal(err error) bool {
	return errors.Is(err, linking.ErrNotFound) || errors.Is(err, linking.ErrConflict)
}
