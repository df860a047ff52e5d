package linking

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of a Linker.
const (
	// DefaultTimeout bounds the work for one login: lookups, link, read-back
	// and side effects.
	DefaultTimeout = 15 * time.Second
	// DefaultReadBackTimeout bounds the read-back after a failed link.
	DefaultReadBackTimeout = 3 * time.Second
)

// Linker applies the linking rule to logins against a UserStore: it looks the
// login's email up, decides, links, and confirms the link.
//
// A Linker is safe for concurrent use and must not be copied after first use.
// Its fields must not change while it is in use.
type Linker struct {
	// Store is the tenant. Required.
	Store UserStore
	// Policy is the rule's configuration; the zero value is safe.
	Policy Policy
	// Logger receives one record per login; nil logs nothing.
	Logger *slog.Logger
	// Observe, when set, receives the audit events: one EventDecided per
	// Link call, and one event per side effect (see EventKind). It is called
	// synchronously and must not block for long; it may be called from
	// several goroutines at once.
	Observe func(Event)

	// Metadata says what of the secondary's metadata moves to the primary;
	// the zero value moves nothing. Moving needs a Store that implements
	// MetadataWriter, and costs one update only when something changes.
	Metadata MetadataPolicy
	// RevokeSessions revokes the primary's refresh tokens and sessions after
	// a new link is confirmed, so that a session someone opened on the
	// existing account before its owner linked does not survive. It needs a
	// Store that implements SessionRevoker.
	RevokeSessions bool
	// Notifier, when set, is told of every new link, to tell the person.
	Notifier Notifier

	// SearchCaseVariants also searches the login's email with its case
	// ignored, to find an existing user whose identity provider stored the
	// email with capitals (a social "Jane@Example.com" for a passwordless
	// "jane@example.com"), which Auth0's case-sensitive users-by-email
	// cannot find. It costs one more Management API call per login looked
	// up, and needs a Store that implements EmailSearcher. Auth0's search is
	// eventually consistent, so a user created in the last seconds may be
	// missed; what it finds is judged like any other candidate.
	SearchCaseVariants bool

	// Timeout bounds the work for one login: its lookups, its link, the
	// read-back and the side effects. The work is shared by the concurrent
	// calls for that login and belongs to none of them: a caller that gives
	// up does not cancel it, and a patient caller is not cut short by an
	// impatient one. Zero means DefaultTimeout.
	Timeout time.Duration
	// ReadBackTimeout bounds the read of the primary after a failed link,
	// which gets this budget of its own however much of Timeout the link
	// spent. Zero means DefaultReadBackTimeout.
	ReadBackTimeout time.Duration

	mu      sync.Mutex
	flights map[string]*flight // the work in progress, by login
}

// flight is the work for one login, shared by the calls that wait for it.
type flight struct {
	done chan struct{} // closed when r and err are set
	r    Result
	err  error
	// linkSent is set before the link request goes out: from then on, a
	// caller that stops waiting cannot know whether the login's identity
	// still has a user of its own.
	linkSent atomic.Bool

	mu      sync.Mutex
	waiters map[*int]time.Time // the deadline of each caller still waiting; zero: none
}

// flightKey is the context key of the flight a work context belongs to.
type flightKey struct{}

// WaitDeadline returns the latest deadline among the callers still waiting
// for the Linker's work that ctx belongs to: a store may wait for its rate
// budget only that long, since the work itself outlives its callers (see
// Linker.Timeout). ok is false when ctx is not a Linker's work or a caller
// waits without a deadline; a deadline in the past means no caller waits any
// more.
func WaitDeadline(ctx context.Context) (deadline time.Time, ok bool) {
	f, _ := ctx.Value(flightKey{}).(*flight)
	if f == nil {
		return time.Time{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.waiters {
		if d.IsZero() {
			return time.Time{}, false
		}
		if d.After(deadline) {
			deadline = d
		}
	}
	return deadline, true
}

// wait registers a caller with ctx's deadline as waiting for f, until leave
// is called.
func (f *flight) wait(ctx context.Context) (leave func()) {
	d, _ := ctx.Deadline()
	id := new(int)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.waiters == nil {
		f.waiters = make(map[*int]time.Time)
	}
	f.waiters[id] = d
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.waiters, id)
	}
}

