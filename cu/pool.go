package cu

import (
	"context"
	"errors"
	"sync"
)

var errPoolFull = errors.New("cu: too many evaluations waiting")

// pool is a counting semaphore with a FIFO of waiters, so that an
// evaluation that hands its slot over between slices (see handle) goes to
// the back of the line and every waiting evaluation gets a turn.
type pool struct {
	mu      sync.Mutex
	free    int
	waiters []chan struct{}
	maxWait int // 0: unbounded
}

func newPool(n, maxWait int) *pool { return &pool{free: n, maxWait: maxWait} }

// acquire takes a slot, waiting in line; errPoolFull when maxWait are
// already waiting.
func (p *pool) acquire(ctx context.Context) error {
	p.mu.Lock()
	if p.free > 0 && len(p.waiters) == 0 {
		p.free--
		p.mu.Unlock()
		return nil
	}
	if p.maxWait > 0 && len(p.waiters) >= p.maxWait {
		p.mu.Unlock()
		return errPoolFull
	}
	ch := make(chan struct{})
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, w := range p.waiters {
			if w == ch {
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				return ctx.Err()
			}
		}
		// The slot was handed to us as ctx ended: pass it on.
		p.releaseLocked()
		return ctx.Err()
	}
}

// release returns a slot, handing it to the first waiter.
func (p *pool) release() {
	p.mu.Lock()
	p.releaseLocked()
	p.mu.Unlock()
}

func (p *pool) releaseLocked() {
	if len(p.waiters) > 0 {
		ch := p.waiters[0]
		p.waiters = p.waiters[1:]
		close(ch)
		return
	}
	p.free++
}

// contended reports whether evaluations are waiting for a slot.
func (p *pool) contended() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters) > 0
}
