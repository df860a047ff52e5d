package backfill

import (
	"testing"
	"time"
)

// TestBucket: the bucket gives burst tokens at once, then one per 1/rate,
// and none before a pause ends. Times are given, not measured.
func TestBucket(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBucket(50, 2)
	steps := []struct {
		at   time.Duration
		wait time.Duration // 0: a token is given
	}{
		{0, 0},
		{0, 0},
		{0, 20 * time.Millisecond},
		{10 * time.Millisecond, 10 * time.Millisecond},
		{20 * time.Millisecond, 0},
		{20 * time.Millisecond, 20 * time.Millisecond},
		{time.Second, 0}, // refilled to the burst, not beyond
		{time.Second, 0},
		{time.Second, 20 * time.Millisecond},
	}
	for i, s := range steps {
		if got := b.reserve(t0.Add(s.at)); got != s.wait {
			t.Errorf("step %d at %v: got wait %v, want %v", i, s.at, got, s.wait)
		}
	}
	b.pause(t0.Add(3 * time.Second))
	if got, want := b.reserve(t0.Add(2*time.Second)), time.Second; got != want {
		t.Errorf("during a pause: got wait %v, want %v", got, want)
	}
	if got := b.reserve(t0.Add(3 * time.Second)); got != 0 {
		t.Errorf("after the pause: got wait %v, want 0", got)
	}
}

// TestDefaultBackoff: grows from 1 s up to 30 s (plus up to a quarter), and
// follows a reset time announced by the server.
func TestDefaultBackoff(t *testing.T) {
	for attempt, base := range map[int]time.Duration{2: time.Second, 3: 2 * time.Second, 4: 4 * time.Second, 7: 30 * time.Second, 20: 30 * time.Second} {
		got := DefaultBackoff(attempt, time.Time{})
		if got < base || got > base+base/4 {
			t.Errorf("attempt %d: got %v, want %v to %v", attempt, got, base, base+base/4)
		}
	}
	reset := time.Now().Add(5 * time.Second)
	if got := DefaultBackoff(2, reset); got > 5*time.Second || got < 4*time.Second {
		t.Errorf("with a reset in 5 s: got %v", got)
	}
}
