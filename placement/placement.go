// Package placement chooses the Compute Unit for a process among the CUs a
// client knows. The MU, the Go SDK and `aonode router` all use it, so that
// they agree on where a process runs without talking to each other.
//
// The choice is a pure function of the process id and what is known of the
// CUs: among the healthy CUs, the cheapest by per-message price; among equally
// cheap ones (a cluster of equal-priced CUs), the one with the highest
// rendezvous hash of (process id, CU URL). A pin (process → CU) overrides both
// while the pinned CU is healthy. Because the choice is a function, it is
// sticky (the same process lands on the same CU while nothing changes), it
// spreads processes evenly over equal CUs, and a CU joining takes only its fair
// share of processes (those whose top hash it now has), moving none between the
// others. A CU that fails a request (a connection error, a 5xx) is demoted at
// once; its processes go to their next CU in the same order until a health
// check (GET /, with back-off) finds it answering again.
//
// CUs come from explicit URLs and, optionally, from Compute-Price records on a
// gateway (GraphQL, newest record per owner, within its Time-To-Live), re-read
// periodically. A CU's GET / gives its live prices and health; a discovered CU
// whose GET / names another wallet than the record's owner is not used.
//
// Probes and discovery run lazily, started by use (no goroutine lives unless
// work is due), and Run keeps them going without traffic for long-lived users
// (the MU, the router) whose tables should stay fresh.
package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Placer.
type Config struct {
	// URLs are CUs given explicitly (flags); they are never forgotten.
	URLs []string
	// GatewayURL, when set, is asked for Compute-Price records every
	// DiscoverInterval (default 1 min); each record's CU joins the table.
	GatewayURL       string
	DiscoverInterval time.Duration
	// ProbeInterval is how often a healthy CU's GET / is re-read for its
	// prices (default 15 s). A CU that failed is probed after MinBackoff,
	// doubling per failure up to MaxBackoff (defaults 500 ms, 30 s).
	ProbeInterval          time.Duration
	MinBackoff, MaxBackoff time.Duration
	// ProbeTimeout bounds one GET / (default 5 s).
	ProbeTimeout time.Duration
	// MaxTracked bounds the processes remembered for the table and metrics
	// (default 100 000); the choice itself needs no memory per process.
	MaxTracked int
	HTTP       *http.Client
	Logger     *slog.Logger
	// Now is the clock (tests may set it).
	Now func() time.Time
}

// ErrNoCU is returned when a Placer knows no CU at all.
var ErrNoCU = errors.New("placement: no CU known")

// Placer chooses CUs for processes. It is safe for concurrent use.
type Placer struct {
	cfg  Config
	http *http.Client
	log  *slog.Logger

	mu      sync.Mutex
	cus     map[string]*cuState // by URL
	pins    map[string]string   // process → CU URL
	tracked map[string]string   // process → the CU that last served it

	view     atomic.Pointer[view]
	due      atomic.Int64 // unix nano of the earliest due probe or discovery
	probing  atomic.Bool
	lastDisc time.Time
	// refreshed is closed after the first full Refresh.
	refreshOnce sync.Once
	refreshed   chan struct{}

	failovers, demotions atomic.Int64
}

type cuState struct {
	url      string
	hash     uint64
	explicit bool   // from Config.URLs or Add
	owner    string // the record's owner for a discovered CU
	record   *Record
	info     *Info // from the last good GET /
	probed   bool
	up       bool
	failures int
	next     time.Time // next probe
	lastErr  string
	price    *big.Int
}

// view is an immutable snapshot for choosing without locks: the healthy CUs
// grouped by per-message price, cheapest first, then the others.
type view struct {
	groups [][]*cuRef
	down   []*cuRef
	pins   map[string]*cuRef
	all    map[string]*cuRef
}

type cuRef struct {
	url  string
	hash uint64
	up   bool
}

