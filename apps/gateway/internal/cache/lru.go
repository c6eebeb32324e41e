package cache

import (
	"container/list"
	"sync"
	"time"
)

// lru is the L1: a bounded, per-process map with a short TTL. Bounded by
// entry count so that its memory is bounded too (values are small profiles);
// expired entries stay until evicted, as a last-resort stale fallback.
type lru struct {
	mu    sync.Mutex
	cap   int
	ll    *list.List
	items map[string]*list.Element
}

type lruEntry struct {
	key     string
	val     []byte
	expires time.Time
}

func newLRU(capacity int) *lru {
	return &lru{cap: capacity, ll: list.New(), items: map[string]*list.Element{}}
}

// get returns the value and whether it is still fresh.
func (c *lru) get(key string, now time.Time) (val []byte, fresh, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false, false
	}
	c.ll.MoveToFront(el)
	e := el.Value.(*lruEntry)
	return e.val, now.Before(e.expires), true
}

func (c *lru) set(key string, val []byte, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		el.Value = &lruEntry{key, val, expires}
		c.ll.MoveToFront(el)
		return
	}
	c.items[key] = c.ll.PushFront(&lruEntry{key, val, expires})
	for c.ll.Len() > c.cap {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*lruEntry).key)
	}
}

func (c *lru) delete(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.ll.Remove(el)
		delete(c.items, key)
	}
}

func (c *lru) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
