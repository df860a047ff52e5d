package backfill

import (
	"context"
	"fmt"
	"time"

	"github.com/idlink/linking"
)

// Undo undoes the links the journal at journalPath records as done, the
// last one first: it unlinks each secondary identity from its primary, which
// makes the secondary a standalone user again, then restores the
// user_metadata and app_metadata the journal saved before the link (Auth0
// recreates the user without them). The user's id, email and identities
// come back; its created_at is the time of the unlink.
//
// Undo journals its steps in the same journal (undo_intent, unlinked,
// undone), so that it also resumes where it stopped; a link whose undo is
// journaled is never applied again with that journal. A journal of another
// tenant is refused (an error wrapping *LineError and ErrWrongJournal) and
// nothing is written. Interruption, unavailability, refusals and Report are
// as for Apply.
func (a *Applier) Undo(ctx context.Context, journalPath string) (Report, error) {
	start := time.Now()
	var rep Report
	if err := a.check(); err != nil {
		return rep, err
	}
	j, err := openJournal(journalPath, a.Tenant, "", !a.DryRun)
	if err != nil {
		return rep, err
	}
	defer j.close()
	recs, order := j.records()
	saved := make(map[string]linking.User, len(order))
	for _, id := range order {
		r := recs[id]
		if r.saved == nil {
			return rep, &LineError{Input: "journal", Line: r.number, Err: fmt.Errorf("the link of %q is done but no intent saved the user", id)}
		}
		u, err := r.saved.fullUser()
		if err != nil {
			return rep, &LineError{Input: "journal", Line: r.number, Err: fmt.Errorf("saved user %q: %w", id, err)}
		}
		if _, ok := u.MainIdentity(); !ok || u.ID != id {
			return rep, &LineError{Input: "journal", Line: r.number, Err: fmt.Errorf("saved user %q does not match its entries", u.ID)}
		}
		saved[id] = u
	}
	rep.Total = len(order)

	for i := len(order) - 1; i >= 0; i-- {
		id := order[i]
		r := recs[id]
		if r.state == kindUndone {
			rep.AlreadyDone++
			continue
		}
		if a.DryRun {
			rep.Remaining++
			continue
		}
		if err := ctx.Err(); err != nil {
			return a.stopped(&rep, start, fmt.Errorf("%w: %w", ErrIncomplete, context.Cause(ctx)))
		}
		if err := a.unlink(ctx, j, &rep, r, saved[id]); err != nil {
			return a.stopped(&rep, start, err)
		}
		a.progress(&rep, start, rep.AlreadyDone)
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// unlink undoes the link of the secondary s recorded by r, and journals it.
func (a *Applier) unlink(ctx context.Context, j *journal, rep *Report, r *record, s linking.User) error {
	id, _ := s.MainIdentity()
	e := entry{Line: r.line, Primary: r.primary, SecondaryID: s.ID}
	by := byResponse
	if r.state != kindUnlinked {
		resume := r.state == kindUndoIntent
		var begin func() error
		if !resume {
			begin = func() error {
				ie := e
				ie.Kind = kindUndoIntent
				return j.append(ie)
			}
		}
		op := func(ctx context.Context) error {
			_, err := a.Store.Unlink(ctx, r.primary, id.Provider, id.UserID)
			return err
		}
		confirm := func(ctx context.Context) (bool, error) {
			p, err := a.Store.User(ctx, r.primary)
			return err == nil && !p.Holds(id), err
		}
		var refused, err error
		by, refused, err = a.do(ctx, rep, resume, begin, op, confirm)
		if err != nil {
			return fmt.Errorf("backfill: unlink %s from %q (plan line %d): %w", s.ID, r.primary, r.line, err)
		}
		if refused != nil {
			return a.outcome(j, rep, e, "", refused, kindUndone, kindUndoFailed)
		}
		ue := e
		ue.Kind, ue.By = kindUnlinked, by
		if err := j.append(ue); err != nil {
			return err
		}
	}

	m := linking.Metadata{UserMetadata: s.UserMetadata, AppMetadata: s.AppMetadata}
	if len(m.UserMetadata) > 0 || len(m.AppMetadata) > 0 {
		op := func(ctx context.Context) error { return a.Store.UpdateMetadata(ctx, s.ID, m) }
		_, refused, err := a.do(ctx, rep, false, nil, op, nil)
		if err != nil {
			return fmt.Errorf("backfill: restore the metadata of %s (plan line %d): %w", s.ID, r.line, err)
		}
		if refused != nil {
			return a.outcome(j, rep, e, "", fmt.Errorf("restore metadata: %w", refused), kindUndone, kindUndoFailed)
		}
	}
	return a.outcome(j, rep, e, by, nil, kindUndone, kindUndoFailed)
}