// New returns a Placer over cfg.URLs (and the gateway's records, if set).
func New(cfg Config) (*Placer, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.DiscoverInterval, time.Minute)
	def(&cfg.ProbeInterval, 15*time.Second)
	def(&cfg.MinBackoff, 500*time.Millisecond)
	def(&cfg.MaxBackoff, 30*time.Second)
	def(&cfg.ProbeTimeout, 5*time.Second)
	if cfg.MaxTracked <= 0 {
		cfg.MaxTracked = 100_000
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.GatewayURL != "" {
		u, err := normalizeURL(cfg.GatewayURL)
		if err != nil {
			return nil, fmt.Errorf("placement: gateway: %w", err)
		}
		cfg.GatewayURL = u
	}
	p := &Placer{cfg: cfg, http: cfg.HTTP, log: cfg.Logger, cus: map[string]*cuState{}, pins: map[string]string{},
		tracked: map[string]string{}, refreshed: make(chan struct{})}
	for _, u := range cfg.URLs {
		if _, err := p.add(u, true, nil); err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	p.rebuild()
	p.mu.Unlock()
	return p, nil
}

// Add puts a CU in the table (explicitly: it stays until Remove).
func (p *Placer) Add(rawURL string) error {
	_, err := p.add(rawURL, true, nil)
	if err == nil {
		p.mu.Lock()
		p.rebuild()
		p.mu.Unlock()
	}
	return err
}

// Remove takes a CU out of the table: its processes move to their next CU.
func (p *Placer) Remove(rawURL string) {
	u, err := normalizeURL(rawURL)
	if err != nil {
		return
	}
	p.mu.Lock()
	delete(p.cus, u)
	p.rebuild()
	p.mu.Unlock()
}

func (p *Placer) add(rawURL string, explicit bool, rec *Record) (*cuState, error) {
	u, err := normalizeURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("placement: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.cus[u]
	if c == nil {
		c = &cuState{url: u, hash: hashString(u), up: true, price: new(big.Int)}
		p.cus[u] = c
	}
	if explicit {
		c.explicit = true
	}
	if rec != nil {
		if c.info != nil && c.info.Address != rec.Owner {
			// Anyone can publish a record naming any URL: one whose owner is
			// not the wallet answering there is a false claim.
			return c, nil
		}
		if c.owner != rec.Owner {
			c.probed = false // a new owner must be checked against GET /
			c.next = time.Time{}
		}
		c.owner, c.record = rec.Owner, rec
		if c.info == nil {
			c.price = rec.Prices.messagePrice()
		}
	}
	return c, nil
}

// Pin makes process pid run on the CU at cuURL while that CU is healthy
// (when it is not, pid fails over as any process does). An empty cuURL
// removes the pin. A pin to a CU not in the table is kept but unused.
func (p *Placer) Pin(pid, cuURL string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cuURL == "" {
		delete(p.pins, pid)
	} else {
		u, err := normalizeURL(cuURL)
		if err != nil {
			return fmt.Errorf("placement: pin %s: %w", pid, err)
		}
		p.pins[pid] = u
	}
	p.rebuild()
	return nil
}

// Pins returns a copy of the pin table.
func (p *Placer) Pins() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]string, len(p.pins))
	for k, v := range p.pins {
		out[k] = v
	}
	return out
}

// rebuild makes a new view from the table (p.mu held).
func (p *Placer) rebuild() {
	v := &view{pins: map[string]*cuRef{}, all: map[string]*cuRef{}}
	var up []*cuState
	earliest, have := time.Time{}, false
	for _, c := range p.cus {
		r := &cuRef{url: c.url, hash: c.hash, up: c.up}
		v.all[c.url] = r
		if c.up {
			up = append(up, c)
		} else {
			v.down = append(v.down, r)
		}
		if !have || c.next.Before(earliest) {
			earliest, have = c.next, true
		}
	}
	sort.Slice(up, func(i, j int) bool {
		if c := up[i].price.Cmp(up[j].price); c != 0 {
			return c < 0
		}
		return up[i].url < up[j].url
	})
	for i := 0; i < len(up); {
		j := i
		var g []*cuRef
		for ; j < len(up) && up[j].price.Cmp(up[i].price) == 0; j++ {
			g = append(g, v.all[up[j].url])
		}
		v.groups = append(v.groups, g)
		i = j
	}
	for pid, u := range p.pins {
		if r := v.all[u]; r != nil {
			v.pins[pid] = r
		}
	}
	if p.cfg.GatewayURL != "" {
		if d := p.lastDisc.Add(p.cfg.DiscoverInterval); !have || d.Before(earliest) {
			earliest, have = d, true
		}
	}
	if !have {
		earliest = p.cfg.Now().Add(p.cfg.ProbeInterval)
	}
	p.due.Store(earliest.UnixNano())
	p.view.Store(v)
}

