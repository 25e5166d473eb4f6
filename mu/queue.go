package mu

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// stepError classifies a failed step. Permanent failures end the task (it
// stays visible in the trace); others are retried with backoff.
type stepError struct {
	err       error
	permanent bool
	status    int // HTTP status for a submitter waiting on the first attempt
}

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func permanent(status int, err error) error {
	return &stepError{err: err, permanent: true, status: status}
}

func isPermanent(err error) bool {
	var se *stepError
	return errors.As(err, &se) && se.permanent
}

// firstResult tells a waiting submitter how its task's step ended.
type firstResult struct {
	id  string
	err error
}

// runner executes tasks from the store. Every pending task is in memory, in a
// FIFO per queue; a queue runs one task at a time, different queues run in
// parallel up to the worker limit. A failed task keeps its place at the head
// of its queue until it succeeds or fails for good, which is what keeps one
// sender's pushes to one target in outbox order.
//
// The MU runs two: one for ingest (users' items on their way to the SU) and
// one for the crank, so that a user's POST / never waits for a worker behind
// pulls and pushes; successors of an ingest step go to the crank's runner.
type runner struct {
	st          *store
	exec        func(ctx context.Context, t *task) ([]*task, error)
	out         *runner // where successors go; init makes nil this runner
	log         *slog.Logger
	workers     int
	maxAttempts int
	baseDelay   time.Duration
	maxDelay    time.Duration
	metrics     *metrics

	mu      sync.Mutex
	queues  map[string][]*task
	running map[string]bool
	waiting map[int64]chan firstResult
	// known holds the ids of the tasks in memory (0) and of those finished
	// lately (unix ms of the end), so that a task a shared queue's poll
	// loads again is not run twice.
	known  map[int64]int64
	active int
	wake   chan struct{}
	idle   chan struct{} // closed and replaced whenever nothing is pending
}

func (r *runner) init() {
	r.queues = map[string][]*task{}
	r.running = map[string]bool{}
	r.waiting = map[int64]chan firstResult{}
	r.known = map[int64]int64{}
	r.wake = make(chan struct{}, 1)
	r.idle = make(chan struct{})
	if r.out == nil {
		r.out = r
	}
}

func (r *runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// add puts committed tasks (ID != 0) into their queues.
func (r *runner) add(ts ...*task) {
	r.mu.Lock()
	n := 0
	for _, t := range ts {
		if t.ID == 0 || t.State != statePending || t.foreign {
			continue
		}
		if _, ok := r.known[t.ID]; ok {
			continue
		}
		r.known[t.ID] = 0
		r.queues[t.Queue] = append(r.queues[t.Queue], t)
		n++
	}
	r.metrics.pending.Add(int64(n))
	r.mu.Unlock()
	r.poke()
}

// submit stores t durably, queues it, and returns a channel that reports the
// outcome of its first successful or permanently failed attempt. A task whose
// key exists already (a resubmission) gets a nil channel.
func (r *runner) submit(ctx context.Context, t *task) (<-chan firstResult, error) {
	if err := r.st.addTasks(ctx, []*task{t}); err != nil {
		return nil, err
	}
	if t.ID == 0 {
		return nil, nil
	}
	ch := make(chan firstResult, 1)
	r.mu.Lock()
	r.waiting[t.ID] = ch
	r.mu.Unlock()
	r.add(t)
	return ch, nil
}

// run dispatches until ctx ends, then waits for running steps.
func (r *runner) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := nowMS()
		next := int64(-1)
		r.mu.Lock()
		for q, ts := range r.queues {
			if r.running[q] {
				continue
			}
			if len(ts) == 0 {
				delete(r.queues, q)
				continue
			}
			h := ts[0]
			if h.NextAt > now {
				if next < 0 || h.NextAt < next {
					next = h.NextAt
				}
				continue
			}
			if r.active >= r.workers {
				next = now + 50 // re-check soon (a finishing worker pokes too)
				break
			}
			r.running[q] = true
			r.active++
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.step(ctx, h)
			}()
		}
		if len(r.queues) == 0 && r.active == 0 {
			close(r.idle)
			r.idle = make(chan struct{})
		}
		r.mu.Unlock()
		d := time.Hour
		if next >= 0 {
			d = time.Duration(max(next-now, 1)) * time.Millisecond
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// idleCh is closed when the queue is next found empty.
func (r *runner) idleCh() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.poke()
	return r.idle
}

