package mu

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RateLimit allows each wallet N items per Interval at ingress (off when N is 0).
type RateLimit struct {
	N        int
	Interval time.Duration
}

// ParseRateLimit reads "N/INTERVAL": "100/1m", "2000/1h", "10/s" (a bare unit
// means one of it). "" and "0" mean off.
func ParseRateLimit(s string) (RateLimit, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" || s == "off" {
		return RateLimit{}, nil
	}
	n, iv, ok := strings.Cut(s, "/")
	if !ok {
		return RateLimit{}, fmt.Errorf("rate limit %q: want N/INTERVAL, e.g. 100/1m", s)
	}
	cnt, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || cnt < 0 {
		return RateLimit{}, fmt.Errorf("rate limit %q: bad count", s)
	}
	iv = strings.TrimSpace(iv)
	if iv != "" && (iv[0] < '0' || iv[0] > '9') {
		iv = "1" + iv
	}
	d, err := time.ParseDuration(iv)
	if err != nil || d <= 0 {
		return RateLimit{}, fmt.Errorf("rate limit %q: bad interval", s)
	}
	return RateLimit{N: cnt, Interval: d}, nil
}

// limiter counts items per wallet in fixed windows.
type limiter struct {
	lim RateLimit
	mu  sync.Mutex
	win map[string]*window
	now func() time.Time
}

type window struct {
	start time.Time
	n     int
}

func (l *limiter) allow(wallet string) bool {
	if l == nil || l.lim.N <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.win[wallet]
	if w == nil || now.Sub(w.start) >= l.lim.Interval {
		if len(l.win) > 100000 { // forget stale windows
			for k, v := range l.win {
				if now.Sub(v.start) >= l.lim.Interval {
					delete(l.win, k)
				}
			}
		}
		w = &window{start: now}
		l.win[wallet] = w
	}
	if w.n >= l.lim.N {
		return false
	}
	w.n++
	return true
}