// Result is what a Linker did with a login.
//
// Results of concurrent calls for the same login are shared: treat the
// slices and maps in a Result as read-only.
type Result struct {
	// Action is what the caller must do: ActionLink means the link is in
	// place and the login must end as PrimaryUserID; ActionDeny means refuse
	// the login; ActionNone means let it go on as it is.
	Action Action
	// PrimaryUserID is the user id to hand to setPrimaryUser, set exactly
	// when Action is ActionLink.
	PrimaryUserID string
	// Reason says why. It is the decision's reason, ReasonAlreadyLinked when
	// the link was found in place (before linking, or on read-back after the
	// link call failed), ReasonStoreError when the store failed before any
	// link was sent, or ReasonLinkUnconfirmed when a link was sent and its
	// outcome is not known.
	Reason Reason
	// Decision is the decision behind the result; empty when the store
	// failed before there was one.
	Decision Decision
	// Stale reports that the lookup was answered from an eventually
	// consistent source (see StaleLookuper): a user created seconds ago may
	// be missing, so a "nothing to link" answer must not be remembered as
	// final; the next login looks again.
	Stale bool

	// The side effects of new links; all empty otherwise.

	// Linked are the users this call linked into the primary, each as it was
	// just before (Auth0 discards a secondary's metadata when linking: keep
	// it if it matters): the login's user with ActionLink, the absorbed
	// users with ActionAbsorb, even when a later one failed.
	Linked []Secondary
	// MetadataKeys are the metadata keys written to the primary, as
	// "user_metadata.KEY" and "app_metadata.KEY".
	MetadataKeys []string
	// SessionsRevoked reports that the primary's sessions were revoked.
	SessionsRevoked bool
	// Notified reports that the Notifier was told.
	Notified bool
	// SideEffectErr holds what went wrong in the side effects (metadata,
	// revocation, notification). The link stands: these never undo it, and
	// Link returns no error for them.
	SideEffectErr error
}

// Secondary is a user linked into a primary, as it was just before the link.
type Secondary struct {
	// UserID is the user's id, which no longer exists after the link.
	UserID string
	// Identity is the identity that was linked.
	Identity Identity
	// Metadata is the user's metadata, which Auth0 discards.
	Metadata Metadata
}

func secondaryOf(u User, id Identity) Secondary {
	return Secondary{UserID: u.ID, Identity: id, Metadata: Metadata{UserMetadata: u.UserMetadata, AppMetadata: u.AppMetadata}}
}

// FailedOpen reports whether the result lets the login go on only because
// the store was unavailable (or its rate budget exhausted) and the policy
// fails open.
func (r Result) FailedOpen() bool {
	return (r.Reason == ReasonStoreError || r.Reason == ReasonRateBudget) && r.Action == ActionNone
}

// EventKind names an audit event. The names are stable.
type EventKind string

// The audit events of a Linker.
const (
	// EventDecided: once per Link call, with the action, the reason, every
	// candidate's verdict and, when Link failed, the error.
	EventDecided EventKind = "decided"
	// EventLinked: a new link was written (or found on read-back).
	EventLinked EventKind = "linked"
	// EventMetadataMerged: metadata keys were written to the primary.
	EventMetadataMerged EventKind = "metadata_merged"
	// EventSessionsRevoked: the primary's sessions were revoked.
	EventSessionsRevoked EventKind = "sessions_revoked"
	// EventNotified: the Notifier was told of the link.
	EventNotified EventKind = "notified"
	// EventSideEffectFailed: a side effect failed; Err says which and why.
	EventSideEffectFailed EventKind = "side_effect_failed"
)

// Event is an audit event of a Linker.
type Event struct {
	Kind EventKind
	// LoginUserID and Identity are the login's user and identity.
	LoginUserID string
	Identity    Identity
	// PrimaryUserID is the primary, when there is one.
	PrimaryUserID string
	// Action and Reason are the result's.
	Action Action
	Reason Reason
	// Candidates are the verdicts, for EventDecided.
	Candidates []Verdict
	// Keys are the metadata keys written, for EventMetadataMerged.
	Keys []string
	// Err is the error, for EventDecided when Link failed and for
	// EventSideEffectFailed.
	Err error
}

