package mu

import (
	"context"
	"errors"
	"sync"

	"github.com/aonode/aonode/placement"
)

// PlacedCompute is a ComputeClient over several CUs: each process's requests
// go to the CU package placement chooses for it (the cheapest healthy CU,
// spread over equal ones by rendezvous hashing, pins first), and fail over
// to the next one when that CU does not answer or answers 5xx (it is demoted
// until a probe finds it well) or 402 (it will not do this now; it stays).
//
// Nothing is lost on failover: a pull that fails on every CU returns the last
// error and the crank retries it later, results are deterministic so the
// next CU computes the same outputs (whose task keys the queue already
// knows), and /cron cursors are the same on every CU.
type PlacedCompute struct {
	P       *placement.Placer
	mu      sync.Mutex
	clients map[string]*HTTPCompute
	shared  *HTTPCompute // one connection pool for all CUs
}

// NewPlacedCompute returns a ComputeClient choosing among p's CUs.
func NewPlacedCompute(p *placement.Placer) *PlacedCompute {
	return &PlacedCompute{P: p, clients: map[string]*HTTPCompute{}, shared: NewHTTPCompute("")}
}

func (c *PlacedCompute) client(u string) *HTTPCompute {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.clients[u]
	if h == nil {
		h = &HTTPCompute{URL: u, Client: c.shared.Client}
		c.clients[u] = h
	}
	return h
}

// outcome classifies an HTTPCompute error for placement.
func outcome(err error) placement.Outcome {
	if err == nil {
		return placement.Answered
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return placement.Classify(he.Status)
	}
	return placement.Unwell // no answer: connection refused, reset, timeout
}

// Result reads a result from pid's CU, failing over.
func (c *PlacedCompute) Result(ctx context.Context, pid, msgID string) ([]byte, error) {
	var b []byte
	_, err := c.P.Do(ctx, pid, func(ctx context.Context, u string) (placement.Outcome, error) {
		var err error
		b, err = c.client(u).Result(ctx, pid, msgID)
		return outcome(err), err
	})
	return b, err
}

// Cron reads a page of cron results from pid's CU, failing over (cursors
// are the same on every CU).
func (c *PlacedCompute) Cron(ctx context.Context, pid, from string, limit int) ([]byte, error) {
	var b []byte
	_, err := c.P.Do(ctx, pid, func(ctx context.Context, u string) (placement.Outcome, error) {
		var err error
		b, err = c.client(u).Cron(ctx, pid, from, limit)
		return outcome(err), err
	})
	return b, err
}

// LatestCursor reads the newest result's cursor from pid's CU.
func (c *PlacedCompute) LatestCursor(ctx context.Context, pid string) (string, error) {
	var cur string
	_, err := c.P.Do(ctx, pid, func(ctx context.Context, u string) (placement.Outcome, error) {
		var err error
		cur, err = c.client(u).LatestCursor(ctx, pid)
		return outcome(err), err
	})
	return cur, err
}
