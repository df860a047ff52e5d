package postlogin_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlink/linking/postlogin"
)

// TestMemoryFlowStore: Add stores only a key not held, Get reads, Take
// removes; an expired entry is absent and its key free again.
func TestMemoryFlowStore(t *testing.T) {
	clock := time.Unix(1_700_000_000, 0)
	s := &postlogin.MemoryFlowStore{Now: func() time.Time { return clock }}
	ctx := t.Context()
	step := func(name string, got, want bool, err error) {
		t.Helper()
		if err != nil || got != want {
			t.Errorf("%s: got %v, %v; want %v", name, got, err, want)
		}
	}
	ok, err := s.Add(ctx, "k", []byte("v1"), clock.Add(time.Minute))
	step("first Add", ok, true, err)
	ok, err = s.Add(ctx, "k", []byte("v2"), clock.Add(time.Minute))
	step("Add of a held key", ok, false, err)
	v, ok, err := s.Get(ctx, "k")
	step("Get", ok && string(v) == "v1", true, err)
	v, ok, err = s.Take(ctx, "k")
	step("Take", ok && string(v) == "v1", true, err)
	_, ok, err = s.Take(ctx, "k")
	step("second Take", ok, false, err)

	ok, err = s.Add(ctx, "e", nil, clock.Add(time.Minute))
	step("Add", ok, true, err)
	clock = clock.Add(time.Minute)
	_, ok, err = s.Get(ctx, "e")
	step("Get expired", ok, false, err)
	ok, err = s.Add(ctx, "e", nil, clock.Add(time.Minute))
	step("Add over an expired entry", ok, true, err)
}

// TestMemoryFlowStore_TakeOnce: of many concurrent Takes of one key, one
// gets the value.
func TestMemoryFlowStore_TakeOnce(t *testing.T) {
	var s postlogin.MemoryFlowStore
	for round := range 20 {
		if ok, err := s.Add(t.Context(), "k", []byte{byte(round)}, time.Now().Add(time.Minute)); !ok || err != nil {
			t.Fatalf("Add: %v, %v", ok, err)
		}
		var got atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, ok, _ := s.Take(t.Context(), "k"); ok {
					got.Add(1)
				}
			}()
		}
		wg.Wait()
		if got.Load() != 1 {
			t.Fatalf("round %d: %d Takes got the value, want 1", round, got.Load())
		}
	}
}