// Link applies the rule to one login.
//
// Nothing is read or written when the login itself is not eligible (no
// verified, valid email from a trusted connection, or a user that already
// holds several identities). Otherwise Link looks the email up as given and,
// when it differs, lowercased (Auth0's users-by-email is case-sensitive), and
// in any case with SearchCaseVariants; decides; and links the login's
// identity into the primary. When the link call fails, Link reads the primary
// back: the identity being there is success (a link whose response was lost,
// then re-sent and refused).
//
// Concurrent calls for the same login (the same normalized email, user and
// identity) share one lookup and one link. The shared work runs on its own,
// bounded by Timeout, and keeps the values of the ctx of the call that
// started it but not its cancellation; each caller waits for it as long as
// its own ctx allows.
//
// A failure answers with Policy.OnStoreError (ActionDeny, or ActionNone when
// failing open) and ReasonStoreError only when the store was unavailable
// (the error wraps ErrUnavailable) and no link was sent. Once the link
// request was sent, the answer is the link, confirmed, or ActionDeny with
// ReasonLinkUnconfirmed: the login's identity may already belong to the
// primary, so letting the login go on as its own user could end it as a
// user that no longer exists; the next attempt finds the link in place. Any
// other store error (a refused credential, a malformed answer) denies with
// ReasonStoreError whatever the policy. The error wraps the store's
// (ErrUnavailable, ErrRateLimited, ErrNotFound, ...). An inconsistent login
// is an error wrapping ErrInvalidLogin, with ActionDeny; a Linker that cannot
// work as configured returns an error with ActionDeny and
// ReasonMisconfigured.
func (l *Linker) Link(ctx context.Context, login Login) (Result, error) {
	r, err := l.link(ctx, login, "", nil, func(candidates []User) Decision {
		return Decide(login, candidates, l.Policy)
	})
	return l.decided(ctx, login, r, err)
}

// LinkProven links the login into the account proven, after Link answered
// ActionConfirm and the person proved control of exactly that account by a
// fresh login whose ID token's subject the caller has compared with
// proven.ID. proven is the account as Link offered it (Decision.Confirm),
// with the email and email_verified of that ID token: the proof is the live
// read, so LinkProven makes no lookup, and a confirmed login costs what an
// automatic one does (one lookup, one link). It decides with DecideProven —
// the account is linked only if it may be — then links, confirms and answers
// as Link does: ActionLink and the primary to hand to setPrimaryUser, or
// ReasonProofRefused and nothing linked.
func (l *Linker) LinkProven(ctx context.Context, login Login, proven User) (Result, error) {
	r, err := l.link(ctx, login, proven.ID, func(ctx context.Context) ([]User, bool, error) {
		return []User{proven}, false, nil
	}, func(candidates []User) Decision {
		return DecideProven(login, candidates, proven.ID, l.Policy)
	})
	return l.decided(ctx, login, r, err)
}

// decided emits the EventDecided of a Link or LinkProven call, and returns
// its outcome.
func (l *Linker) decided(ctx context.Context, login Login, r Result, err error) (Result, error) {
	l.emit(ctx, Event{
		Kind: EventDecided, LoginUserID: login.User.ID, Identity: login.Identity,
		PrimaryUserID: r.PrimaryUserID, Action: r.Action, Reason: r.Reason,
		Candidates: r.Decision.Candidates, Err: err,
	})
	return r, err
}

// candidatesFunc returns the users to decide a login with, and whether they
// may be stale (see StaleLookuper).
type candidatesFunc func(ctx context.Context) (users []User, stale bool, err error)

