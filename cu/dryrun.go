package cu

import (
	"crypto/sha256"
	"net"
	"net/http"
	"sync"
	"time"
)

// Dry-run results are cached (units.md §5.9): keyed by the SHA-256 of the
// process id, the to parameter and the body, for at most DryRunCacheTTL
// (60 s). A cached result is served only while it is what a new dry-run
// would answer: no message was evaluated since (the process's generation is
// unchanged) and its memory is no older than x-max-age (default
// DryRunMaxAge, 100 ms). A dry-run of the past (to=) never goes stale. A hit
// is not counted against the rate limit. The cache holds at most
// dryCacheMax entries and dryCacheBytes of results.

type dryKey [sha256.Size]byte

func dryRunKey(pid, to string, body []byte) dryKey {
	h := sha256.New()
	h.Write([]byte(pid))
	h.Write([]byte{0})
	h.Write([]byte(to))
	h.Write([]byte{0})
	h.Write(body)
	var k dryKey
	h.Sum(k[:0])
	return k
}

type dryEntry struct {
	at  time.Time
	gen int64 // the process's generation then; -1: a dry-run of the past
	res []byte
}

type dryCache struct {
	ttl   time.Duration
	mu    sync.Mutex
	m     map[dryKey]dryEntry
	bytes int
}

const (
	dryCacheMax   = 10000
	dryCacheBytes = 64 << 20
)

// get returns a cached result no older than the TTL nor maxAge, computed at
// generation gen of its process.
func (c *dryCache) get(k dryKey, maxAge time.Duration, gen int64) ([]byte, bool) {
	if c.ttl <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil, false
	}
	age := time.Since(e.at)
	if age > c.ttl || e.gen >= 0 && e.gen != gen {
		c.bytes -= len(e.res)
		delete(c.m, k)
		return nil, false
	}
	if e.gen >= 0 && age > maxAge {
		return nil, false
	}
	return e.res, true
}

// put caches res as of at (when the memory it was computed on was current).
func (c *dryCache) put(k dryKey, res []byte, at time.Time, gen int64) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[dryKey]dryEntry{}
	}
	if len(res) > dryCacheBytes/16 {
		return // not worth the room
	}
	if old, ok := c.m[k]; ok {
		c.bytes -= len(old.res)
	}
	if len(c.m) >= dryCacheMax || c.bytes+len(res) > dryCacheBytes {
		for k, e := range c.m {
			if time.Since(e.at) > c.ttl {
				c.bytes -= len(e.res)
				delete(c.m, k)
			}
		}
		if len(c.m) >= dryCacheMax || c.bytes+len(res) > dryCacheBytes {
			clear(c.m)
			c.bytes = 0
		}
	}
	c.m[k] = dryEntry{at: at, gen: gen, res: res}
	c.bytes += len(res)
}

// ipLimiter allows n requests per client IP in fixed windows (the
// reference's RATE_LIMIT_MAX_REQUESTS per RATE_LIMIT_WINDOW).
type ipLimiter struct {
	n   int
	win time.Duration
	mu  sync.Mutex
	m   map[string]*ipWindow
}

type ipWindow struct {
	start time.Time
	count int
}

func (l *ipLimiter) allow(r *http.Request) bool {
	if l == nil || l.n <= 0 {
		return true
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*ipWindow{}
	}
	w := l.m[ip]
	if w == nil || now.Sub(w.start) >= l.win {
		if len(l.m) >= dryCacheMax {
			for k, w := range l.m {
				if now.Sub(w.start) >= l.win {
					delete(l.m, k)
				}
			}
		}
		w = &ipWindow{start: now}
		l.m[ip] = w
	}
	if w.count >= l.n {
		return false
	}
	w.count++
	return true
}
