package mgmt

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/auth0/go-auth0/management"

	"github.com/idlink/linking"
)

// DefaultLookupBatch is how many logins' lookups one user search serves at
// most, by default (Store.LookupBatch).
const DefaultLookupBatch = 20

// Facts about Auth0's user search (GET /api/v2/users with q and
// search_engine=v3) that batched lookups rely on:
//
//   - q=email:("a@x" OR "b@y") finds the users whose email is any of those;
//     the email field matches with case ignored.
//   - The search is eventually consistent: a user created or changed seconds
//     ago may be missing. users-by-email is immediately consistent.
//   - A page holds at most 100 users (per_page), and a search returns at most
//     1,000 in all.
//   - Auth0 documents no bound on q's length; batches keep q under
//     maxSearchQuery bytes.
const (
	maxBatchWait   = time.Second
	searchPerPage  = 100
	searchMaxPages = 10
	maxSearchQuery = 2000
)

// UsersByEmailMaybeStale is UsersByEmail under load: when lookups would have
// to wait for the tenant's rate budget (see the package documentation on
// pacing), it queues the lookup, and one user search serves the queued
// lookups of up to LookupBatch logins at once, as soon as the budget admits
// it. Such an answer is stale: the search is eventually consistent, so a
// user created seconds ago may be missing. When the budget is idle, it is
// UsersByEmail, and fresh. Either way it returns the users whose email is
// email exactly, case included. It implements linking.StaleLookuper.
//
// A lookup whose callers (linking.WaitDeadline, or ctx's deadline) cannot
// wait for the next slot is answered at once with linking.ErrRateBudget.
func (s *Store) UsersByEmailMaybeStale(ctx context.Context, email string) ([]linking.User, bool, error) {
	if s.budget == nil || s.lookupBatch() <= 1 || strings.ContainsAny(email, "\"\\") || !s.batch.busy(s.budget) {
		users, err := s.UsersByEmail(ctx, email)
		return users, false, err
	}
	users, err := s.batch.lookup(withPriority(ctx, priorityLookup), s, email)
	return users, true, err
}

func (s *Store) lookupBatch() int {
	if s.LookupBatch > 0 {
		return s.LookupBatch
	}
	return DefaultLookupBatch
}

