package mgmt_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// statusCount counts the answers a client gets, and those with status 429.
type statusCount struct {
	base             http.RoundTripper
	answers, tooMany atomic.Int64
}

func (c *statusCount) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := c.base.RoundTrip(req)
	if err == nil && req.URL.Path != "/oauth/token" {
		c.answers.Add(1)
		if res.StatusCode == http.StatusTooManyRequests {
			c.tooMany.Add(1)
		}
	}
	return res, err
}

// countingStore returns a Store over srv whose answers c counts.
func countingStore(t *testing.T, srv *mgmttest.Server, c *statusCount) *mgmt.Store {
	t.Helper()
	c.base = http.DefaultTransport
	opts := append(srv.ClientOptions(), mgmt.WithHTTPClient(&http.Client{Transport: c, Timeout: 10 * time.Second}))
	s, err := mgmt.New(t.Context(), srv.Domain(), srv.ClientID(), srv.ClientSecret(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBudgetReplicasStayWithinTheLimit: two Stores, as two replicas, look
// users up as fast as they can for three seconds against a tenant limited as
// a paid production tenant is, 16 requests per second in bursts of 50,
// answering after 50 ms. Each paces itself by the tenant's headers: together
// they draw no 429.
func TestBudgetReplicasStayWithinTheLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t, []linking.User{dbJane}, mgmttest.WithRateLimit(16, 50), mgmttest.WithLatency(50*time.Millisecond))
	var counts [2]statusCount
	stores := []*mgmt.Store{countingStore(t, srv, &counts[0]), countingStore(t, srv, &counts[1])}
	stop := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	var budgetRefusals atomic.Int64
	for _, s := range stores {
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					_, err := s.UsersByEmail(ctx, dbJane.Email)
					cancel()
					switch {
					case errors.Is(err, linking.ErrRateBudget):
						budgetRefusals.Add(1)
						time.Sleep(10 * time.Millisecond) // a caller that comes back later
					case err != nil && !errors.Is(err, context.DeadlineExceeded):
						t.Errorf("lookup: %v", err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	answers := counts[0].answers.Load() + counts[1].answers.Load()
	tooMany := counts[0].tooMany.Load() + counts[1].tooMany.Load()
	if tooMany != 0 {
		t.Errorf("the tenant answered %d of %d requests with 429, want none", tooMany, answers)
	}
	if answers <= 50 {
		t.Errorf("%d requests in all: the replicas never reached the limit, the test shows nothing", answers)
	}
	t.Logf("%d requests, %d refused by the budget before sending", answers, budgetRefusals.Load())
}

// TestBudgetDeadline: with the tenant's bucket empty, a lookup whose
// deadline comes before the next token is refused at once, unsent, with
// ErrRateBudget; through a Linker, the login gets the policy's failure answer
// with reason rate_budget before its deadline.
func TestBudgetDeadline(t *testing.T) {
	t.Parallel()
	srv := newServer(t, []linking.User{dbJane, emailJane}, mgmttest.WithRateLimit(0.5, 1))
	store := srv.Store(t)
	if _, err := store.UsersByEmail(context.Background(), "someone@example.com"); err != nil {
		t.Fatal(err) // the bucket is empty now, for two seconds
	}
	for _, policy := range []linking.Policy{{}, {OnStoreError: linking.FailOpen}} {
		t.Run(fmt.Sprintf("fail open %v", policy.OnStoreError == linking.FailOpen), func(t *testing.T) {
			before := srv.APIRequests()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			r, err := (&linking.Linker{Store: store, Policy: policy}).Link(ctx, loginOf(emailJane))
			if ctx.Err() != nil {
				t.Errorf("answered after the deadline")
			}
			if !errors.Is(err, linking.ErrRateBudget) || !errors.Is(err, linking.ErrRateLimited) {
				t.Errorf("error %v, want one wrapping ErrRateBudget and ErrRateLimited", err)
			}
			want := linking.ActionDeny
			if policy.OnStoreError == linking.FailOpen {
				want = linking.ActionNone
			}
			if r.Action != want || r.Reason != linking.ReasonRateBudget {
				t.Errorf("got %v/%s, want %v/rate_budget", r.Action, r.Reason, want)
			}
			if got := srv.APIRequests() - before; got != 0 {
				t.Errorf("%d requests sent, want none", got)
			}
		})
	}
}
