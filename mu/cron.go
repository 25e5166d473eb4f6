package mu

import (
	"context"
	"errors"
	"sync"
	"time"
)

// crons polls the CU's /cron for monitored processes and enqueues each cron
// evaluation's outputs. The cursor and the tasks it covers are committed in
// one transaction, so a crash neither loses nor repeats an evaluation's
// outbox, and monitors survive restarts.
type crons struct {
	s        *Server
	mu       sync.Mutex
	cursors  map[string]string
	inflight map[string]bool
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
	}
	c.s.metrics.monitors.Store(int64(len(c.cursors)))
}

func (c *crons) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		for pid, cur := range c.cursors {
			if c.inflight[pid] {
				continue
			}
			c.inflight[pid] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.poll(ctx, pid, cur)
				c.mu.Lock()
				delete(c.inflight, pid)
				c.mu.Unlock()
			}()
		}
		c.mu.Unlock()
	}
}

// cronPage is the page size asked of the CU, as the reference MU asks.
const cronPage = 50

func (c *crons) poll(ctx context.Context, pid, cursor string) {
	s := c.s
	if cursor == "" {
		// First poll: start after the newest result, as the reference does,
		// so that a long-lived process's past crons are not pushed again.
		cur, err := s.cu.LatestCursor(ctx, pid)
		var he *HTTPError
		if err != nil && !(errors.As(err, &he) && he.Status == 404) {
			s.log.Warn("cron: reading the latest cursor failed", "process", pid, "err", err)
			return
		}
		cursor = cur
	}
	for range 100 { // bounded per tick; the next tick continues
		b, err := s.cu.Cron(ctx, pid, cursor, cronPage)
		if err != nil {
			s.log.Warn("cron: polling the CU failed", "process", pid, "err", err)
			return
		}
		page, err := ParseCronPage(b)
		if err != nil {
			s.log.Warn("cron: bad page from the CU", "process", pid, "err", err)
			return
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
			s.log.Error("cron: recording the cursor failed", "process", pid, "err", err)
			return
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
}