// link finds the candidates with find (nil: look the login's email up),
// decides with decide, links and confirms, for one login; proven is the
// account a proof stands for, if any, and keeps such work apart from the
// login's plain work.
func (l *Linker) link(ctx context.Context, login Login, proven string, find candidatesFunc, decide func([]User) Decision) (Result, error) {
	if err := l.checkConfig(); err != nil {
		// Not a store failure: a Linker that cannot apply the rule as
		// configured denies, whatever Policy.OnStoreError says.
		return Result{Action: ActionDeny, Reason: ReasonMisconfigured}, err
	}
	email, reason := checkLogin(login, l.Policy)
	if reason != "" {
		d := Decide(login, nil, l.Policy)
		r := Result{Action: d.Action, Reason: d.Reason, Decision: d}
		if reason == ReasonInvalidLogin {
			return r, fmt.Errorf("linking: login of user %q with identity %s: %w",
				login.User.ID, login.Identity.UserIDOf(), ErrInvalidLogin)
		}
		return r, nil
	}

	if find == nil {
		find = func(ctx context.Context) ([]User, bool, error) { return l.lookup(ctx, login.User.Email, email) }
	}
	key := email + "\x00" + login.User.ID + "\x00" + login.Identity.UserIDOf() + "\x00" + proven
	f, leave := l.join(ctx, key, func(ctx context.Context, f *flight) (Result, error) {
		return l.run(ctx, f, login, find, decide)
	})
	defer leave()
	select {
	case <-f.done:
		return f.r, f.err
	case <-ctx.Done():
		err := fmt.Errorf("%w: %w", ErrUnavailable, context.Cause(ctx))
		if f.linkSent.Load() {
			return unconfirmed(Decision{}), fmt.Errorf("linking: stopped waiting for a link already sent, try again: %w", err)
		}
		return l.failed(err), err
	}
}

// join returns the flight for key, starting it with work when there is none,
// with the caller of ctx registered as waiting for it until leave is called.
// The work runs under a context with ctx's values, not its cancellation,
// bounded by Timeout, from which WaitDeadline tells how long its callers
// wait.
func (l *Linker) join(ctx context.Context, key string, work func(context.Context, *flight) (Result, error)) (f *flight, leave func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.flights[key]; ok {
		return f, f.wait(ctx)
	}
	if l.flights == nil {
		l.flights = make(map[string]*flight)
	}
	f = &flight{done: make(chan struct{})}
	l.flights[key] = f
	leave = f.wait(ctx) // before the work starts, which may ask WaitDeadline
	go func() {
		ctx, cancel := context.WithTimeout(context.WithValue(context.WithoutCancel(ctx), flightKey{}, f), cmp.Or(l.Timeout, DefaultTimeout))
		defer cancel()
		r, err := work(ctx, f)
		l.mu.Lock()
		delete(l.flights, key)
		l.mu.Unlock()
		f.r, f.err = r, err
		close(f.done)
	}()
	return f, leave
}

// run finds the candidates, decides with decide, links and confirms, for
// one login.
func (l *Linker) run(ctx context.Context, f *flight, login Login, find candidatesFunc, decide func([]User) Decision) (Result, error) {
	candidates, stale, err := find(ctx)
	if err != nil {
		return l.failed(err), err
	}
	d := decide(candidates)
	r := Result{Action: d.Action, Reason: d.Reason, Decision: d, Stale: stale}
	switch {
	case d.Action == ActionAbsorb:
		return l.absorb(ctx, login, r)
	case d.Action != ActionLink:
		return r, nil
	case d.Reason == ReasonAlreadyLinked:
		r.PrimaryUserID = d.Primary.ID
		return r, nil
	}

	f.linkSent.Store(true)
	readBack, known, err := l.linkOne(ctx, d.Primary.ID, d.Secondary)
	switch {
	case err == nil:
		r.PrimaryUserID = d.Primary.ID
		if readBack {
			r.Reason = ReasonAlreadyLinked
		}
		l.afterLink(ctx, login, &r, []Secondary{secondaryOf(login.User, d.Secondary)})
		return r, nil
	case !known:
		return unconfirmed(d), err
	}
	// Confirmed not in place: the login's user is still its own.
	failed := l.failed(err)
	failed.Decision = d
	return failed, err
}

// absorb links every user of the decision's Absorb into the login's user, in
// order. The login's user stays whatever happens, so a failure answers as a
// failing store, per policy; the users linked before it are in the result.
func (l *Linker) absorb(ctx context.Context, login Login, r Result) (Result, error) {
	var linked []Secondary
	for _, u := range r.Decision.Absorb {
		id, _ := u.MainIdentity() // Decide absorbs users with a main identity only
		if _, _, err := l.linkOne(ctx, login.User.ID, id); err != nil {
			failed := l.failed(err)
			failed.Decision = r.Decision
			if len(linked) > 0 {
				l.afterLink(ctx, login, &failed, linked)
			}
			return failed, err
		}
		linked = append(linked, secondaryOf(u, id))
	}
	l.afterLink(ctx, login, &r, linked)
	return r, nil
}