// step runs one attempt of t and records its outcome.
func (r *runner) step(ctx context.Context, t *task) {
	start := time.Now()
	next, err := r.exec(ctx, t)
	if ctx.Err() != nil && err != nil {
		r.release(t, false) // shutting down: leave it pending for the next start
		return
	}
	if errors.Is(err, errLostLease) {
		r.lost(t)
		return
	}
	r.metrics.observeStep(t.Kind, time.Since(start), err)
	var notify *firstResult
	switch {
	case err == nil:
		for _, n := range next {
			if n.Parent == 0 {
				n.Parent = t.ID
			}
			if n.Wallet == "" {
				n.Wallet = t.Wallet
			}
		}
		if serr := r.st.finish(ctx, t, stateDone, t.LastError, next); errors.Is(serr, errLostLease) {
			r.lost(t)
			return
		} else if serr != nil {
			r.log.Error("recording a finished step failed; it will run again", "task", t.Key, "err", serr)
			t.NextAt = nowMS() + r.baseDelay.Milliseconds()
			r.release(t, false)
			return
		}
		t.State = stateDone
		r.metrics.done(t.Kind)
		notify = &firstResult{id: t.Ref}
		r.out.add(next...)
	default:
		t.Attempts++
		t.LastError = err.Error()
		if isPermanent(err) || (r.maxAttempts > 0 && t.Attempts >= r.maxAttempts) {
			r.log.Warn("step failed for good", "task", t.Key, "attempts", t.Attempts, "err", err)
			if serr := r.st.finish(ctx, t, stateFailed, t.LastError, nil); serr != nil {
				r.log.Error("recording a failed step failed", "task", t.Key, "err", serr)
			}
			t.State = stateFailed
			r.metrics.failed(t.Kind)
			notify = &firstResult{err: err}
		} else {
			d := r.baseDelay << min(t.Attempts-1, 20)
			if d > r.maxDelay || d <= 0 {
				d = r.maxDelay
			}
			t.NextAt = nowMS() + d.Milliseconds()
			r.log.Info("step failed, will retry", "task", t.Key, "attempts", t.Attempts, "in", d, "err", err)
			r.metrics.retries.Add(1)
			if serr := r.st.retry(ctx, t); errors.Is(serr, errLostLease) {
				r.lost(t)
				return
			} else if serr != nil {
				r.log.Error("recording a retry failed", "task", t.Key, "err", serr)
			}
		}
	}
	r.release(t, t.State != statePending)
	if notify != nil {
		r.mu.Lock()
		ch := r.waiting[t.ID]
		delete(r.waiting, t.ID)
		r.mu.Unlock()
		if ch != nil {
			ch <- *notify
		}
	}
}

// lost drops t's whole queue after its lease went to another MU, which runs
// it from now on.
func (r *runner) lost(t *task) {
	r.log.Warn("the lease of a queue was lost to another MU; dropping it", "queue", t.Queue, "task", t.Key)
	r.mu.Lock()
	for _, o := range r.queues[t.Queue] {
		delete(r.known, o.ID)
	}
	r.metrics.pending.Add(-int64(len(r.queues[t.Queue])))
	delete(r.queues, t.Queue)
	r.running[t.Queue] = false
	delete(r.running, t.Queue)
	r.active--
	r.mu.Unlock()
	r.poke()
}

// keepOnly drops the queues not in held that are not running (a shared
// queue's leases this MU lost); a running one is dropped when its step's
// write finds the lease gone. A queue with a task created at or after since
// (when the renewal that listed held began) is kept: its lease may have been
// taken after that list was made.
func (r *runner) keepOnly(held map[string]bool, since int64) {
	r.mu.Lock()
	for q, ts := range r.queues {
		if held[q] || r.running[q] || slices.ContainsFunc(ts, func(t *task) bool { return t.Created >= since }) {
			continue
		}
		for _, o := range ts {
			delete(r.known, o.ID)
		}
		r.metrics.pending.Add(-int64(len(ts)))
		delete(r.queues, q)
	}
	now := nowMS()
	for id, end := range r.known {
		if end != 0 && now-end > 60_000 {
			delete(r.known, id)
		}
	}
	r.mu.Unlock()
	r.poke()
}

// release frees t's queue, popping t when it is finished.
func (r *runner) release(t *task, finished bool) {
	r.mu.Lock()
	if finished {
		q := r.queues[t.Queue]
		if len(q) > 0 && q[0] == t {
			q[0] = nil
			r.queues[t.Queue] = q[1:]
		}
		r.metrics.pending.Add(-1)
		if r.st.shared() {
			r.known[t.ID] = nowMS()
		} else {
			delete(r.known, t.ID)
		}
	}
	r.running[t.Queue] = false
	delete(r.running, t.Queue)
	r.active--
	r.mu.Unlock()
	r.poke()
}
