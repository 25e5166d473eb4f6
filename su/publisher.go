package su

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// publisher uploads outbox items to the permanent store and deletes them once
// stored. It retries with exponential backoff (1 s to 32 s, as the reference SU
// does) for as long as it takes: nothing acknowledged may be missing from the
// permanent record.
type publisher struct {
	store   Store
	chain   Chain
	log     *slog.Logger
	metrics *Metrics
	wake    chan struct{}
	idle    chan struct{} // closed and replaced whenever the outbox is seen empty
	mu      sync.Mutex
}

func newPublisher(store Store, chain Chain, log *slog.Logger, m *Metrics) *publisher {
	return &publisher{store: store, chain: chain, log: log, metrics: m, wake: make(chan struct{}, 1), idle: make(chan struct{})}
}

func (p *publisher) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// idleCh returns a channel closed the next time the publisher finds the outbox empty.
func (p *publisher) idleCh() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idle
}

func (p *publisher) run(ctx context.Context) {
	const batch = 256
	const workers = 8
	backoff := time.Second
	for ctx.Err() == nil {
		items, err := p.store.PendingOutbox(ctx, batch)
		if err != nil {
			p.log.Warn("outbox read failed", "err", err)
			sleep(ctx, backoff)
			continue
		}
		p.metrics.outboxPending.Store(int64(len(items)))
		if len(items) == 0 {
			p.mu.Lock()
			close(p.idle)
			p.idle = make(chan struct{})
			p.mu.Unlock()
			select {
			case <-p.wake:
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		done := make([]bool, len(items))
		var wg sync.WaitGroup
		next := make(chan int)
		for range min(workers, len(items)) {
			wg.Go(func() {
				for i := range next {
					uctx, cancel := context.WithTimeout(ctx, time.Minute)
					err := p.chain.Upload(uctx, items[i].Item)
					cancel()
					if err != nil {
						p.metrics.uploadErrors.Add(1)
						p.log.Warn("upload failed; will retry", "id", items[i].ItemID, "err", err)
						continue
					}
					p.metrics.uploads.Add(1)
					done[i] = true
				}
			})
		}
		for i := range items {
			next <- i
		}
		close(next)
		wg.Wait()
		var seqs []int64
		for i, ok := range done {
			if ok {
				seqs = append(seqs, items[i].Seq)
			}
		}
		if len(seqs) > 0 {
			if err := p.store.DeleteOutbox(ctx, seqs); err != nil {
				p.log.Warn("outbox delete failed", "err", err)
			}
		}
		if len(seqs) < len(items) {
			sleep(ctx, backoff)
			backoff = min(2*backoff, 32*time.Second)
		} else {
			backoff = time.Second
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