// linkOne links secondary into primaryID and confirms it: by the answer, or,
// when the link call fails, by reading the primary back (a link whose answer
// was lost, then re-sent and refused), with a budget of its own since the
// link may have spent the work's. It returns whether the read-back told; on
// error, known reports whether the link is known not to be in place.
func (l *Linker) linkOne(ctx context.Context, primaryID string, secondary Identity) (readBack, known bool, err error) {
	linkErr := l.Store.Link(ctx, primaryID, secondary)
	switch {
	case linkErr == nil:
		return false, true, nil
	case errors.Is(linkErr, ErrRateBudget): // never sent
		return false, true, fmt.Errorf("linking: link %s into %s: %w", secondary.UserIDOf(), primaryID, linkErr)
	}
	readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmp.Or(l.ReadBackTimeout, DefaultReadBackTimeout))
	primary, readErr := l.Store.User(readCtx, primaryID)
	cancel()
	if readErr == nil && primary.Holds(secondary) {
		return true, true, nil
	}
	err = fmt.Errorf("linking: link %s into %s: %w", secondary.UserIDOf(), primaryID, linkErr)
	if readErr != nil {
		return false, false, fmt.Errorf("%w (read back: %w)", err, readErr)
	}
	return false, true, err
}

// lookup returns the users stored with the login's email as given, with its
// normalized form when that differs, and with any case when
// SearchCaseVariants is set; each user once; and whether any answer may be
// stale.
func (l *Linker) lookup(ctx context.Context, raw, normalized string) ([]User, bool, error) {
	byEmail := func(email string) func() ([]User, bool, error) {
		return func() ([]User, bool, error) {
			if s, ok := l.Store.(StaleLookuper); ok {
				return s.UsersByEmailMaybeStale(ctx, email)
			}
			users, err := l.Store.UsersByEmail(ctx, email)
			return users, false, err
		}
	}
	type query struct {
		what string
		run  func() ([]User, bool, error)
	}
	queries := []query{{"users by email", byEmail(raw)}}
	if normalized != raw {
		queries = append(queries, query{"users by normalized email", byEmail(normalized)})
	}
	if l.SearchCaseVariants {
		queries = append(queries, query{"users by email in any case", func() ([]User, bool, error) {
			// Eventually consistent too, but only for case variants beside
			// the consistent lookups above: as documented on
			// SearchCaseVariants, not a reason to look again every time.
			users, err := l.Store.(EmailSearcher).SearchUsersByEmail(ctx, normalized)
			return users, false, err
		}})
	}
	var all []User
	stale := false
	seen := make(map[string]bool)
	for _, q := range queries {
		users, s, err := q.run()
		if err != nil {
			return nil, false, fmt.Errorf("linking: look up %s: %w", q.what, err)
		}
		stale = stale || s
		for _, u := range users { // copied: never append to a store's slice
			if !seen[u.ID] {
				seen[u.ID] = true
				all = append(all, u)
			}
		}
	}
	return all, stale, nil
}

// failed is the result for a store that failed with err before any link
// was sent: Policy.OnStoreError when the store was unavailable (ReasonStoreError,
// or ReasonRateBudget when its rate budget was exhausted), and a denial
// for anything else (a configuration error is never a reason to let logins
// through unlinked).
func (l *Linker) failed(err error) Result {
	r := Result{Action: ActionDeny, Reason: ReasonStoreError}
	if errors.Is(err, ErrRateBudget) {
		r.Reason = ReasonRateBudget
	}
	if l.Policy.OnStoreError == FailOpen && errors.Is(err, ErrUnavailable) {
		r.Action = ActionNone
	}
	return r
}

// unconfirmed is the result for a link that was sent and whose outcome is not
// known: a denial under every policy, to be tried again.
func unconfirmed(d Decision) Result {
	return Result{Action: ActionDeny, Reason: ReasonLinkUnconfirmed, Decision: d}
}

