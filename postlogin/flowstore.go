package postlogin

import (
	"context"
	"sync"
	"time"
)

// FlowStore keeps what the confirm pages need between a person's requests:
// the open flows, and the ids of the confirm tokens already used (so that
// each is used once). Each entry expires; an expired entry is as good as
// absent.
//
// The zero value of MemoryFlowStore serves one process. Replicas behind a
// load balancer need either sticky sessions or a FlowStore they share (for
// example over Redis: SET NX PXAT, GET, GETDEL).
//
// Implementations must be safe for concurrent use, and return once ctx is
// done.
type FlowStore interface {
	// Add stores value under key until expires, unless the key is held:
	// then it stores nothing and returns false.
	Add(ctx context.Context, key string, value []byte, expires time.Time) (bool, error)
	// Get returns the value under key, and whether there is one.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Take removes the value under key and returns it, and whether there
	// was one. Of concurrent Takes of one key, at most one gets the value.
	Take(ctx context.Context, key string) ([]byte, bool, error)
}

// MemoryFlowStore is a FlowStore in this process's memory. Its zero value
// is ready to use. It drops expired entries as it adds new ones.
type MemoryFlowStore struct {
	// Now is the store's clock, which must be the Handler's (Config.Now).
	// Nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	entries map[string]memoryEntry
	// adds counts Adds since the last sweep of expired entries.
	adds int
}

type memoryEntry struct {
	value   []byte
	expires time.Time
}

var _ FlowStore = (*MemoryFlowStore)(nil)

// sweepEvery is how many Adds trigger a sweep of expired entries: often
// enough to bound memory, seldom enough to cost nothing per request.
const sweepEvery = 256

// Add implements FlowStore.
func (s *MemoryFlowStore) Add(_ context.Context, key string, value []byte, expires time.Time) (bool, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil {
		s.entries = make(map[string]memoryEntry)
	}
	if s.adds++; s.adds >= sweepEvery {
		s.adds = 0
		for k, e := range s.entries {
			if !now.Before(e.expires) {
				delete(s.entries, k)
			}
		}
	}
	if e, ok := s.entries[key]; ok && now.Before(e.expires) {
		return false, nil
	}
	s.entries[key] = memoryEntry{append([]byte(nil), value...), expires}
	return true, nil
}

// Get implements FlowStore.
func (s *MemoryFlowStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || !s.now().Before(e.expires) {
		return nil, false, nil
	}
	return append([]byte(nil), e.value...), true, nil
}

// Take implements FlowStore.
func (s *MemoryFlowStore) Take(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	delete(s.entries, key)
	if !ok || !s.now().Before(e.expires) {
		return nil, false, nil
	}
	return e.value, true, nil
}

func (s *MemoryFlowStore) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}