// score is the rendezvous weight of a CU for a process.
func score(pidHash, cuHash uint64) uint64 { return mix(pidHash ^ cuHash) }

// best returns the highest-scoring CU of g for pidHash.
func best(g []*cuRef, h uint64) *cuRef {
	var top *cuRef
	var ts uint64
	for _, r := range g {
		if s := score(h, r.hash); top == nil || s > ts || (s == ts && r.url < top.url) {
			top, ts = r, s
		}
	}
	return top
}

// Choose returns the CU for process pid: its pin if healthy, else the
// cheapest healthy CU with the highest rendezvous hash; when no CU is
// healthy, the best of the others (they may be back).
func (p *Placer) Choose(pid string) (string, error) {
	p.tick()
	v := p.view.Load()
	if r := v.pins[pid]; r != nil && r.up {
		return r.url, nil
	}
	h := hashString(pid)
	if len(v.groups) > 0 {
		return best(v.groups[0], h).url, nil
	}
	if len(v.down) > 0 {
		return best(v.down, h).url, nil
	}
	return "", ErrNoCU
}

// Candidates returns every known CU in the order pid should try them: the
// choice first, then its failovers (the rest of the cheapest group by hash,
// then dearer groups, then the CUs that are down).
func (p *Placer) Candidates(pid string) []string {
	p.tick()
	v := p.view.Load()
	h := hashString(pid)
	out := make([]string, 0, len(v.all))
	pin := v.pins[pid]
	if pin != nil && pin.up {
		out = append(out, pin.url)
	}
	byScore := func(g []*cuRef) {
		s := slices.Clone(g)
		sort.Slice(s, func(i, j int) bool {
			a, b := score(h, s[i].hash), score(h, s[j].hash)
			if a != b {
				return a > b
			}
			return s[i].url < s[j].url
		})
		for _, r := range s {
			if pin != nil && pin.up && r == pin {
				continue // already first
			}
			out = append(out, r.url)
		}
	}
	for _, g := range v.groups {
		byScore(g)
	}
	byScore(v.down)
	return out
}

// Fail demotes the CU at cuURL after a request to it failed in a way that
// says the CU is unwell (no connection, a 5xx): processes go to their next
// CU until a probe finds it answering.
func (p *Placer) Fail(cuURL string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.cus[cuURL]
	if c == nil {
		return
	}
	c.failures++
	if err != nil {
		c.lastErr = err.Error()
	}
	c.next = p.cfg.Now().Add(p.backoff(c.failures))
	if c.up {
		c.up = false
		p.demotions.Add(1)
		p.log.Warn("placement: CU demoted; its processes fail over until it answers again", "cu", cuURL, "err", err)
		p.rebuild()
	}
}

func (p *Placer) backoff(failures int) time.Duration {
	d := p.cfg.MinBackoff << min(max(failures-1, 0), 20)
	if d > p.cfg.MaxBackoff || d <= 0 {
		d = p.cfg.MaxBackoff
	}
	return d
}

// Served records that cuURL answered for pid (for the table and metrics);
// failover says it was not the first candidate tried.
func (p *Placer) Served(pid, cuURL string, failover bool) {
	if failover {
		p.failovers.Add(1)
	}
	p.mu.Lock()
	if p.tracked[pid] != cuURL {
		if _, ok := p.tracked[pid]; !ok && len(p.tracked) >= p.cfg.MaxTracked {
			for k := range p.tracked { // forget one at random
				delete(p.tracked, k)
				break
			}
		}
		p.tracked[pid] = cuURL
	}
	p.mu.Unlock()
}

// Outcome says what a CU's answer means for placement.
type Outcome int

const (
	// Answered: the CU answered (any 2xx, or a 4xx that another CU would give
	// too); the answer is the caller's.
	Answered Outcome = iota
	// Unwell: no connection, a timeout or a 5xx other than 502 and 504 (its
	// upstream failed): demote the CU, try the next.
	Unwell
	// NotNow: the CU will not do this now (402 Payment Required): try the
	// next CU without demoting this one.
	NotNow
)

