package mu

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// crons polls the CU's /cron for monitored processes and enqueues each cron
// evaluation's outputs. The cursor and the tasks it covers are committed in
// one transaction, so a crash neither loses nor repeats an evaluation's
// outbox, and monitors survive restarts.
//
// A monitor whose polls fail (a CU that is down, a process the CU cannot
// run) is polled less often: the interval doubles per failure up to maxDelay,
// and the log says when a monitor starts failing and when it recovers, not
// on every poll.
type crons struct {
	s        *Server
	max      int           // monitored processes at most
	every    time.Duration // the poll interval
	maxDelay time.Duration // the longest back-off
	admit    sync.Mutex    // serializes adding and removing monitors

	mu       sync.Mutex
	cursors  map[string]string
	inflight map[string]bool
	failing  map[string]*backoff // monitors whose last poll failed
}

type backoff struct {
	failures int
	next     time.Time
}

func (c *crons) set(pid string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		if _, ok := c.cursors[pid]; !ok {
			c.cursors[pid] = ""
		}
	} else {
		delete(c.cursors, pid)
		if c.failing[pid] != nil {
			delete(c.failing, pid)
			c.s.metrics.monitorsFailing.Add(-1)
		}
	}
	c.s.metrics.monitors.Store(int64(len(c.cursors)))
}

// state reports whether pid is monitored and how many processes are.
func (c *crons) state(pid string) (bool, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.cursors[pid]
	return ok, len(c.cursors)
}

func (c *crons) run(ctx context.Context) {
	t := time.NewTicker(c.every)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		c.mu.Lock()
		for pid, cur := range c.cursors {
			if c.inflight[pid] {
				continue
			}
			if b := c.failing[pid]; b != nil && now.Before(b.next) {
				continue
			}
			c.inflight[pid] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.poll(ctx, pid, cur)
				c.done(ctx, pid, err)
			}()
		}
		c.mu.Unlock()
	}
}

// done records the outcome of a poll of pid: a failure backs the monitor
// off, a success ends its back-off. Only these changes are logged.
func (c *crons) done(ctx context.Context, pid string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inflight, pid)
	if ctx.Err() != nil {
		return // shutting down: not the CU's fault
	}
	b := c.failing[pid]
	if err == nil {
		if b != nil {
			delete(c.failing, pid)
			c.s.metrics.monitorsFailing.Add(-1)
			c.s.log.Info("cron: polling works again", "process", pid, "failedPolls", b.failures)
		}
		return
	}
	if _, ok := c.cursors[pid]; !ok {
		return // unmonitored meanwhile
	}
	if b == nil {
		b = &backoff{}
		c.failing[pid] = b
		c.s.metrics.monitorsFailing.Add(1)
		c.s.log.Warn("cron: polling failed; backing off until it works again", "process", pid, "err", err)
	}
	b.failures++
	d := c.every << min(b.failures, 20)
	if d > c.maxDelay || d <= 0 {
		d = c.maxDelay
	}
	b.next = time.Now().Add(d)
}

// cronPage is the page size asked of the CU, as the reference MU asks.
const cronPage = 50

func (c *crons) poll(ctx context.Context, pid, cursor string) error {
	s := c.s
	if cursor == "" {
		// First poll: start after the newest result, as the reference does,
		// so that a long-lived process's past crons are not pushed again.
		cur, err := s.cu.LatestCursor(ctx, pid)
		var he *HTTPError
		if err != nil && !(errors.As(err, &he) && he.Status == 404) {
			return fmt.Errorf("reading the latest cursor: %w", err)
		}
		cursor = cur
	}
	for range 100 { // bounded per tick; the next tick continues
		b, err := s.cu.Cron(ctx, pid, cursor, cronPage)
		if err != nil {
			return fmt.Errorf("polling the CU: %w", err)
		}
		page, err := ParseCronPage(b)
		if err != nil {
			return fmt.Errorf("bad page from the CU: %w", err)
		}
		if len(page.Edges) == 0 {
			break
		}
		var tasks []*task
		for _, e := range page.Edges {
			tasks = append(tasks, outputTasks(pid, "cron:"+e.Cursor, "", e.Result)...)
		}
		last := page.Edges[len(page.Edges)-1].Cursor
		if err := s.st.advanceMonitor(ctx, pid, last, tasks); err != nil {
			return fmt.Errorf("recording the cursor: %w", err)
		}
		s.run.add(tasks...)
		cursor = last
		c.mu.Lock()
		if _, ok := c.cursors[pid]; ok {
			c.cursors[pid] = cursor
		}
		c.mu.Unlock()
		if !page.HasNextPage {
			break
		}
	}
	return nil
}
