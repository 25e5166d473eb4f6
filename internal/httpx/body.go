package httpx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// ErrBusy reports that a body could not get its share of a Limiter in time.
var ErrBusy = errors.New("httpx: too many large request bodies at once; retry later")

// Limiter bounds the bytes of request bodies held in memory at once: each
// large body holds a share the size of its Content-Length while it is read
// and processed, so that many concurrent large uploads wait their turn (or
// are refused with 503) instead of all being buffered together. Waiters are
// served first come, first served, so a large body is not starved by a stream
// of smaller ones.
type Limiter struct {
	capacity int64
	maxWait  time.Duration

	mu      sync.Mutex
	used    int64
	waiters []*waiter
}

type waiter struct {
	n     int64
	ready chan struct{}
}

// NewLimiter returns a limiter of capacity bytes whose waiters give up after
// maxWait.
func NewLimiter(capacity int64, maxWait time.Duration) *Limiter {
	return &Limiter{capacity: capacity, maxWait: maxWait}
}

// smallBody is the size below which a body does not take a share: small
// messages must never queue behind large uploads.
const smallBody = 1 << 20

// Acquire takes n bytes (at most the capacity) and returns the function that
// gives them back. It fails with ErrBusy after the limiter's maximum wait, or
// with ctx's error.
func (l *Limiter) Acquire(ctx context.Context, n int64) (release func(), err error) {
	n = min(max(n, 1), l.capacity)
	l.mu.Lock()
	if len(l.waiters) == 0 && l.used+n <= l.capacity {
		l.used += n
		l.mu.Unlock()
		return l.releaser(n), nil
	}
	wt := &waiter{n: n, ready: make(chan struct{})}
	l.waiters = append(l.waiters, wt)
	l.mu.Unlock()

	timer := time.NewTimer(l.maxWait)
	defer timer.Stop()
	select {
	case <-wt.ready:
		return l.releaser(n), nil
	case <-ctx.Done():
		err = fmt.Errorf("httpx: waiting for a body slot: %w", ctx.Err())
	case <-timer.C:
		err = ErrBusy
	}
	l.mu.Lock()
	select {
	case <-wt.ready: // granted while giving up: give it back
		l.used -= n
	default:
		for i, o := range l.waiters {
			if o == wt {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				break
			}
		}
	}
	l.grant()
	l.mu.Unlock()
	return nil, err
}

func (l *Limiter) releaser(n int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.used -= n
			l.grant()
			l.mu.Unlock()
		})
	}
}

// grant wakes waiters in order while they fit. l.mu is held.
func (l *Limiter) grant() {
	for len(l.waiters) > 0 {
		wt := l.waiters[0]
		if l.used+wt.n > l.capacity {
			return
		}
		l.used += wt.n
		l.waiters = l.waiters[1:]
		close(wt.ready)
	}
}

// ReadBody reads r's body whole, refusing one longer than limit bytes. A body
// of 1 MiB or more (by Content-Length, or limit when the length is unknown)
// first takes its share of l (when l is not nil); release gives it back and
// must be called when the body is no longer needed, also after an error. A
// known length is read into a buffer of exactly that size, not a growing one.
//
// Errors: *http.MaxBytesError (413), ErrBusy (503; Retry-After is set on w),
// ErrSlowBody (408), anything else is a broken body (400). Status maps them.
func ReadBody(w http.ResponseWriter, r *http.Request, l *Limiter, limit int64) (body []byte, release func(), err error) {
	release = func() {}
	cl := r.ContentLength
	if cl > limit {
		return nil, release, &http.MaxBytesError{Limit: limit}
	}
	weight := cl
	if cl < 0 {
		weight = limit
	}
	if l != nil && weight >= smallBody {
		rel, err := l.Acquire(r.Context(), weight)
		if err != nil {
			if errors.Is(err, ErrBusy) {
				w.Header().Set("Retry-After", strconv.Itoa(max(1, int(l.maxWait/time.Second))))
			}
			return nil, release, err
		}
		release = rel
	}
	if cl >= 0 {
		body = make([]byte, cl)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, release, fmt.Errorf("httpx: reading the body: %w", err)
		}
		return body, release, nil
	}
	body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, release, mbe
		}
		return nil, release, fmt.Errorf("httpx: reading the body: %w", err)
	}
	return body, release, nil
}

// Status is the HTTP status for an error from ReadBody.
func Status(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBusy), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrSlowBody):
		return http.StatusRequestTimeout
	}
	return http.StatusBadRequest
}
