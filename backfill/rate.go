package backfill

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// bucket is a token bucket: rate tokens per second, at most burst saved. A
// call takes one token, waiting for it when there is none, and none is given
// before the end of a pause.
type bucket struct {
	limiter *rate.Limiter

	mu sync.Mutex
	// until is a time before which no token is given (a rate limit reset
	// the server announced).
	until time.Time
}

func newBucket(r float64, burst int) *bucket {
	return &bucket{limiter: rate.NewLimiter(rate.Limit(r), max(burst, 1))}
}

// wait takes a token, sleeping until one is available or ctx is done.
func (b *bucket) wait(ctx context.Context) error {
	for {
		d := b.reserve(time.Now())
		if d <= 0 {
			return nil
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// reserve takes a token at now and returns 0, or returns how long to wait
// before trying again.
func (b *bucket) reserve(now time.Time) time.Duration {
	b.mu.Lock()
	until := b.until
	b.mu.Unlock()
	if now.Before(until) {
		return until.Sub(now)
	}
	r := b.limiter.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d > 0 {
		r.CancelAt(now) // the token is taken when the wait is over
	}
	return d
}

// pause gives no token before t.
func (b *bucket) pause(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.After(b.until) {
		b.until = t
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Backoff returns how long to wait before attempt (2, 3, ...) after a failed
// call. retryAfter is the time the server said its rate limit resets, or the
// zero time.
type Backoff func(attempt int, retryAfter time.Time) time.Duration

// DefaultBackoff waits until retryAfter when it is set and at most a minute
// away, and otherwise 1 s, 2 s, 4 s ... up to 30 s, with up to 25% added at
// random so that several processes do not retry together.
func DefaultBackoff(attempt int, retryAfter time.Time) time.Duration {
	if !retryAfter.IsZero() {
		if d := time.Until(retryAfter); d > 0 && d <= time.Minute {
			return d
		}
	}
	d := time.Second << min(max(attempt-2, 0), 5)
	d = min(d, 30*time.Second)
	return d + rand.N(d/4+1)
}

// RateLimitReset is implemented by errors that carry the time at which the
// Management API's rate limit resets (its X-RateLimit-Reset header). Apply
// and Undo look for it with errors.As in an error wrapping
// linking.ErrRateLimited and wait until then before trying again.
type RateLimitReset interface {
	error
	RateLimitReset() time.Time
}

// resetOf returns the reset time err carries, or the zero time.
func resetOf(err error) time.Time {
	var r RateLimitReset
	if errors.As(err, &r) {
		return r.RateLimitReset()
	}
	return time.Time{}
}
