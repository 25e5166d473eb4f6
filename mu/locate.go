package mu

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// locator finds processes and their SUs. Processes are immutable, so their
// tags are cached forever (in memory and in the store, and recorded directly
// when a process passes through this MU, so that a message sent right after a
// spawn does not depend on the gateway having indexed it). Scheduler-Location
// records are cached for their Time-To-Live.
type locator struct {
	gw    GatewayClient
	st    *store
	now   func() time.Time
	mu    sync.Mutex
	procs map[string][]Tag
	locs  map[string]location
}

type location struct {
	url     string
	expires time.Time
}

// errNotProcess: the id exists but is not an ao Process.
var errNotProcess = errors.New("not an ao process")

func newLocator(gw GatewayClient, st *store) *locator {
	return &locator{gw: gw, st: st, now: time.Now, procs: map[string][]Tag{}, locs: map[string]location{}}
}

// remember records a process seen by this MU.
func (l *locator) remember(ctx context.Context, pid string, tags []Tag) error {
	l.mu.Lock()
	l.procs[pid] = tags
	l.mu.Unlock()
	return l.st.putProcess(ctx, pid, tags)
}

// process returns a process's tags: ErrNotFound when the gateway does not know
// the id, errNotProcess when it is something else.
func (l *locator) process(ctx context.Context, pid string) ([]Tag, error) {
	l.mu.Lock()
	tags, ok := l.procs[pid]
	l.mu.Unlock()
	if ok {
		return tags, nil
	}
	tags, ok, err := l.st.process(ctx, pid)
	if err != nil {
		return nil, err
	}
	if !ok {
		if tags, err = l.gw.Tags(ctx, pid); err != nil {
			return nil, err
		}
		if v, _ := tagValue(tags, "Type"); v != "Process" {
			return nil, fmt.Errorf("%s: %w", pid, errNotProcess)
		}
		if err := l.st.putProcess(ctx, pid, tags); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	l.procs[pid] = tags
	l.mu.Unlock()
	return tags, nil
}

// schedulerURL resolves an SU wallet address to its URL.
func (l *locator) schedulerURL(ctx context.Context, address string) (string, error) {
	l.mu.Lock()
	loc, ok := l.locs[address]
	l.mu.Unlock()
	if ok && l.now().Before(loc.expires) {
		return loc.url, nil
	}
	u, ttl, err := l.gw.SchedulerLocation(ctx, address)
	if err != nil {
		return "", fmt.Errorf("locating scheduler %s: %w", address, err)
	}
	l.mu.Lock()
	l.locs[address] = location{url: u, expires: l.now().Add(ttl)}
	l.mu.Unlock()
	return u, nil
}

// locate returns the URL of the SU of process pid and the process's tags.
func (l *locator) locate(ctx context.Context, pid string) (string, []Tag, error) {
	tags, err := l.process(ctx, pid)
	if err != nil {
		return "", nil, fmt.Errorf("process %s: %w", pid, err)
	}
	sched, ok := tagValue(tags, "Scheduler")
	if !ok || sched == "" {
		return "", nil, fmt.Errorf("process %s has no Scheduler tag: %w", pid, errNotProcess)
	}
	u, err := l.schedulerURL(ctx, sched)
	return u, tags, err
}
