package backfill_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/backfill"
	"github.com/idlink/linking/backfill/backfilltest"
	"github.com/idlink/linking/linkingtest"
)

// TestRoundTrip plans, applies and undoes a generated tenant of 10,000 users
// on the in-memory tenant: apply reads the two users of each link and makes
// one link call, and no other call, the tenant then holds exactly the
// expected users and identities, and undo gives back the original users,
// emails and metadata.
func TestRoundTrip(t *testing.T) {
	spec := backfilltest.Spec{Seed: 3, Users: 10_000, Groups: 25}
	p := prepare(t, spec)
	want := spec.Expected()
	a := fastApplier(p.tenant)
	ctx := context.Background()

	rep, err := a.Apply(ctx, p.plan, p.journal)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if rep.Done != len(want.Links) || rep.Total != len(want.Links) || len(rep.Failed) != 0 {
		t.Errorf("got report %+v, want %d links done", rep, len(want.Links))
	}
	wantCalls := linkingtest.Calls{linkingtest.MethodLink: len(want.Links), linkingtest.MethodUser: 2 * len(want.Links)}
	if diff := cmp.Diff(wantCalls, p.tenant.Calls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if rep.Calls != 3*len(want.Links) {
		t.Errorf("got Report.Calls %d, want %d", rep.Calls, 3*len(want.Links))
	}
	after := p.tenant.Users()
	if diff := diffUsers(t, linked(p.users, want.Links), after); diff != "" {
		t.Errorf("tenant after apply (-want +got):\n%s", diff)
	}
	checkHeldOnce(t, after)

	// A rerun finds everything done and makes no call.
	p.tenant.ResetCalls()
	rep, err = a.Apply(ctx, p.plan, p.journal)
	if err != nil || rep.AlreadyDone != len(want.Links) || rep.Done != 0 {
		t.Errorf("rerun: got %+v, %v; want all %d already done", rep, err, len(want.Links))
	}
	if calls := p.tenant.Calls(); len(calls) != 0 {
		t.Errorf("rerun: got calls %v, want none", calls)
	}

	rep, err = a.Undo(ctx, p.journal)
	if err != nil {
		t.Fatalf("Undo: %v", err)
	}
	if rep.Done != len(want.Links) {
		t.Errorf("Undo: got %d done, want %d", rep.Done, len(want.Links))
	}
	if diff := diffUsers(t, p.users, p.tenant.Users()); diff != "" {
		t.Errorf("tenant after undo (-want +got):\n%s", diff)
	}

	// Applying again with the same journal is refused: its links were
	// undone.
	if _, err := a.Apply(ctx, p.plan, p.journal); !errors.Is(err, backfill.ErrWrongJournal) {
		t.Errorf("Apply after Undo: got %v, want ErrWrongJournal", err)
	}
}

// failingStore wraps the tenant; fail, when set, runs before each Link and
// may commit it and fail. Once it fails with errKilled, the store stands for
// a process killed at that point: every later call fails with errKilled,
// until the rerun clears dead.
type failingStore struct {
	*linkingtest.Tenant
	links int
	dead  bool
	fail  func(n int, link func() error) error
}

func (s *failingStore) Link(ctx context.Context, primaryID string, secondary linking.Identity) error {
	if s.dead {
		return errKilled
	}
	s.links++
	link := func() error { return s.Tenant.Link(ctx, primaryID, secondary) }
	if s.fail == nil {
		return link()
	}
	err := s.fail(s.links, link)
	s.dead = errors.Is(err, errKilled)
	return err
}

func (s *failingStore) User(ctx context.Context, id string) (linking.User, error) {
	if s.dead {
		return linking.User{}, errKilled
	}
	return s.Tenant.User(ctx, id)
}

var errKilled = errors.New("killed")

// TestApplyFaults: faults in the middle of a run (429 storms, 5xx, links
// committed whose answer is lost, a run stopped after an intent with the link
// sent or not, a torn journal line, an interrupt) end, after at most one
// rerun, with every link in place exactly once, and no link sent twice.
func TestApplyFaults(t *testing.T) {
	rateLimited := &linkingtest.APIError{Status: 429, Message: "Too Many Requests", Err: linking.ErrRateLimited}
	unavailable := &linkingtest.APIError{Status: 503, Message: "Service Unavailable", Err: linking.ErrUnavailable}
	tests := []struct {
		name string
		// setup injects the fault; it returns the extra Link calls the
		// tenant sees beyond one per link.
		setup func(p prepared, s *failingStore, a *backfill.Applier) int
		// firstErr is what the first run must fail with; nil: it succeeds.
		firstErr error
		// after runs between the first run and the rerun.
		after func(t *testing.T, p prepared)
		// confirmed is how many links are known by read-back in all.
		confirmed int
		// interrupt, when set, cancels the first run after that many
		// links.
		interrupt int
	}{
		{
			name: "429 storm",
			setup: func(p prepared, s *failingStore, a *backfill.Applier) int {
				p.tenant.FailNext(linkingtest.MethodLink, 3, rateLimited)
				p.tenant.FailNext(linkingtest.MethodUser, 1, rateLimited)
				return 3
			},
		},
		{
			name: "5xx",
			setup: func(p prepared, s *failingStore, a *backfill.Applier) int {
				p.tenant.FailNext(linkingtest.MethodLink, 3, unavailable)
				return 3
			},
		},
		{
			name: "committed, answer lost",
			setup: func(p prepared, s *failingStore, a *backfill.Applier) int {
				p.tenant.CommitThenFail(3, unavailable)
				return 0
			},
			confirmed: 3,
		},
		{
			name: "committed, answer lost, retry refused",
			setup: func(p prepared, s *failingStore, a *backfill.Applier) int {
				p.tenant.CommitThenFail(1, &linkingtest.APIError{Status: 409, Message: "Specified identity already exists", Err: linking.ErrConflict})
				return 0
			},
			confirmed: 1,
		},
		{
			name: "unavailable beyond the attempts",
			setup: func(p prepared, s *failingStore, a *backfill.Applier) int {
				a.MaxAttempts = 3
				p.tenant.FailNext(linkingtest.MethodLink, 3, unavailable)
				return 3
			},
			firstErr: backfill.ErrIncomplete,
		},
		{
			name: "killed after the link was committed",
			setup: func(p prepared, s *failingStore, a *backfill.Applier) int {
				s.fail = func(n int, link func() error) error {
					if n == 5 {
						if err := link(); err != nil {
							return err
						}
						return errKilled
					}
					return link()
				}
				return 0
			},
			firstErr:  errKilled,
			confirmed: 1,
		},
		{
			name: "killed before the link was sent",
			setup: func(p prepared, s *failingStore, a *backfill.Applier) int {
				s.fail = func(n int, link func() error) error {
					if n == 5 {
						return errKilled
					}
					return link()
				}
				return 0
			},
			firstErr: errKilled,
		},
		{
			name: "killed while writing the journal",
			setup: func(p prepared, s *failingStore, a *backfill.Applier) int {
				s.fail = func(n int, link func() error) error {
					if n == 5 {
						return errKilled
					}
					return link()
				}
				return 0
			},
			firstErr: errKilled,
			after: func(t *testing.T, p prepared) {
				f, err := os.OpenFile(p.journal, os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteString(`{"kind":"done","time":"2024-01-01T00:00:00Z","line":3,"prim`)
				f.Close()
			},
		},
		{
			name:      "interrupted",
			setup:     func(p prepared, s *failingStore, a *backfill.Applier) int { return 0 },
			interrupt: 4,
			firstErr:  backfill.ErrIncomplete,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prepare(t, smallSpec)
			want := smallSpec.Expected()
			s := &failingStore{Tenant: p.tenant}
			a := fastApplier(s)
			extra := tt.setup(p, s, a)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.interrupt > 0 {
				a.Progress = func(pr backfill.Progress) {
					if pr.Done == tt.interrupt {
						cancel()
					}
				}
			}

			rep, err := a.Apply(ctx, p.plan, p.journal)
			confirmed := rep.Confirmed
			if tt.firstErr == nil {
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
			} else {
				if !errors.Is(err, tt.firstErr) {
					t.Fatalf("Apply: got %v, want %v", err, tt.firstErr)
				}
				if tt.after != nil {
					tt.after(t, p)
				}
				s.fail, s.dead = nil, false
				a.Progress = nil
				rep, err = a.Apply(context.Background(), p.plan, p.journal)
				if err != nil {
					t.Fatalf("rerun: %v", err)
				}
				confirmed += rep.Confirmed
			}
			if got := rep.Done + rep.AlreadyDone; got != len(want.Links) || len(rep.Failed) != 0 {
				t.Errorf("got %d links done and failures %v, want %d and none", got, rep.Failed, len(want.Links))
			}
			if got := p.tenant.Calls()[linkingtest.MethodLink]; got != len(want.Links)+extra {
				t.Errorf("got %d Link calls, want %d (one per link, and %d failed)", got, len(want.Links)+extra, extra)
			}
			if confirmed != tt.confirmed {
				t.Errorf("got %d links confirmed by read-back, want %d", confirmed, tt.confirmed)
			}
			after := p.tenant.Users()
			if diff := diffUsers(t, linked(p.users, want.Links), after); diff != "" {
				t.Errorf("tenant (-want +got):\n%s", diff)
			}
			checkHeldOnce(t, after)

			// Undo still finds every link with its saved metadata.
			checkUndo(t, a, p, p.users)
		})
	}
}

// TestApplyRefusedLink: a link the tenant refuses (409) and that is not in
// place on read-back is reported and journaled as failed; the run goes on,
// and a rerun tries it again.
func TestApplyRefusedLink(t *testing.T) {
	p := prepare(t, smallSpec)
	want := smallSpec.Expected()
	first := p.plan.Lines[0].Secondaries[0].ID
	p.tenant.FailNext(linkingtest.MethodLink, 1, &linkingtest.APIError{Status: 409, Message: "Specified identity already exists", Err: linking.ErrConflict})
	a := fastApplier(p.tenant)
	rep, err := a.Apply(context.Background(), p.plan, p.journal)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(rep.Failed) != 1 || rep.Failed[0].SecondaryID != first || rep.Failed[0].Line != p.plan.Numbers[0] {
		t.Fatalf("got failures %+v, want the link of %s on line %d", rep.Failed, first, p.plan.Numbers[0])
	}
	if rep.Done != len(want.Links)-1 {
		t.Errorf("got %d done, want %d", rep.Done, len(want.Links)-1)
	}
	p.tenant.ResetCalls()
	rep, err = a.Apply(context.Background(), p.plan, p.journal)
	if err != nil || len(rep.Failed) != 0 || rep.Done != 1 || rep.AlreadyDone != len(want.Links)-1 {
		t.Errorf("rerun: got %+v, %v; want the failed link done", rep, err)
	}
	if got := p.tenant.Calls()[linkingtest.MethodLink]; got != 1 {
		t.Errorf("rerun: got %d Link calls, want 1", got)
	}
}

// TestApplyBadInput: a plan edited by hand into something unsafe, or a
// journal of another tenant or plan, is refused with a message naming the
// line, before any call, and nothing is written.
func TestApplyBadInput(t *testing.T) {
	edit := func(line int, from, to string) func(t *testing.T, p prepared) {
		return func(t *testing.T, p prepared) {
			data, err := os.ReadFile(p.planPath)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(string(data), "\n")
			if !strings.Contains(lines[line-1], from) {
				t.Fatalf("plan line %d has no %q: %s", line, from, lines[line-1])
			}
			lines[line-1] = strings.Replace(lines[line-1], from, to, 1)
			if err := os.WriteFile(p.planPath, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, p prepared)
		tenant  string
		input   string
		line    int
		is      error
		text    string
	}{
		{
			name: "secondary no longer shares the email",
			prepare: func(t *testing.T, p prepared) {
				s := p.plan.Lines[1].Secondaries[0]
				edit(2, `"email":"`+s.Email+`"`, `"email":"someone.else@example.com"`)(t, p)
			},
			input: "plan", line: 2, is: backfill.ErrUnsafePlan, text: "someone.else@example.com",
		},
		{
			name: "unverified primary",
			prepare: func(t *testing.T, p prepared) {
				edit(3, `"email_verified":true`, `"email_verified":false`)(t, p)
			},
			input: "plan", line: 3, is: backfill.ErrUnsafePlan, text: "email_unverified",
		},
		{
			name: "secondary from an untrusted connection",
			prepare: func(t *testing.T, p prepared) {
				s := p.plan.Lines[0].Secondaries[0]
				main := s.Identities[0]
				edit(1, `"provider":"`+main.Provider+`","user_id":"`+main.UserID+`"`, `"provider":"samlp","user_id":"`+main.UserID+`"`)(t, p)
				edit(1, `"user_id":"`+s.ID+`"`, `"user_id":"samlp|`+main.UserID+`"`)(t, p)
			},
			input: "plan", line: 1, is: backfill.ErrUnsafePlan, text: "login_connection_untrusted",
		},
		{
			name: "primary and secondary swapped",
			prepare: func(t *testing.T, p prepared) {
				editPlan(t, p.planPath, 2, func(l *backfill.PlanLine) { l.Primary, l.Secondaries[0] = l.Secondaries[0], l.Primary })
			},
			input: "plan", line: 2, is: backfill.ErrUnsafePlan, text: string(backfill.ReasonNotChosen),
		},
		{
			name: "a user in two lines",
			prepare: func(t *testing.T, p prepared) {
				data, _ := os.ReadFile(p.planPath)
				lines := strings.SplitAfter(string(data), "\n")
				os.WriteFile(p.planPath, []byte(strings.Join(append(lines[:len(lines)-1], lines[0]), "")), 0o600)
			},
			input: "plan", line: len(smallSpec.Expected().Links) + 1, is: backfill.ErrUnsafePlan, text: "also",
		},
		{
			name: "a line that is not a plan line",
			prepare: func(t *testing.T, p prepared) {
				edit(2, `{"email"`, `{"email"}`)(t, p)
			},
			input: "plan", line: 2, text: "not a plan line",
		},
		{
			name: "journal of another tenant",
			prepare: func(t *testing.T, p prepared) {
				a := fastApplier(linkingtest.NewTenant(p.users...))
				a.Tenant = "other.example.com"
				if _, err := a.Apply(context.Background(), p.plan, p.journal); err != nil {
					t.Fatal(err)
				}
			},
			input: "journal", line: 1, is: backfill.ErrWrongJournal, text: "other.example.com",
		},
		{
			name: "journal of another plan",
			prepare: func(t *testing.T, p prepared) {
				other := *p.plan
				other.Digest = "sha256:0000"
				a := fastApplier(linkingtest.NewTenant(p.users...))
				if _, err := a.Apply(context.Background(), &other, p.journal); err != nil {
					t.Fatal(err)
				}
			},
			input: "journal", line: 1, is: backfill.ErrWrongJournal, text: "sha256:0000",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prepare(t, smallSpec)
			tt.prepare(t, p)
			before, _ := os.ReadFile(p.journal)

			_, err := applyFile(fastApplier(p.tenant), p.planPath, p.journal)
			var le *backfill.LineError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a *LineError", err)
			}
			if le.Input != tt.input || le.Line != tt.line {
				t.Errorf("got %s line %d, want %s line %d (%v)", le.Input, le.Line, tt.input, tt.line, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("got %v, want it to wrap %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("got message %q, want it to mention %q", err, tt.text)
			}
			if calls := p.tenant.Calls(); len(calls) != 0 {
				t.Errorf("got calls %v, want none", calls)
			}
			after, _ := os.ReadFile(p.journal)
			if string(after) != string(before) {
				t.Errorf("the journal changed:\n%s\nwant:\n%s", after, before)
			}
		})
	}
}

// TestUndoResume: an undo interrupted halfway, then run again, gives back
// the original tenant; a journal of another tenant is refused.
func TestUndoResume(t *testing.T) {
	p := prepare(t, smallSpec)
	a := fastApplier(p.tenant)
	if _, err := a.Apply(context.Background(), p.plan, p.journal); err != nil {
		t.Fatal(err)
	}

	other := fastApplier(p.tenant)
	other.Tenant = "other.example.com"
	p.tenant.ResetCalls()
	if _, err := other.Undo(context.Background(), p.journal); !errors.Is(err, backfill.ErrWrongJournal) {
		t.Errorf("Undo for another tenant: got %v, want ErrWrongJournal", err)
	}
	if calls := p.tenant.Calls(); len(calls) != 0 {
		t.Errorf("Undo for another tenant: got calls %v, want none", calls)
	}

	ctx, cancel := context.WithCancel(context.Background())
	a.Progress = func(pr backfill.Progress) {
		if pr.Done == 3 {
			cancel()
		}
	}
	rep, err := a.Undo(ctx, p.journal)
	if !errors.Is(err, backfill.ErrIncomplete) || rep.Done != 3 {
		t.Fatalf("interrupted Undo: got %d done, %v; want 3 and ErrIncomplete", rep.Done, err)
	}
	a.Progress = nil
	// The next unlink fails: the rerun reads the primary back, unlinks
	// again and restores the metadata.
	p.tenant.FailNext(linkingtest.MethodUnlink, 1, &linkingtest.APIError{Status: 503, Err: linking.ErrUnavailable})
	rep, err = a.Undo(context.Background(), p.journal)
	if err != nil {
		t.Fatalf("Undo rerun: %v", err)
	}
	if rep.AlreadyDone != 3 || rep.Done != rep.Total-3 {
		t.Errorf("Undo rerun: got %+v, want 3 already done and the rest done", rep)
	}
	if diff := diffUsers(t, p.users, p.tenant.Users()); diff != "" {
		t.Errorf("tenant after undo (-want +got):\n%s", diff)
	}
}

// TestDryRun: a dry run counts what would be done, makes no call and writes
// no journal.
func TestDryRun(t *testing.T) {
	p := prepare(t, smallSpec)
	a := fastApplier(p.tenant)
	a.DryRun = true
	rep, err := a.Apply(context.Background(), p.plan, p.journal)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if want := len(smallSpec.Expected().Links); rep.Remaining != want || rep.Total != want {
		t.Errorf("got %+v, want %d remaining", rep, want)
	}
	if calls := p.tenant.Calls(); len(calls) != 0 {
		t.Errorf("got calls %v, want none", calls)
	}
	if _, err := os.Stat(p.journal); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got journal %v, want none", err)
	}
	if _, err := a.Undo(context.Background(), p.journal); err == nil {
		t.Errorf("dry-run Undo without a journal: got no error")
	}
}

// resetError is a 429 that says when the rate limit resets, as
// X-RateLimit-Reset does.
type resetError struct{ at time.Time }

func (e resetError) Error() string             { return "429 Too Many Requests" }
func (e resetError) Unwrap() error             { return linking.ErrRateLimited }
func (e resetError) RateLimitReset() time.Time { return e.at }

// TestApplyRateLimitReset: after a 429 that carries the reset time, the
// Applier waits until then (its Backoff is told the time) before it reads
// back and links again.
func TestApplyRateLimitReset(t *testing.T) {
	p := prepare(t, smallSpec)
	reset := time.Now().Add(20 * time.Millisecond).Truncate(time.Millisecond)
	p.tenant.FailNext(linkingtest.MethodLink, 1, resetError{reset})
	a := fastApplier(p.tenant)
	var told []time.Time
	a.Backoff = func(attempt int, retryAfter time.Time) time.Duration {
		told = append(told, retryAfter)
		return 0
	}
	rep, err := a.Apply(context.Background(), p.plan, p.journal)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(told) != 1 || !told[0].Equal(reset) {
		t.Errorf("Backoff got %v, want one call with %v", told, reset)
	}
	if rep.RateLimited != 1 || rep.Done != len(smallSpec.Expected().Links) {
		t.Errorf("got %d rate limited and %d done, want 1 and %d", rep.RateLimited, rep.Done, len(smallSpec.Expected().Links))
	}
	// Two reads before each link, and one read-back after the 429.
	if got, want := p.tenant.Calls()[linkingtest.MethodUser], 2*len(smallSpec.Expected().Links)+1; got != want {
		t.Errorf("got %d user reads, want %d", got, want)
	}
}

// TestApplyLiveTenant: the tenant changes between plan and apply. Apply
// reads both users just before each link and decides the pair again with
// the plan's rule: a pair that no longer qualifies is skipped with its
// reason, journaled, and final for the journal; a link that is made saves
// the secondary as it was just before (its new metadata), so that undo
// gives back the tenant as apply found it.
func TestApplyLiveTenant(t *testing.T) {
	spec := backfilltest.Spec{Seed: 7, Users: 200, Groups: 4}
	p := prepare(t, spec)
	ctx := context.Background()
	lines := p.plan.Lines
	if len(lines) < 12 {
		t.Fatalf("got %d plan lines, want 12", len(lines))
	}
	update := func(id string, fn func(*linking.User)) {
		t.Helper()
		if _, err := p.tenant.UpdateUser(ctx, id, func(u *linking.User) error { fn(u); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	sec := func(i int) string { return lines[i].Secondaries[0].ID }
	pri := func(i int) string { return lines[i].Primary.ID }

	update(sec(0), func(u *linking.User) { u.UserMetadata = map[string]any{"theme": "changed since the plan"} })
	update(sec(1), func(u *linking.User) { u.Blocked = true })
	update(sec(2), func(u *linking.User) { u.Email = "someone.else@example.org" })
	update(pri(3), func(u *linking.User) { u.EmailVerified = false })
	if err := p.tenant.DeleteUser(ctx, sec(4)); err != nil {
		t.Fatal(err)
	}
	if err := p.tenant.DeleteUser(ctx, pri(5)); err != nil {
		t.Fatal(err)
	}
	// The secondary of line 6 became a primary: another user was linked
	// into it.
	other := linking.User{ID: "email|other", Email: "other@example.org", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "email", UserID: "other", Connection: "email"}}}
	if err := p.tenant.AddUser(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := p.tenant.Link(ctx, sec(6), other.Identities[0]); err != nil {
		t.Fatal(err)
	}
	// Line 7 was linked at a login since the plan.
	main7, _ := lines[7].Secondaries[0].MainIdentity()
	if err := p.tenant.Link(ctx, pri(7), main7); err != nil {
		t.Fatal(err)
	}
	// Line 8 was edited by hand: primary and secondary swapped, with their
	// creation times, so that the plan's copy passes Plan.Check; the
	// tenant's users do not.
	l8 := &lines[8]
	l8.Primary, l8.Secondaries[0] = l8.Secondaries[0], l8.Primary
	l8.Primary.CreatedAt, l8.Secondaries[0].CreatedAt = l8.Secondaries[0].CreatedAt, l8.Primary.CreatedAt
	if err := p.plan.Check(backfilltest.Policy(), nil); err != nil {
		t.Fatalf("the swapped line does not pass Check: %v", err)
	}
	before := p.tenant.Users()
	p.tenant.ResetCalls()

	skip := func(i int, reason, verdict linking.Reason) backfill.Skip {
		return backfill.Skip{Line: p.plan.Numbers[i], PrimaryID: lines[i].Primary.ID, SecondaryID: lines[i].Secondaries[0].ID, Reason: reason, Verdict: verdict}
	}
	wantSkipped := []backfill.Skip{
		skip(1, backfill.ReasonLoginBlocked, ""),
		skip(2, linking.ReasonNoCandidate, linking.ReasonEmailMismatch),
		skip(3, backfill.ReasonPrimaryIneligible, linking.ReasonEmailUnverified),
		skip(4, backfill.ReasonSecondaryGone, ""),
		skip(5, backfill.ReasonPrimaryGone, ""),
		skip(6, linking.ReasonLoginIsPrimary, ""),
		skip(7, linking.ReasonAlreadyLinked, ""),
		skip(8, backfill.ReasonNotChosen, ""),
	}
	a := fastApplier(p.tenant)
	rep, err := a.Apply(ctx, p.plan, p.journal)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if diff := cmp.Diff(wantSkipped, rep.Skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if rep.Done != 4 || len(rep.Failed) != 0 || rep.Remaining != 0 {
		t.Errorf("got %d done, %d failed, %d remaining; want 4 done (lines 0, 9, 10, 11)", rep.Done, len(rep.Failed), rep.Remaining)
	}
	// Three calls per link; two reads per skip, one when the primary is
	// gone or already holds the secondary.
	wantCalls := linkingtest.Calls{linkingtest.MethodLink: 4, linkingtest.MethodUser: 4*2 + 6*2 + 2*1}
	if diff := cmp.Diff(wantCalls, p.tenant.Calls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if rep.Calls != 4+wantCalls[linkingtest.MethodUser] {
		t.Errorf("got Report.Calls %d, want %d", rep.Calls, 4+wantCalls[linkingtest.MethodUser])
	}
	linkedNow := make(map[string]string)
	for _, i := range []int{0, 9, 10, 11} {
		linkedNow[sec(i)] = pri(i)
	}
	if diff := diffUsers(t, linked(before, linkedNow), p.tenant.Users()); diff != "" {
		t.Errorf("tenant after apply (-want +got):\n%s", diff)
	}

	// The skips are final for the journal: a rerun reports them and makes
	// no call.
	p.tenant.ResetCalls()
	rep, err = a.Apply(ctx, p.plan, p.journal)
	if err != nil || rep.AlreadyDone != 4 || rep.Done != 0 {
		t.Errorf("rerun: got %+v, %v; want 4 already done", rep, err)
	}
	if diff := cmp.Diff(wantSkipped, rep.Skipped); diff != "" {
		t.Errorf("rerun: skipped (-want +got):\n%s", diff)
	}
	if calls := p.tenant.Calls(); len(calls) != 0 {
		t.Errorf("rerun: got calls %v, want none", calls)
	}

	// Undo restores the secondary of line 0 with the metadata it had just
	// before the link, and leaves the link of line 7 alone.
	checkUndo(t, a, p, before)
}

// TestApplyPrimaryPolicy: Apply checks each line against the PrimaryPolicy
// the plan was made with; given another one, it refuses the plan, naming the
// first line whose primary the policy does not choose.
func TestApplyPrimaryPolicy(t *testing.T) {
	dir := t.TempDir()
	users := smallSpec.All()
	export := writeExport(t, dir, smallSpec.Each)
	planner := backfill.Planner{Policy: backfilltest.Policy(), Primary: backfill.PreferConnections(backfilltest.ConnEmail)}
	planPath, _ := makePlan(t, dir, export, planner)
	plan := readPlan(t, planPath)

	tests := []struct {
		name    string
		primary backfill.PrimaryPolicy
		wantErr bool
	}{
		{"the plan's policy", backfill.PreferConnections(backfilltest.ConnEmail), false},
		{"the default policy", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant := linkingtest.NewTenant(users...)
			a := fastApplier(tenant)
			a.Primary = tt.primary
			rep, err := a.Apply(context.Background(), plan, filepath.Join(t.TempDir(), "journal.jsonl"))
			if !tt.wantErr {
				if err != nil || rep.Done != plan.Links() || len(rep.Skipped) != 0 {
					t.Errorf("got %+v, %v; want %d links done", rep, err, plan.Links())
				}
				return
			}
			var le *backfill.LineError
			if !errors.As(err, &le) || !errors.Is(err, backfill.ErrUnsafePlan) || !strings.Contains(err.Error(), string(backfill.ReasonNotChosen)) {
				t.Fatalf("got %v, want an unsafe plan line: %s", err, backfill.ReasonNotChosen)
			}
			// The first line whose primary is not the oldest user: one of
			// the passwordless primaries the plan's policy prefers.
			want := 0
			for i, l := range plan.Lines {
				if main, _ := l.Primary.MainIdentity(); main.Connection == backfilltest.ConnEmail {
					want = plan.Numbers[i]
					break
				}
			}
			if le.Line != want {
				t.Errorf("got line %d, want %d", le.Line, want)
			}
			if calls := tenant.Calls(); len(calls) != 0 {
				t.Errorf("got calls %v, want none", calls)
			}
		})
	}
}

// journalOrder returns the secondaries of the journal's entries of kind, in
// the journal's order.
func journalOrder(t *testing.T, path, kind string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct {
			Kind        string `json:"kind"`
			SecondaryID string `json:"secondary_id"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == kind {
			ids = append(ids, e.SecondaryID)
		}
	}
	return ids
}

// TestRoundTripSelect plans, applies and undoes, on the in-memory tenant,
// groups of 3 and 5 with a selector that prefers the oldest user: every
// member is linked into the oldest of its group, N−1 links per group, with
// two reads and one link call each; undo unlinks them in the reverse order
// and gives back the original users, metadata included.
func TestRoundTripSelect(t *testing.T) {
	users, links := groupsSpec{sizes: []int{3, 5, 3, 5, 5, 3}, singles: 20}.users()
	policy := selectPolicy(linking.PreferOldest)
	p, s := prepareUsers(t, users, backfill.Planner{Policy: policy})
	if s.Planned != 6 || s.Links != 18 {
		t.Fatalf("got %d lines and %d links, want 6 and 18", s.Planned, s.Links)
	}
	if diff := cmp.Diff(links, planLinks(p.plan)); diff != "" {
		t.Fatalf("plan links (-want +got):\n%s", diff)
	}
	a := fastApplier(p.tenant)
	a.Policy = policy
	ctx := context.Background()

	rep, err := a.Apply(ctx, p.plan, p.journal)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if rep.Done != len(links) || len(rep.Failed)+len(rep.Skipped) != 0 {
		t.Errorf("got %d done, failures %v, skipped %v; want %d done", rep.Done, rep.Failed, rep.Skipped, len(links))
	}
	wantCalls := linkingtest.Calls{linkingtest.MethodLink: len(links), linkingtest.MethodUser: 2 * len(links)}
	if diff := cmp.Diff(wantCalls, p.tenant.Calls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	after := p.tenant.Users()
	if diff := diffUsers(t, linked(p.users, links), after); diff != "" {
		t.Errorf("tenant after apply (-want +got):\n%s", diff)
	}
	checkHeldOnce(t, after)

	checkUndo(t, a, p, p.users)
	done, undone := journalOrder(t, p.journal, "done"), journalOrder(t, p.journal, "undone")
	slices.Reverse(done)
	if diff := cmp.Diff(done, undone); diff != "" {
		t.Errorf("undo order, want the reverse of the links' (-want +got):\n%s", diff)
	}
}

// TestApplySelectBadInput: a plan made with a selector and edited against
// it, or applied with another rule, is refused naming the line, before any
// call, and nothing is written.
func TestApplySelectBadInput(t *testing.T) {
	users, _ := groupsSpec{sizes: []int{3, 5, 3}}.users()
	policy := selectPolicy(linking.PreferOldest)
	tests := []struct {
		name   string
		edit   func(l *backfill.PlanLine)
		policy linking.Policy
		line   int
		text   string
	}{
		{
			name:   "primary swapped with a secondary",
			edit:   func(l *backfill.PlanLine) { l.Primary, l.Secondaries[2] = l.Secondaries[2], l.Primary },
			policy: policy,
			line:   2,
			text:   `the selector "oldest" chooses`,
		},
		{
			name:   "chosen_by edited",
			edit:   func(l *backfill.PlanLine) { l.ChosenBy = "connection:" + backfilltest.ConnEmail },
			policy: policy,
			line:   2,
			text:   `by "oldest", not`,
		},
		{
			name:   "a secondary as old as the primary",
			edit:   func(l *backfill.PlanLine) { l.Secondaries[1].CreatedAt = l.Primary.CreatedAt },
			policy: policy,
			line:   2,
			text:   string(linking.ReasonAmbiguous),
		},
		{
			name:   "applied with another selector",
			policy: selectPolicy(linking.PreferConnection(backfilltest.ConnDatabase), linking.PreferOldest),
			line:   1,
			text:   `by "connection:Username-Password-Authentication", not "auth0|p000-0" by "oldest"`,
		},
		{
			name:   "applied without a selector",
			policy: backfilltest.Policy(),
			line:   1,
			text:   "planned with a selector",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := prepareUsers(t, users, backfill.Planner{Policy: policy})
			if got := p.plan.Lines[1].Primary.ID; got != "email|p001-1" {
				t.Fatalf("got primary %s on line 2, want email|p001-1", got)
			}
			if tt.edit != nil {
				editPlan(t, p.planPath, 2, tt.edit)
			}
			a := fastApplier(p.tenant)
			a.Policy = tt.policy
			_, err := applyFile(a, p.planPath, p.journal)
			checkRefused(t, err, tt.line, tt.text)
			checkRefused(t, err, tt.line, string(backfill.ReasonNotChosen))
			if calls := p.tenant.Calls(); len(calls) != 0 {
				t.Errorf("got calls %v, want none", calls)
			}
			if _, err := os.Stat(p.journal); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("got a journal (%v), want none", err)
			}
		})
	}

	// A plan made without a selector is refused by an Applier with one.
	p := prepare(t, smallSpec)
	a := fastApplier(p.tenant)
	a.Policy = policy
	_, err := a.Apply(context.Background(), p.plan, p.journal)
	checkRefused(t, err, 1, "planned without a selector")
}

// TestApplySelectLive: the tenant changes between plan and apply, under a
// selector. Apply reads both users before each link and decides the pair
// again with the selector: a blocked secondary is skipped, and so is a pair
// whose users the selector now orders the other way (the primary recreated
// by an unlink, so newer), or cannot tell apart (the secondary has become a
// primary too); the rest of each group is linked.
func TestApplySelectLive(t *testing.T) {
	users, _ := groupsSpec{sizes: []int{5, 3, 3}}.users()
	policy := selectPolicy(linking.PreferOldest)
	p, _ := prepareUsers(t, users, backfill.Planner{Policy: policy})
	ctx := context.Background()
	lines := p.plan.Lines
	if len(lines) != 3 {
		t.Fatalf("got %d plan lines, want 3", len(lines))
	}
	update := func(id string, fn func(*linking.User)) {
		t.Helper()
		if _, err := p.tenant.UpdateUser(ctx, id, func(u *linking.User) error { fn(u); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// Line 0: a secondary was blocked.
	update(lines[0].Secondaries[1].ID, func(u *linking.User) { u.Blocked = true })
	// Line 1: the last secondary became a primary: another user with the
	// same email was linked into it.
	last := lines[1].Secondaries[1]
	other := person(1, signup{backfilltest.ConnEmail, 30})[0]
	other.ID, other.Identities[0].UserID = "email|other", "other"
	if err := p.tenant.AddUser(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := p.tenant.Link(ctx, last.ID, other.Identities[0]); err != nil {
		t.Fatal(err)
	}
	// Line 2: the primary was unlinked from another user since the plan,
	// which recreated it: it is now the newest.
	update(lines[2].Primary.ID, func(u *linking.User) { u.CreatedAt = time.Now() })
	before := p.tenant.Users()
	p.tenant.ResetCalls()

	skip := func(i, s int, reason linking.Reason) backfill.Skip {
		return backfill.Skip{Line: p.plan.Numbers[i], PrimaryID: lines[i].Primary.ID, SecondaryID: lines[i].Secondaries[s].ID, Reason: reason}
	}
	wantSkipped := []backfill.Skip{
		skip(0, 1, backfill.ReasonLoginBlocked),
		skip(1, 1, linking.ReasonAmbiguous),
		skip(2, 0, backfill.ReasonNotChosen),
		skip(2, 1, backfill.ReasonNotChosen),
	}
	a := fastApplier(p.tenant)
	a.Policy = policy
	rep, err := a.Apply(ctx, p.plan, p.journal)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if diff := cmp.Diff(wantSkipped, rep.Skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	linkedNow := map[string]string{lines[1].Secondaries[0].ID: lines[1].Primary.ID}
	for _, s := range []int{0, 2, 3} {
		linkedNow[lines[0].Secondaries[s].ID] = lines[0].Primary.ID
	}
	if rep.Done != len(linkedNow) || len(rep.Failed) != 0 {
		t.Errorf("got %d done, failures %v; want %d done", rep.Done, rep.Failed, len(linkedNow))
	}
	if diff := diffUsers(t, linked(before, linkedNow), p.tenant.Users()); diff != "" {
		t.Errorf("tenant after apply (-want +got):\n%s", diff)
	}
	checkUndo(t, a, p, before)
}