// searchEmails finds the users whose email is any of emails, with case
// ignored, a page of 100 at a time (at most 1,000).
func (s *Store) searchEmails(ctx context.Context, emails []string) ([]linking.User, error) {
	q := `email:"` + emails[0] + `"`
	if len(emails) > 1 {
		q = `email:("` + strings.Join(emails, `" OR "`) + `")`
	}
	var users []linking.User
	for page := 0; page < searchMaxPages; page++ {
		var found *management.UserList
		err := s.call(ctx, "search users by email", false, func(ctx context.Context) (err error) {
			found, err = s.m.User.List(ctx, management.Query(q), management.Parameter("search_engine", "v3"),
				management.PerPage(searchPerPage), management.Page(page))
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, u := range found.Users {
			if u != nil {
				users = append(users, toUser(u))
			}
		}
		if len(found.Users) < searchPerPage {
			break
		}
	}
	return users, nil
}

// batcher queues the lookups of a Store under load, and serves them by user
// searches, one batch at a time.
type batcher struct {
	mu      sync.Mutex
	queue   []*lookup
	running bool
}

// lookup is one queued lookup.
type lookup struct {
	email    string
	queued   time.Time
	deadline time.Time // when its callers stop waiting; zero: no bound
	done     chan struct{}
	users    []linking.User
	err      error
}

// busy reports whether a lookup sent now would queue: lookups already wait,
// or the budget would make one wait.
func (b *batcher) busy(bud *budget) bool {
	b.mu.Lock()
	queued := len(b.queue) > 0
	b.mu.Unlock()
	if queued {
		return true
	}
	bud.mu.Lock()
	defer bud.mu.Unlock()
	return bud.wait(priorityLookup, time.Now()) > 0
}

// lookup queues a lookup of email and waits for its batch, as long as ctx
// allows. A lookup that cannot be served before its deadline is refused at
// once with linking.ErrRateBudget.
func (b *batcher) lookup(ctx context.Context, s *Store, email string) ([]linking.User, error) {
	l := &lookup{email: email, queued: time.Now(), done: make(chan struct{})}
	l.deadline, _ = deadlineOf(ctx)
	s.budget.mu.Lock()
	wait := s.budget.wait(priorityLookup, time.Now())
	s.budget.mu.Unlock()
	if !l.deadline.IsZero() && time.Now().Add(wait).After(l.deadline) {
		return nil, fmt.Errorf("mgmt: look up users by email: the tenant's rate budget frees a request in %v, after the deadline: %w",
			wait.Round(time.Millisecond), linking.ErrRateBudget)
	}
	b.mu.Lock()
	b.queue = append(b.queue, l)
	if !b.running {
		b.running = true
		go b.run(s)
	}
	b.mu.Unlock()
	select {
	case <-l.done:
		return l.users, l.err
	case <-ctx.Done():
		return nil, fmt.Errorf("mgmt: look up users by email: %w: %w", linking.ErrUnavailable, context.Cause(ctx))
	}
}

// run serves the queue, a batch at a time, until it is empty. It waits until
// the budget admits a lookup and, while the tenant's bucket is less than
// half full, until LookupBatch lookups are queued or the first has waited
// maxBatchWait; then it takes the lookups queued by then, up to LookupBatch,
// into one search. Fuller batches spend fewer of the tight budget's
// requests, which keeps it for links and for the logins still to come.
func (b *batcher) run(s *Store) {
	// A batch serves several logins: its requests carry none of their
	// contexts, only the deadline of the most patient.
	ctx := withPriority(context.Background(), priorityLookup)
	for {
		for {
			now := time.Now()
			s.budget.mu.Lock()
			d := s.budget.wait(priorityLookup, now)
			tight := s.budget.available(now) < s.budget.limit/2
			s.budget.mu.Unlock()
			if d == 0 && (!tight || b.ready(s.lookupBatch(), now)) {
				break
			}
			if b.idle() {
				return
			}
			time.Sleep(min(max(d, 10*time.Millisecond), 20*time.Millisecond))
		}
		batch := b.take(s.lookupBatch())
		if len(batch) == 0 {
			return
		}
		emails := make([]string, 0, len(batch))
		seen := make(map[string]bool)
		var latest time.Time
		bounded := true
		for _, l := range batch {
			if !seen[l.email] {
				seen[l.email] = true
				emails = append(emails, l.email)
			}
			if l.deadline.IsZero() {
				bounded = false
			} else if l.deadline.After(latest) {
				latest = l.deadline
			}
		}
		bctx, cancel := context.WithCancel(ctx)
		if bounded {
			bctx, cancel = context.WithDeadline(ctx, latest)
		}
		users, err := s.searchEmails(bctx, emails)
		cancel()
		for _, l := range batch {
			l.err = err
			for _, u := range users {
				if u.Email == l.email {
					l.users = append(l.users, u)
				}
			}
			close(l.done)
		}
	}
}

// ready reports whether the queue makes a batch worth a request of a tight
// budget: n lookups, or one that has waited maxBatchWait.
func (b *batcher) ready(n int, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue) >= n || len(b.queue) > 0 && now.Sub(b.queue[0].queued) >= maxBatchWait
}

// idle stops the batcher when no lookup waits any more, and reports whether
// it did.
func (b *batcher) idle() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drop(time.Now())
	if len(b.queue) == 0 {
		b.running = false
		return true
	}
	return false
}

// drop answers the queued lookups whose callers no longer wait. b.mu must
// be held.
func (b *batcher) drop(now time.Time) {
	rest := b.queue[:0]
	for _, l := range b.queue {
		if !l.deadline.IsZero() && now.After(l.deadline) {
			l.err = fmt.Errorf("mgmt: look up users by email: %w", linking.ErrRateBudget)
			close(l.done)
			continue
		}
		rest = append(rest, l)
	}
	clear(b.queue[len(rest):])
	b.queue = rest
}

// take removes and returns the next batch: up to n lookups whose callers
// still wait, their emails fitting in one search query.
func (b *batcher) take(n int) []*lookup {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drop(time.Now())
	var batch []*lookup
	size := len(`email:("")`)
	rest := b.queue[:0]
	for _, l := range b.queue {
		switch {
		case len(batch) < n && size+len(l.email)+len(`" OR "`) <= maxSearchQuery:
			batch = append(batch, l)
			size += len(l.email) + len(`" OR "`)
		default:
			rest = append(rest, l)
		}
	}
	clear(b.queue[len(rest):])
	b.queue = rest
	if len(batch) == 0 {
		b.running = false
	}
	return batch
}
