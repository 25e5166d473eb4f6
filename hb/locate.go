package hb

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/aonode/aonode/cu"
	"github.com/aonode/aonode/mu"
)

// Locations maps scheduler addresses to this node's SU where the gateway has
// no Scheduler-Location record for them.
//
// The AO-Core clients name schedulers the legacy units cannot locate: aos
// sends the public mainnet scheduler unless given --scheduler, and aoconnect
// uses the node's own address (the MU key, see Adapter.Address), which no
// Scheduler-Location record names. Local addresses always resolve to the local
// SU; any other unlocatable address does too unless Strict, so that a process
// spawned by an unmodified client is scheduled, computed and cranked here.
// The units consult Locations through the wrappers CU and MU, which leave
// every other gateway call alone.
type Locations struct {
	suURL  string
	local  map[string]bool
	strict bool
	log    *slog.Logger

	mu     sync.Mutex
	logged map[string]bool
}

// localTTL is how long a unit caches a fallback answer.
const localTTL = time.Minute

// NewLocations resolves the local addresses (the SU's and the MU's, say) and,
// unless strict, every address without a Scheduler-Location record, to suURL.
func NewLocations(suURL string, local []string, strict bool, log *slog.Logger) *Locations {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Locations{suURL: suURL, local: map[string]bool{}, strict: strict, log: log, logged: map[string]bool{}}
	for _, a := range local {
		if a != "" {
			l.local[a] = true
		}
	}
	return l
}

// resolve answers a Scheduler-Location lookup given the gateway's answer;
// notFound is the unit's not-found error.
func (l *Locations) resolve(address, u string, ttl time.Duration, err error, notFound error) (string, time.Duration, error) {
	if err == nil {
		return u, ttl, nil
	}
	if !errors.Is(err, notFound) {
		return "", 0, err
	}
	if l.local[address] {
		return l.suURL, localTTL, nil
	}
	if l.strict {
		return "", 0, err
	}
	l.mu.Lock()
	first := !l.logged[address]
	l.logged[address] = true
	l.mu.Unlock()
	if first {
		l.log.Warn("scheduling processes of a scheduler this node does not serve on the local SU "+
			"(start with --strict-scheduler to refuse them)", "scheduler", address, "su", l.suURL)
	}
	return l.suURL, localTTL, nil
}

// CU wraps a CU gateway client so that its SU lookups fall back to Locations.
func (l *Locations) CU(g cu.Gateway) cu.Gateway { return cuGateway{g, l} }

// MU wraps an MU gateway client so that its SU lookups fall back to Locations.
func (l *Locations) MU(g mu.GatewayClient) mu.GatewayClient { return muGateway{g, l} }

type cuGateway struct {
	cu.Gateway
	l *Locations
}

func (g cuGateway) SchedulerLocation(ctx context.Context, owner string) (string, time.Duration, error) {
	u, ttl, err := g.Gateway.SchedulerLocation(ctx, owner)
	return g.l.resolve(owner, u, ttl, err, cu.ErrNotFound)
}

type muGateway struct {
	mu.GatewayClient
	l *Locations
}

func (g muGateway) SchedulerLocation(ctx context.Context, address string) (string, time.Duration, error) {
	u, ttl, err := g.GatewayClient.SchedulerLocation(ctx, address)
	return g.l.resolve(address, u, ttl, err, mu.ErrNotFound)
}