// Classify maps an HTTP status (0: no answer) to an Outcome.
func Classify(status int) Outcome {
	switch {
	case status == http.StatusBadGateway || status == http.StatusGatewayTimeout:
		// The CU answered: what failed is behind it (its SU, the gateway),
		// and every CU would fail the same way.
		return Answered
	case status == 0 || status >= 500:
		return Unwell
	case status == http.StatusPaymentRequired:
		return NotNow
	}
	return Answered
}

// Do runs op against pid's CUs in order until one answers (see Outcome),
// demoting the unwell ones on the way. It returns the CU that answered and
// op's error; when none answered, the last error.
func (p *Placer) Do(ctx context.Context, pid string, op func(ctx context.Context, cuURL string) (Outcome, error)) (string, error) {
	first, err := p.Choose(pid)
	if err != nil {
		return "", err
	}
	// The failover order is computed only when the first choice fails.
	var cands []string
	var last error
	for i, u := 0, first; ; i++ {
		if i > 0 {
			if cands == nil {
				cands = p.Candidates(pid)
				cands = slices.DeleteFunc(cands, func(c string) bool { return c == first })
			}
			if i > len(cands) {
				return "", last
			}
			u = cands[i-1]
		}
		if err := ctx.Err(); err != nil {
			if last == nil {
				last = err
			}
			return "", last
		}
		out, err := op(ctx, u)
		switch out {
		case Answered:
			p.Served(pid, u, i > 0)
			return u, err
		case Unwell:
			if ctx.Err() == nil { // our own cancellation is not the CU's fault
				p.Fail(u, err)
			}
		}
		if err == nil {
			err = fmt.Errorf("placement: %s gave no usable answer", u)
		}
		last = err
	}
}

// tick starts due probes and discovery in the background, at most one round
// at a time.
func (p *Placer) tick() {
	if p.cfg.Now().UnixNano() < p.due.Load() {
		return
	}
	if !p.probing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer p.probing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.ProbeTimeout*2)
		defer cancel()
		p.round(ctx, false)
	}()
}

// Refresh reads the gateway's records (if configured) and probes every CU
// now, waiting for the answers (bounded by ctx). Users call it once at start
// so that the first choices already know prices and health.
func (p *Placer) Refresh(ctx context.Context) {
	p.round(ctx, true)
	p.refreshOnce.Do(func() { close(p.refreshed) })
}

// Ready waits for the first Refresh to finish, running one if none has.
func (p *Placer) Ready(ctx context.Context) {
	select {
	case <-p.refreshed:
		return
	default:
	}
	p.Refresh(ctx)
}

// Run keeps probes and discovery going until ctx ends, for long-lived users
// whose table should stay fresh without traffic.
func (p *Placer) Run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.tick()
		}
	}
}

// round discovers (when due, or all) and probes every due CU (or all).
func (p *Placer) round(ctx context.Context, all bool) {
	now := p.cfg.Now()
	p.mu.Lock()
	discover := p.cfg.GatewayURL != "" && (all || !now.Before(p.lastDisc.Add(p.cfg.DiscoverInterval)))
	if discover {
		p.lastDisc = now
	}
	p.mu.Unlock()
	if discover {
		if err := p.discover(ctx); err != nil {
			p.log.Warn("placement: reading Compute-Price records failed", "gateway", p.cfg.GatewayURL, "err", err)
		}
	}
	p.mu.Lock()
	var due []*cuState
	for _, c := range p.cus {
		if all || !now.Before(c.next) {
			due = append(due, c)
			// Not probed again by a concurrent tick before this answer.
			c.next = now.Add(p.cfg.ProbeInterval)
		}
	}
	p.rebuild()
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range due {
		wg.Go(func() { p.probe(ctx, c.url) })
	}
	wg.Wait()
}

// metric names the process counts per CU and the failovers.
func (p *Placer) counts() (map[string]int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	per := map[string]int{}
	for _, u := range p.tracked {
		per[u]++
	}
	return per, len(p.tracked)
}

// hashString is FNV-1a 64 of s.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h)
}

// mix is SplitMix64's finalizer: it spreads FNV's weak low bits, so that
// xor-combined hashes order CUs independently per process.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
