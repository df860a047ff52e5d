package mgmt

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/idlink/linking"
)

// budget paces the requests of one Store by the tenant's own rate limit, as
// the tenant reports it on every answer: X-RateLimit-Limit (the bucket's
// size), X-RateLimit-Remaining (what is left after the request) and
// X-RateLimit-Reset (epoch seconds by which the bucket is full again). The
// tenant's bucket is shared by every process that calls it, so the headers
// are the only truth all of them see: each Store keeps its own estimate of
// the bucket, sets it from each answer, takes a token from it for each
// request, and refills it at the rate the headers imply. Replicas that pace
// themselves this way stay within the tenant's limit together, without a
// shared store, because each answer tells each of them what the others
// spent.
//
// A request goes only while the estimate holds a token beyond its priority's
// reserve: links, reads-back and writes keep one token spare, lookups more,
// so that writes go first and other replicas' requests in flight fit. A
// request that would have to wait past its deadline is refused at once with
// linking.ErrRateBudget: nothing is sent. Until the first answer, one
// request goes at a time, to learn the bucket; a tenant that answers without
// the headers is not paced.
type budget struct {
	mu       sync.Mutex
	known    bool      // an answer carried the headers
	unpaced  bool      // an answer came without them: the tenant does not say
	inflight int       // requests sent, not answered
	limit    float64   // the bucket's size
	tokens   float64   // the estimate at at, after our requests sent since
	at       time.Time //
	rate     float64   // tokens per second; 0 while unknown
	// others is what other clients of the tenant spend, in tokens per
	// second, as the answers show: what the bucket lacks beyond our own
	// requests, measured over windows of a second or more.
	others float64
	drift  float64   // what the bucket lacked in the current window
	window time.Time // when the current window began
	fullBy time.Time // the latest reset: while the rate is unknown, the bucket is full by then
	sent   uint64    // requests sent
	latest uint64    // the request whose answer set the estimate
	sentAt map[uint64]time.Time
	// waiting counts the requests waiting for a token, by priority.
	waiting [2]int
}

// priority orders the requests that wait for the budget.
type priority int

const (
	// priorityWrite: links, reads-back after a link, metadata writes.
	priorityWrite priority = iota
	// priorityLookup: lookups of a login's email, which a batch may serve.
	priorityLookup
)

// reserve is how many tokens a request of priority p leaves in a bucket of
// limit tokens: a fifth of it for lookups, a tenth for writes, at most 10
// and 5 — room for other replicas' bursts that the answers have not shown
// yet, and for writes before lookups. A small bucket (a free tenant's)
// spares little.
func (p priority) reserve(limit float64) float64 {
	if p == priorityLookup {
		return min(10, math.Floor(limit/5))
	}
	return min(5, math.Floor(limit/10))
}

type priorityKey struct{}