// checkConfig reports a Linker that cannot work as configured: no Store, an
// invalid Policy, a negative timeout, or a side effect its Store cannot
// perform.
func (l *Linker) checkConfig() error {
	if l.Store == nil {
		return errors.New("linking: Linker has no Store")
	}
	if err := l.Policy.Validate(); err != nil {
		return err
	}
	if l.Timeout < 0 || l.ReadBackTimeout < 0 {
		return errors.New("linking: Linker has a negative Timeout or ReadBackTimeout")
	}
	if l.Metadata.MergeUserMetadata || len(l.Metadata.AppMetadataKeys) > 0 {
		if _, ok := l.Store.(MetadataWriter); !ok {
			return errors.New("linking: Metadata moves metadata, but the Store is not a MetadataWriter")
		}
	}
	if l.RevokeSessions {
		if _, ok := l.Store.(SessionRevoker); !ok {
			return errors.New("linking: RevokeSessions is set, but the Store is not a SessionRevoker")
		}
	}
	if l.SearchCaseVariants {
		if _, ok := l.Store.(EmailSearcher); !ok {
			return errors.New("linking: SearchCaseVariants is set, but the Store is not an EmailSearcher")
		}
	}
	return nil
}

// afterLink performs the side effects of new, confirmed links of linked into
// the decision's primary, in order: metadata, session revocation,
// notification. A failure is recorded in r and in an event, and does not
// stop the others or undo the links.
func (l *Linker) afterLink(ctx context.Context, login Login, r *Result, linked []Secondary) {
	primary := r.Decision.Primary
	event := func(kind EventKind) Event {
		return Event{Kind: kind, LoginUserID: login.User.ID, Identity: login.Identity,
			PrimaryUserID: primary.ID, Action: r.Action, Reason: r.Reason}
	}
	fail := func(err error) {
		r.SideEffectErr = errors.Join(r.SideEffectErr, err)
		e := event(EventSideEffectFailed)
		e.Err = err
		l.emit(ctx, e)
	}
	r.Linked = linked
	l.emit(ctx, event(EventLinked))

	secondaries := make([]Metadata, len(linked))
	for i, s := range linked {
		secondaries[i] = s.Metadata
	}
	primaryMetadata := Metadata{UserMetadata: primary.UserMetadata, AppMetadata: primary.AppMetadata}
	if update, keys := l.Metadata.plan(primaryMetadata, secondaries); len(keys) > 0 {
		if err := l.Store.(MetadataWriter).UpdateMetadata(ctx, primary.ID, update); err != nil {
			fail(fmt.Errorf("linking: move metadata into %s: %w", primary.ID, err))
		} else {
			r.MetadataKeys = keys
			e := event(EventMetadataMerged)
			e.Keys = keys
			l.emit(ctx, e)
		}
	}
	if l.RevokeSessions {
		if err := l.Store.(SessionRevoker).RevokeSessions(ctx, primary.ID); err != nil {
			fail(fmt.Errorf("linking: revoke sessions of %s: %w", primary.ID, err))
		} else {
			r.SessionsRevoked = true
			l.emit(ctx, event(EventSessionsRevoked))
		}
	}
	if l.Notifier != nil {
		var errs []error
		for _, s := range linked {
			if err := l.Notifier.NotifyLinked(ctx, primary, s.Identity); err != nil {
				errs = append(errs, fmt.Errorf("linking: notify %s: %w", primary.ID, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			fail(err)
		} else {
			r.Notified = true
			l.emit(ctx, event(EventNotified))
		}
	}
}

// emit logs an event and hands it to Observe.
func (l *Linker) emit(ctx context.Context, e Event) {
	if l.Logger != nil {
		attrs := []slog.Attr{
			slog.String("event", string(e.Kind)),
			slog.String("user_id", e.LoginUserID),
			slog.String("identity", e.Identity.UserIDOf()),
			slog.String("action", e.Action.String()),
			slog.String("reason", string(e.Reason)),
		}
		if e.PrimaryUserID != "" {
			attrs = append(attrs, slog.String("primary_user_id", e.PrimaryUserID))
		}
		if len(e.Keys) > 0 {
			attrs = append(attrs, slog.Any("keys", e.Keys))
		}
		level := slog.LevelInfo
		if e.Err != nil {
			level = slog.LevelError
			attrs = append(attrs, slog.String("error", e.Err.Error()))
		}
		l.Logger.LogAttrs(ctx, level, "linking: "+string(e.Kind), attrs...)
	}
	if l.Observe != nil {
		l.Observe(e)
	}
}
