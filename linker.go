package linking

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/sync/singleflight"
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
	// Observe, when set, is called once per Link call with what happened,
	// for metrics and audit. It runs on the caller's goroutine and must not
	// block for long.
	Observe func(Event)

	group singleflight.Group
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
	// link call failed), or ReasonStoreError when the store failed.
	Reason Reason
	// Decision is the decision behind the result; empty when the store
	// failed before there was one.
	Decision Decision
}

// FailedOpen reports whether the result lets the login go on only because
// the store failed and the policy fails open.
func (r Result) FailedOpen() bool { return r.Reason == ReasonStoreError && r.Action == ActionNone }

// Event is what a Linker reports to Observe for each Link call.
type Event struct {
	// LoginUserID and Identity are the login's user and identity.
	LoginUserID string
	Identity    Identity
	// Result is what Link returned.
	Result Result
	// Err is the error Link returned, or nil.
	Err error
}

// Link applies the rule to one login.
//
// Nothing is read or written when the login itself is not eligible (no
// verified, valid email from a trusted connection, or a user that already
// holds several identities). Otherwise Link looks the email up as given and,
// when it differs, lowercased (Auth0's users-by-email is case-sensitive),
// decides, and links the login's identity into the primary. When the link
// call fails, Link reads the primary back: the identity being there is
// success (a link whose response was lost, then re-sent and refused).
//
// Concurrent calls for the same login (the same normalized email, user and
// identity) share one lookup and one link; each caller still returns when
// its own ctx is done. The shared work runs under the ctx of the call that
// started it.
//
// On error, the Result holds the policy's answer for a failing store
// (Policy.OnStoreError: ActionDeny, or ActionNone when failing open) with
// ReasonStoreError, and the error wraps the store's (ErrUnavailable,
// ErrRateLimited, ErrNotFound, ...). An inconsistent login is an error
// wrapping ErrInvalidLogin, with ActionDeny.
func (l *Linker) Link(ctx context.Context, login Login) (Result, error) {
	r, err := l.link(ctx, login)
	l.report(ctx, login, r, err)
	return r, err
}

func (l *Linker) link(ctx context.Context, login Login) (Result, error) {
	if l.Store == nil {
		return l.failed(), errors.New("linking: Linker has no Store")
	}
	if err := l.Policy.Validate(); err != nil {
		return l.failed(), err
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

	key := email + "\x00" + login.User.ID + "\x00" + login.Identity.UserIDOf()
	ch := l.group.DoChan(key, func() (any, error) {
		r, err := l.run(ctx, login, email)
		return r, err
	})
	select {
	case <-ctx.Done():
		return l.failed(), fmt.Errorf("linking: %w: %w", ErrUnavailable, context.Cause(ctx))
	case out := <-ch:
		return out.Val.(Result), out.Err
	}
}

// run looks up, decides, links and confirms, for one login.
func (l *Linker) run(ctx context.Context, login Login, email string) (Result, error) {
	candidates, err := l.lookup(ctx, login.User.Email, email)
	if err != nil {
		return l.failed(), err
	}
	d := Decide(login, candidates, l.Policy)
	r := Result{Action: d.Action, Reason: d.Reason, Decision: d}
	if d.Action != ActionLink {
		return r, nil
	}
	if d.Reason == ReasonAlreadyLinked {
		r.PrimaryUserID = d.Primary.ID
		return r, nil
	}

	linkErr := l.Store.Link(ctx, d.Primary.ID, d.Secondary)
	if linkErr == nil {
		r.PrimaryUserID = d.Primary.ID
		return r, nil
	}
	// The link may have succeeded with its response lost (and a retry then
	// refused): only the primary as it is now can tell.
	primary, readErr := l.Store.User(ctx, d.Primary.ID)
	if readErr == nil && primary.Holds(d.Secondary) {
		r.PrimaryUserID = d.Primary.ID
		r.Reason = ReasonAlreadyLinked
		return r, nil
	}
	failed := l.failed()
	failed.Decision = d
	err = fmt.Errorf("linking: link %s into %s: %w", d.Secondary.UserIDOf(), d.Primary.ID, linkErr)
	if readErr != nil {
		err = fmt.Errorf("%w (read back: %w)", err, readErr)
	}
	return failed, err
}

// lookup returns the users stored with the login's email as given, and with
// its normalized form when that differs, each user once.
func (l *Linker) lookup(ctx context.Context, raw, normalized string) ([]User, error) {
	users, err := l.Store.UsersByEmail(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("linking: look up users by email: %w", err)
	}
	if normalized == raw {
		return users, nil
	}
	more, err := l.Store.UsersByEmail(ctx, normalized)
	if err != nil {
		return nil, fmt.Errorf("linking: look up users by normalized email: %w", err)
	}
	all := make([]User, 0, len(users)+len(more))
	seen := make(map[string]bool, len(users)+len(more))
	for _, u := range append(users, more...) {
		if !seen[u.ID] {
			seen[u.ID] = true
			all = append(all, u)
		}
	}
	return all, nil
}

// failed is the result for a failing store, per Policy.OnStoreError.
func (l *Linker) failed() Result {
	r := Result{Action: ActionDeny, Reason: ReasonStoreError}
	if l.Policy.OnStoreError == FailOpen {
		r.Action = ActionNone
	}
	return r
}

func (l *Linker) report(ctx context.Context, login Login, r Result, err error) {
	if l.Logger != nil {
		attrs := []slog.Attr{
			slog.String("user_id", login.User.ID),
			slog.String("identity", login.Identity.UserIDOf()),
			slog.String("action", r.Action.String()),
			slog.String("reason", string(r.Reason)),
		}
		level := slog.LevelInfo
		if r.PrimaryUserID != "" {
			attrs = append(attrs, slog.String("primary_user_id", r.PrimaryUserID))
		}
		if err != nil {
			level = slog.LevelError
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		l.Logger.LogAttrs(ctx, level, "linking: login", attrs...)
	}
	if l.Observe != nil {
		l.Observe(Event{LoginUserID: login.User.ID, Identity: login.Identity, Result: r, Err: err})
	}
}