// withPriority marks ctx's requests with priority p; unmarked requests are
// writes.
func withPriority(ctx context.Context, p priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

func priorityOf(ctx context.Context) priority {
	p, _ := ctx.Value(priorityKey{}).(priority)
	return p
}

// deadlineOf returns until when a request of ctx may wait for the budget: for
// a lookup, as long as the callers of the Linker's work still wait
// (linking.WaitDeadline); otherwise ctx's deadline.
func deadlineOf(ctx context.Context) (time.Time, bool) {
	if priorityOf(ctx) == priorityLookup {
		if d, ok := linking.WaitDeadline(ctx); ok {
			return d, true
		}
	}
	return ctx.Deadline()
}

// available returns the estimated tokens at now, refilled at the rate left
// by the other clients. b.mu must be held.
func (b *budget) available(now time.Time) float64 {
	if b.rate <= 0 && !now.Before(b.fullBy) {
		return b.limit
	}
	return min(b.limit, b.tokens+b.share()*now.Sub(b.at).Seconds())
}

// share is the part of the refill rate this Store counts on: the rate less
// what the others spend, never below a tenth of it, less a margin for what
// the estimates miss between two answers. b.mu must be held.
func (b *budget) share() float64 {
	return max(b.rate-b.others, b.rate/10) * refillMargin
}

// refillMargin is the share of the estimated refill a Store spends.
const refillMargin = 0.92

// wait returns how long a request of priority p must wait at now, 0 to go.
// b.mu must be held.
func (b *budget) wait(p priority, now time.Time) time.Duration {
	switch {
	case b.unpaced:
		return 0
	case !b.known && b.inflight > 0:
		return 10 * time.Millisecond // learning the bucket from the first answer
	case !b.known:
		return 0
	}
	need := 1 + p.reserve(b.limit)
	have := b.available(now)
	switch {
	case have >= need:
		return 0
	case b.rate <= 0:
		return b.fullBy.Sub(now)
	}
	return time.Duration((need - have) / b.share() * float64(time.Second))
}

// admit waits until a request of ctx may go, takes its token, and returns
// the request's number for observe. It returns an error wrapping
// linking.ErrRateBudget, at once, when the wait would end after the request's
// deadline (deadlineOf), and ctx's error when ctx is done first.
func (b *budget) admit(ctx context.Context) (uint64, error) {
	p := priorityOf(ctx)
	deadline, hasDeadline := deadlineOf(ctx)
	queued := false
	defer func() {
		if queued {
			b.mu.Lock()
			b.waiting[p]--
			b.mu.Unlock()
		}
	}()
	for {
		now := time.Now()
		b.mu.Lock()
		d := b.wait(p, now)
		if d > 0 && !queued {
			// The requests already waiting go first, more or less: count
			// their tokens in this one's wait, and queue behind them.
			if b.share() > 0 {
				d += time.Duration(float64(b.waiting[priorityWrite]+b.waiting[p]) / b.share() * float64(time.Second))
			}
			b.waiting[p]++
			queued = true
		}
		if d == 0 {
			b.tokens = b.available(now) - 1
			b.at = now
			b.sent++
			b.inflight++
			seq := b.sent
			if b.sentAt == nil {
				b.sentAt = make(map[uint64]time.Time)
			}
			b.sentAt[seq] = now
			b.mu.Unlock()
			return seq, nil
		}
		b.mu.Unlock()
		if hasDeadline && now.Add(d).After(deadline) {
			return 0, fmt.Errorf("mgmt: the tenant's rate budget frees a request in %v, after the deadline: %w",
				d.Round(time.Millisecond), linking.ErrRateBudget)
		}
		// Others may take the token meanwhile: look again, often.
		t := time.NewTimer(min(d, 50*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, context.Cause(ctx)
		case <-t.C:
		}
	}
}

// observe applies the answer to request seq, received at now: its
// rate-limit headers, or its status 429.
func (b *budget) observe(seq uint64, res *http.Response, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sentAt, ok := b.sentAt[seq]
	if !ok {
		return
	}
	delete(b.sentAt, seq)
	b.inflight--
	if res == nil {
		return
	}
	limit, errL := strconv.ParseFloat(res.Header.Get("X-RateLimit-Limit"), 64)
	remaining, errR := strconv.ParseFloat(res.Header.Get("X-RateLimit-Remaining"), 64)
	resetSec, errT := strconv.ParseInt(res.Header.Get("X-RateLimit-Reset"), 10, 64)
	if errL != nil || errR != nil || errT != nil || limit <= 0 {
		switch {
		case res.StatusCode == http.StatusTooManyRequests && b.known:
			b.tokens, b.at = 0, now
		case res.StatusCode < http.StatusBadRequest && !b.known:
			b.unpaced = true
		}
		return
	}
	b.unpaced = false
	reset := time.Unix(resetSec, 0)
	// The bucket was full again by reset, counted from when the tenant
	// took this request, which is after sentAt: the rate is at least this.
	// remaining is rounded down: count the deficit low, so that the rate
	// is never overestimated.
	if deficit := limit - remaining - 1; deficit > 0 && reset.After(sentAt) {
		b.rate = max(b.rate, deficit/reset.Sub(sentAt).Seconds())
	}
	b.known, b.limit = true, limit
	if seq > b.latest || res.StatusCode == http.StatusTooManyRequests {
		b.fullBy = reset
	}
	if res.StatusCode == http.StatusTooManyRequests {
		// The bucket is empty, whatever came since.
		b.latest = max(b.latest, seq)
		b.tokens, b.at = -float64(b.inflight), now
		return
	}
	if seq > b.latest {
		// Our requests still in flight may not be in remaining yet,
		// whether sent before or after this one: count them out.
		fresh := remaining - float64(b.inflight)
		if b.window.IsZero() {
			b.window = now
		} else {
			// The bucket as our own requests alone would have left it,
			// refilled at the full rate, against what the tenant says.
			b.drift += max(0, min(b.limit, b.tokens+b.rate*now.Sub(b.at).Seconds())-fresh)
			if span := now.Sub(b.window).Seconds(); span >= 1 {
				b.others = (b.others + b.drift/span) / 2
				b.drift, b.window = 0, now
			}
		}
		b.latest = seq
		b.tokens = fresh
		b.at = now
	}
}
