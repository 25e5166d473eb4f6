// Package cu is the AO Compute Unit: it reads a process's schedule from its
// Scheduler Unit, runs the process's module (cu/wasm) over the messages in
// order, stores every result, and serves the reference CU's HTTP API
// (units.md §5): /result, /results, /dry-run, /state, /cron, /metrics.
//
// Each active process keeps one live instance whose linear memory is its
// state. Instances are evicted to content-addressed gzip checkpoints on disk
// when live memory exceeds a budget, and restored on demand; checkpoints can
// also be published to the permanent store as Checkpoint data items. Different
// processes evaluate in parallel (bounded by a worker pool); one process's
// messages strictly in order under its lock, so concurrent requests for the
// same process share one evaluation.
//
// The core (Server methods Result, Results, DryRun, State, Cron) needs no
// network of its own: the SU and gateway are the small Scheduler and Gateway
// interfaces, with HTTP implementations here.
package cu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/cu/wasm"
	"github.com/aonode/aonode/internal/httpx"
	"github.com/aonode/aonode/internal/objstore"
)

// Config configures a Server.
type Config struct {
	// DataDir holds the results database, checkpoints and wazero's cache.
	DataDir string
	// Database, a postgres:// URL, keeps results and the checkpoint index on
	// PostgreSQL, shared by a cluster of CUs (default: SQLite in DataDir).
	Database string
	// Checkpoints, when set, is where checkpoint files also go (object
	// storage shared by a cluster, keyed by their content digest), so that
	// any CU restores any process from where another left it (cluster.go).
	Checkpoints *objstore.Store
	// Scheduler and Gateway reach the SU and the permanent store.
	Scheduler Scheduler
	Gateway   Gateway
	// Signer (the CU wallet) signs published checkpoints; Address is
	// reported by GET / (default: the signer's address, if it has one).
	Signer  ans104.Signer
	Address string
	// MemoryBudget bounds the memory live instances hold (bytes of their
	// resident pages, linear memory and rollback base; default a quarter of
	// the machine's memory, at least 1 GiB, the reference's process cache
	// size). Least recently used instances are checkpointed and closed
	// beyond it. Negative: no budget.
	MemoryBudget int64
	// CheckpointEvery writes a file checkpoint after this many evaluated
	// messages (default 1000; negative disables periodic ones).
	CheckpointEvery int
	// PublishInterval, when > 0, publishes at most one Checkpoint item per
	// process per interval to the gateway (the reference throttles to 30
	// min and has creation off by default).
	PublishInterval time.Duration
	// CheckpointOwners are the wallet addresses whose published Checkpoint
	// items are trusted (PROCESS_CHECKPOINT_TRUSTED_OWNERS; default: this
	// CU's own address).
	CheckpointOwners []string
	// IgnoreArweaveCheckpoints turns the published-checkpoint tier off
	// (IGNORE_ARWEAVE_CHECKPOINTS).
	IgnoreArweaveCheckpoints bool
	// DryRunMaxAge is how old the process memory a dry-run uses may be when
	// the request has no x-max-age header (default 100 ms,
	// DRY_RUN_DEFAULT_MAX_PROCESS_AGE).
	DryRunMaxAge time.Duration
	// DryRunCacheTTL keeps dry-run results (default 60 s,
	// DRY_RUN_RESULT_MAX_AGE; negative: no cache).
	DryRunCacheTTL time.Duration
	// DryRunRateLimit, when > 0, allows that many evaluated dry-runs per
	// client IP per DryRunRateWindow (default 1 min); more get 429. Cache
	// hits are not counted.
	DryRunRateLimit  int
	DryRunRateWindow time.Duration
	// MaxMemory and MaxCompute are the highest Memory-Limit and
	// Compute-Limit accepted (defaults 1 GiB and 9e12, as the reference).
	MaxMemory, MaxCompute int64
	// MessageFuel is the deterministic limit of one message's work, in the
	// fuel units of wasm.Config.FuelLimit (default DefaultMessageFuel). It
	// decides results: a message that needs more fails with the same Error
	// on every CU, every run and any load. Negative: no limit.
	MessageFuel int64
	// DryRunFuel is the same limit for a dry-run (default DefaultDryRunFuel,
	// a tenth of a message's: dry-runs are unsigned and free).
	DryRunFuel int64
	// MessageTimeout is a wall-clock guard that only protects the node: a
	// message still running after it (a machine far slower or busier than
	// the fuel limit assumes) is abandoned with a transient 503 error, its
	// result not stored, so a later request evaluates it again (default
	// 5 min). It never decides a result.
	MessageTimeout time.Duration
	// Workers bounds concurrent evaluations of scheduled messages (default
	// GOMAXPROCS). Long messages hand their worker to waiting ones between
	// slices of a few milliseconds, so one process cannot starve others.
	Workers int
	// DryRunWorkers bounds concurrent dry-run evaluations, apart from the
	// message workers so that anonymous dry-runs never delay messages
	// (default max(1, GOMAXPROCS/2)); DryRunQueue bounds the dry-runs waiting
	// for one (default 64), beyond which they are refused with 503.
	DryRunWorkers, DryRunQueue int
	// PageSize is the SU page size (default 1000, LOAD_MESSAGES_PAGE_SIZE).
	PageSize int
	// CacheDir is the engines' compilation cache (default DataDir/wazero;
	// engines other than wazero use a subdirectory of it).
	CacheDir string
	// Engine is the wasm engine processes run on (wasm.Options.Engine; ""
	// is wasm.DefaultEngine). Every engine gives the same results.
	Engine string

	// NoAttestations turns off the signed attestation of each result (on by
	// default: the CU then keeps, for every evaluated message, the digests
	// of its result and of the memory after it, and signs an Attestation
	// item from them when first asked; see attest.go).
	NoAttestations bool
	// PublishAttestations signs every attestation as its message is
	// evaluated and uploads it to the gateway, where anyone finds it by
	// GraphQL (Type: Attestation).
	PublishAttestations bool
	// Prices, when any is set, meters work against balances funded on the
	// Ledger process (which must then be set); zero is free.
	Prices Prices
	// Ledger is the token process whose Transfers to the CU's wallet fund
	// balances (the aos token blueprint's Credit-Notice); the CU evaluates
	// it itself, every LedgerInterval (default 2 s) and before a refusal.
	Ledger         string
	LedgerInterval time.Duration
	// PublicURL is the URL clients reach this CU at, named in its price
	// record; PublishPrices uploads that record (Type: Compute-Price) at
	// start.
	PublicURL     string
	PublishPrices bool
	// PriceTTL is the Time-To-Live of the price record (default 24 h).
	PriceTTL time.Duration
	// fault, for tests only, changes a result before it is stored and
	// attested: a dishonest CU.
	fault  func(pid string, nonce int64, result []byte) []byte
	Logger *slog.Logger
}

func (c *Config) cacheDir() string { return c.CacheDir }

// Server is a running CU.
type Server struct {
	cfg     Config
	sched   Scheduler
	gw      Gateway
	signer  ans104.Signer
	store   *store
	log     *slog.Logger
	unitID  string
	workers *pool // scheduled messages
	dryPool *pool // dry-runs
	// refreshSizes runs every 2 s until refreshStop is closed.
	refreshStop, refreshDone chan struct{}
	stopOnce                 sync.Once
	// stateCopies bounds the whole-memory copies /state makes at once.
	stateCopies *pool
	metrics     *metrics
	dry         dryCache
	limiter     *ipLimiter
	ctx         context.Context
	cancel      context.CancelFunc
	bg          sync.WaitGroup

	mkt     market
	attestQ chan struct{} // wakes the attestation publisher

	cl cluster // shared checkpoints, drain (cluster.go)

	mu      sync.Mutex
	procs   map[string]*proc
	modules map[string]*modEntry
}

// New opens the CU's store in cfg.DataDir.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Scheduler == nil || cfg.Gateway == nil {
		return nil, errors.New("cu: Config needs a Scheduler and a Gateway")
	}
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(".aonode", "cu")
	}
	if cfg.MemoryBudget == 0 {
		cfg.MemoryBudget = DefaultMemoryBudget()
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = 1000
	}
	if cfg.MaxMemory == 0 {
		cfg.MaxMemory = 1 << 30
	}
	if cfg.MaxCompute == 0 {
		cfg.MaxCompute = 9e12
	}
	if cfg.MessageTimeout <= 0 {
		cfg.MessageTimeout = 5 * time.Minute
	}
	if cfg.MessageFuel == 0 {
		cfg.MessageFuel = DefaultMessageFuel
	}
	if cfg.DryRunFuel == 0 {
		cfg.DryRunFuel = DefaultDryRunFuel
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.DryRunWorkers <= 0 {
		cfg.DryRunWorkers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if cfg.DryRunQueue <= 0 {
		cfg.DryRunQueue = 64
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 1000
	}
	if err := wasm.CheckEngine(cfg.Engine); err != nil {
		return nil, fmt.Errorf("cu: %w", err)
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.DataDir, "wazero")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Address == "" && cfg.Signer != nil {
		if a, ok := cfg.Signer.(interface{ Address() string }); ok {
			cfg.Address = a.Address()
		} else {
			cfg.Address = ans104.Address(cfg.Signer.Owner())
		}
	}
	if cfg.CheckpointOwners == nil && cfg.Address != "" {
		cfg.CheckpointOwners = []string{cfg.Address}
	}
	if cfg.DryRunMaxAge <= 0 {
		cfg.DryRunMaxAge = 100 * time.Millisecond
	}
	if cfg.DryRunCacheTTL == 0 {
		cfg.DryRunCacheTTL = time.Minute
	}
	if cfg.DryRunRateWindow <= 0 {
		cfg.DryRunRateWindow = time.Minute
	}
	if cfg.Prices.On() && cfg.Ledger == "" {
		return nil, errors.New("cu: prices need a ledger process to fund balances (Config.Ledger, --ledger PID)")
	}
	if cfg.Prices.Message < 0 || cfg.Prices.Gigafuel < 0 || cfg.Prices.Verification < 0 || cfg.Prices.DryRun < 0 {
		return nil, errors.New("cu: prices cannot be negative")
	}
	if cfg.Ledger != "" && !isID(cfg.Ledger) {
		return nil, fmt.Errorf("cu: ledger %q is not a process id (43 base64url characters)", cfg.Ledger)
	}
	if cfg.LedgerInterval <= 0 {
		cfg.LedgerInterval = 2 * time.Second
	}
	if cfg.PriceTTL <= 0 {
		cfg.PriceTTL = 24 * time.Hour
	}
	if cfg.PublishAttestations && cfg.NoAttestations {
		return nil, errors.New("cu: attestations cannot be published when they are off")
	}
	if (cfg.PublishAttestations || cfg.PublishPrices || cfg.Prices.On()) && cfg.Signer == nil {
		return nil, errors.New("cu: attestations, prices and payments need the CU wallet (Config.Signer)")
	}
	st, err := openStore(ctx, cfg.DataDir, cfg.Database)
	if err != nil {
		return nil, err
	}
	var id [16]byte
	rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	h := hex.EncodeToString(id[:])
	s := &Server{
		cfg: cfg, sched: cfg.Scheduler, gw: cfg.Gateway, signer: cfg.Signer, store: st, log: cfg.Logger,
		unitID:  h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:],
		workers: newPool(cfg.Workers, 0), dryPool: newPool(cfg.DryRunWorkers, cfg.DryRunQueue),
		stateCopies: newPool(2, 8), metrics: newMetrics(),
		procs: map[string]*proc{}, modules: map[string]*modEntry{},
		dry: dryCache{ttl: cfg.DryRunCacheTTL}, limiter: &ipLimiter{n: cfg.DryRunRateLimit, win: cfg.DryRunRateWindow},
		mkt:     market{stored: map[string]int64{}, pending: map[string]int64{}},
		attestQ: make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.refreshStop, s.refreshDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.refreshDone)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.refreshStop:
				return
			case <-t.C:
				s.refreshSizes()
			}
		}
	}()
	if cfg.Ledger != "" {
		s.bg.Add(1)
		go s.watchLedger(cfg.LedgerInterval)
	}
	if cfg.PublishAttestations {
		s.bg.Add(1)
		go s.publishAttestations()
	}
	if cfg.PublishPrices {
		if err := s.publishPrices(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Address is the CU wallet address.
func (s *Server) Address() string { return s.cfg.Address }

// Close checkpoints live processes, waits for uploads and closes the store.
func (s *Server) Close() error {
	ctx := context.Background()
	s.stopOnce.Do(func() { close(s.refreshStop) })
	<-s.refreshDone
	s.mu.Lock()
	procs := make([]*proc, 0, len(s.procs))
	for _, p := range s.procs {
		procs = append(procs, p)
	}
	s.mu.Unlock()
	for _, p := range procs {
		p.mu.Lock()
		if p.inst != nil {
			if p.dirty > 0 && s.cfg.CheckpointEvery > 0 {
				s.checkpoint(ctx, p)
			}
			p.inst.Close(ctx)
			p.inst = nil
		}
		p.mu.Unlock()
	}
	s.bg.Wait()
	s.cancel()
	s.mu.Lock()
	for _, e := range s.modules {
		if e.mod != nil {
			e.mod.Close(ctx)
		}
	}
	s.mu.Unlock()
	return s.store.Close()
}

// ---- core ----

// Result evaluates pid up to message msgID and returns its /result JSON.
// msgID is a message id or the id of the assignment that scheduled it (the
// MU asks by assignment id after an Assign, as the reference MU does).
//
// Each message is evaluated once: concurrent requests for one message queue
// on the process lock and the losers find the winner's stored result; a past
// message whose result is stored is never recomputed.
func (s *Server) Result(ctx context.Context, pid, msgID string) ([]byte, error) {
	if b, ok, err := s.store.resultByMessage(ctx, pid, msgID); err != nil || ok {
		return b, err
	}
	p, err := s.process(ctx, pid)
	if err != nil {
		return nil, err
	}
	tgt := target{ts: p.info.timestamp, nonce: 0}
	if msgID != pid {
		m, err := s.sched.Message(ctx, pid, msgID)
		if errors.Is(err, ErrNotFound) {
			return nil, httpErr(http.StatusNotFound, "Message %s not found for process %s", msgID, pid)
		}
		if err != nil {
			return nil, err
		}
		ts, ok := tagValue(m.Assignment.Tags, "Timestamp")
		if pr, _ := tagValue(m.Assignment.Tags, "Process"); !ok || pr != pid {
			return nil, httpErr(http.StatusNotFound, "Message %s is not scheduled for process %s", msgID, pid)
		}
		tgt.ts, _ = jsParseInt(ts)
		tgt.nonce = -1
		if n, ok := tagValue(m.Assignment.Tags, "Nonce"); ok {
			if v, ok := jsParseInt(n); ok {
				tgt.nonce = v
			}
		}
	}
	// stored finds the result by the slot the SU named, so an assignment id
	// finds the result of the message it assigned; by message id too, for a
	// message assigned twice (evaluated at its first slot only).
	stored := func() ([]byte, bool, error) {
		if tgt.nonce >= 0 {
			if b, ok, err := s.store.resultAt(ctx, pid, tgt.ts, tgt.nonce); err != nil || ok {
				return b, ok, err
			}
		}
		return s.store.resultByMessage(ctx, pid, msgID)
	}
	if tgt.nonce >= 0 { // (by message id it was looked up above)
		if b, ok, err := s.store.resultAt(ctx, pid, tgt.ts, tgt.nonce); err != nil || ok {
			return b, err
		}
	}
	opts := evalOptions{to: strconv.FormatInt(tgt.ts, 10), tgt: tgt}
	p.mu.Lock()
	// Re-checked under the lock: a request that queued behind the one that
	// evaluated the message finds its result here.
	if b, ok, err := stored(); err != nil || ok {
		p.mu.Unlock()
		return b, err
	}
	if live, ok := s.livePos(ctx, p); ok && !tgt.admits(live) {
		// The live state is past the message but has no result for it (it
		// was restored from a published checkpoint): evaluate the past on
		// the side, which stores the result.
		p.mu.Unlock()
		s.metrics.pastReplays.Add(1)
		tp, err := s.evaluatePast(ctx, p, opts)
		if err != nil {
			return nil, err
		}
		tp.inst.Close(context.WithoutCancel(ctx))
	} else {
		err := s.evaluate(ctx, p, opts)
		p.mu.Unlock()
		s.enforceBudget(ctx)
		if err != nil {
			return nil, chainErr(err)
		}
	}
	b, ok, err := stored()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, httpErr(http.StatusNotFound, "No result for message %s of process %s", msgID, pid)
	}
	return b, nil
}

// livePos is where p's live state stands: its instance, else its file
// checkpoint (p.mu held). ok is false when p has neither.
func (s *Server) livePos(ctx context.Context, p *proc) (position, bool) {
	if p.inst != nil {
		return p.pos, true
	}
	if st, ok := s.localCheckpoint(ctx, p.info.pid); ok {
		return st.Pos, true
	}
	return position{}, false
}

// evaluatePast evaluates p up to opts on a throwaway instance started from
// a checkpoint before it (or cold), leaving the live instance and the file
// checkpoint alone. Results are stored (evaluation is deterministic). The
// caller closes the returned proc's instance.
func (s *Server) evaluatePast(ctx context.Context, p *proc, opts evalOptions) (*proc, error) {
	tp := &proc{info: p.info, pos: startPosition(), side: true}
	if err := s.evaluate(ctx, tp, opts); err != nil {
		if tp.inst != nil {
			tp.inst.Close(context.WithoutCancel(ctx))
		}
		return nil, chainErr(err)
	}
	return tp, nil
}

func chainErr(err error) error {
	if errors.Is(err, ErrChain) {
		return &HTTPError{Code: http.StatusUnprocessableEntity, Msg: err.Error()}
	}
	return err
}

// run evaluates under p's lock, then keeps the memory budget.
func (s *Server) run(ctx context.Context, p *proc, opts evalOptions) error {
	p.mu.Lock()
	err := s.evaluate(ctx, p, opts)
	p.mu.Unlock()
	s.enforceBudget(ctx)
	return chainErr(err)
}

// Page is the /results and /cron connection.
type Page struct {
	PageInfo struct {
		HasNextPage bool `json:"hasNextPage"`
	} `json:"pageInfo"`
	Edges []Edge `json:"edges"`
}

// Edge is one evaluation of a Page.
type Edge struct {
	Node   json.RawMessage `json:"node"`
	Cursor string          `json:"cursor"`
}

// ResultsQuery are the parameters of /results and /cron.
type ResultsQuery struct {
	From, To string // cursor or bare timestamp; "" for none
	Sort     string // ASC or DESC
	Limit    int
}

// Results lists stored evaluations (no evaluation first, as the reference).
// A process its scheduler does not know is 404, as on /result and /state.
func (s *Server) Results(ctx context.Context, pid string, q ResultsQuery) (*Page, error) {
	pg, err := s.page(ctx, pid, q, false)
	if err != nil || len(pg.Edges) > 0 {
		return pg, err
	}
	s.mu.Lock()
	_, known := s.procs[pid]
	s.mu.Unlock()
	if !known {
		if _, err := s.sched.Process(ctx, pid); errors.Is(err, ErrNotFound) {
			return nil, httpErr(http.StatusNotFound, "Process %s was not found on its scheduler", pid)
		} else if err != nil {
			return nil, err
		}
	}
	return pg, nil
}

// Cron evaluates pid up to q.To (or the SU's clock) and lists cron results.
func (s *Server) Cron(ctx context.Context, pid string, q ResultsQuery) (*Page, error) {
	p, err := s.process(ctx, pid)
	if err != nil {
		return nil, err
	}
	opts := evalOptions{cronToNow: true}
	if q.To != "" {
		c, err := ParseCursor(q.To)
		if err != nil {
			return nil, httpErr(http.StatusBadRequest, "%v", err)
		}
		opts = evalOptions{to: strconv.FormatInt(c.Timestamp, 10)}
	}
	if err := s.run(ctx, p, opts); err != nil {
		return nil, err
	}
	q.Sort = "ASC"
	return s.page(ctx, pid, q, true)
}

func (s *Server) page(ctx context.Context, pid string, q ResultsQuery, cronOnly bool) (*Page, error) {
	rq := rangeQuery{Process: pid, Limit: q.Limit, Desc: q.Sort == "DESC", CronOnly: cronOnly}
	var from, to *Cursor
	for _, c := range []struct {
		v   string
		dst **Cursor
	}{{q.From, &from}, {q.To, &to}} {
		if c.v == "" {
			continue
		}
		cur, err := ParseCursor(c.v)
		if err != nil {
			return nil, httpErr(http.StatusBadRequest, "%v", err)
		}
		*c.dst = &cur
	}
	// from is exclusive and to inclusive; in descending order from is the
	// upper bound, so that passing the last cursor as from continues the
	// listing in either direction.
	if rq.Desc {
		rq.Hi, rq.Lo, rq.LoIncl = from, to, true
	} else {
		rq.Lo, rq.Hi, rq.HiIncl = from, to, true
	}
	rows, more, err := s.store.evals(ctx, rq)
	if err != nil {
		return nil, err
	}
	sortName := "ASC"
	if rq.Desc {
		sortName = "DESC"
	}
	pg := &Page{Edges: []Edge{}}
	pg.PageInfo.HasNextPage = more
	for _, r := range rows {
		var res map[string]json.RawMessage
		json.Unmarshal(r.Result, &res)
		node := obj{}
		for _, k := range []string{"Messages", "Assignments", "Spawns", "Output", "Error"} {
			if v, ok := res[k]; ok {
				node = append(node, kv{k, v})
			}
		}
		b, _ := jsonText(node)
		pg.Edges = append(pg.Edges, Edge{Node: b, Cursor: EncodeCursor(r.Timestamp, r.Ordinate, r.Cron, sortName)})
	}
	return pg, nil
}

// DryRunOptions are a dry-run's parameters besides the message.
type DryRunOptions struct {
	// To is a message id: the dry-run sees the state after it ("" for the
	// latest).
	To string
	// MaxAge is how old the process memory (and a cached result) may be:
	// the x-max-age header. Negative: Config.DryRunMaxAge for the memory
	// and Config.DryRunCacheTTL for cached results.
	MaxAge time.Duration
}

// dryRunCached returns a cached dry-run result.
func (s *Server) dryRunCached(pid string, body []byte, o DryRunOptions) ([]byte, bool) {
	maxAge := o.MaxAge
	if maxAge < 0 {
		maxAge = s.cfg.DryRunMaxAge
	}
	b, ok := s.dry.get(dryRunKey(pid, o.To, body), maxAge, s.generation(pid))
	if ok {
		s.metrics.dryRunHits.Add(1)
	}
	return b, ok
}

// generation is how many times pid's live memory has changed (0 for a
// process not loaded).
func (s *Server) generation(pid string) int64 {
	s.mu.Lock()
	p := s.procs[pid]
	s.mu.Unlock()
	if p == nil {
		return 0
	}
	return p.gen.Load()
}

// DryRun evaluates body against the process's state without saving
// anything: the memory is copied into a throwaway instance (units.md §5.9).
func (s *Server) DryRun(ctx context.Context, pid string, body []byte, o DryRunOptions) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, httpErr(http.StatusBadRequest, "The dry-run body must be a JSON object (a message)")
	}
	if b, ok := s.dryRunCached(pid, body, o); ok {
		return b, nil
	}
	p, err := s.process(ctx, pid)
	if err != nil {
		return nil, err
	}
	memAge := o.MaxAge
	if memAge < 0 {
		memAge = s.cfg.DryRunMaxAge
	}
	var (
		inst      *wasm.Instance
		ts, hgt   int64
		memoryAge = time.Now()
		cfg       = p.dryRunConfig(s)
		gen       = int64(-1) // a dry-run of the past never goes stale
	)
	if o.To == "" {
		p.mu.Lock()
		// The live memory serves as is while it was brought up to date
		// within memAge; else the SU is asked for newer messages first.
		if p.inst == nil || p.syncedAt.IsZero() || time.Since(p.syncedAt) > memAge {
			if err := s.evaluate(ctx, p, evalOptions{}); err != nil {
				p.mu.Unlock()
				return nil, chainErr(err)
			}
		}
		inst, err = p.info.module.Fork(ctx, cfg, p.inst)
		ts, hgt, memoryAge, gen = p.pos.Timestamp, p.pos.Height, p.syncedAt, p.gen.Load()
		p.mu.Unlock()
		s.enforceBudget(ctx)
	} else {
		m, merr := s.sched.Message(ctx, pid, o.To)
		if merr != nil {
			return nil, httpErr(http.StatusNotFound, "Message %s not found for process %s", o.To, pid)
		}
		to, _ := tagValue(m.Assignment.Tags, "Timestamp")
		toMS, ok := jsParseInt(to)
		if !ok {
			return nil, fmt.Errorf("cu: message %s has no Timestamp", o.To)
		}
		mem, pos, serr := s.stateAt(ctx, p, toMS)
		if serr != nil {
			return nil, serr
		}
		ts, hgt = pos.Timestamp, pos.Height
		inst, err = p.info.module.RestoreOwned(ctx, cfg, mem) // stateAt's memory is a copy of its own
	}
	if err != nil {
		return nil, fmt.Errorf("cu: dry-run instance: %w", err)
	}
	defer inst.Close(context.WithoutCancel(ctx))
	doc, err := dryRunDoc(fields, pid, ts, hgt)
	if err != nil {
		return nil, httpErr(http.StatusBadRequest, "%v", err)
	}
	dp := &proc{info: p.info, inst: inst, side: true, dry: true}
	res, err := s.handle(ctx, dp, doc)
	if err != nil {
		return nil, err
	}
	s.metrics.dryRuns.Add(1)
	s.dry.put(dryRunKey(pid, o.To, body), res.json, memoryAge, gen)
	return res.json, nil
}

// stateAt returns the memory of p after its last message with timestamp <=
// to (scheduled messages, and the crons up to to that the SU's clock has
// passed) and the position it is at. The live instance is advanced when it
// is not past to; otherwise the past is evaluated on the side.
func (s *Server) stateAt(ctx context.Context, p *proc, to int64) ([]byte, position, error) {
	tgt := target{ts: to, nonce: -1}
	opts := evalOptions{to: strconv.FormatInt(to, 10), cronUpto: to, tgt: tgt}
	var (
		mem []byte
		pos position
		err error
	)
	p.mu.Lock()
	if live, ok := s.livePos(ctx, p); !ok || tgt.admits(live) {
		err = s.evaluate(ctx, p, opts)
		if err == nil {
			mem, err = p.inst.Snapshot()
			pos = p.pos
		}
		p.mu.Unlock()
		s.enforceBudget(ctx)
		err = chainErr(err)
	} else {
		p.mu.Unlock()
		var tp *proc
		if tp, err = s.evaluatePast(ctx, p, opts); err == nil {
			mem, err = tp.inst.Snapshot()
			pos = tp.pos
			tp.inst.Close(context.WithoutCancel(ctx))
		}
	}
	if err != nil {
		return nil, position{}, err
	}
	if pos.Nonce < 0 {
		return nil, position{}, httpErr(http.StatusNotFound, "Process %s has no message at or before %d", p.info.pid, to)
	}
	return mem, pos, nil
}

func (p *proc) mem0Config(s *Server) wasm.Config {
	return wasm.Config{ComputeLimit: uint64(p.info.computeLimit), Arweave: p.info.drive,
		Revert:    func(r *wasm.Result) bool { return outputIsOOM(r.Output) },
		FuelLimit: uint64(max(s.cfg.MessageFuel, 0))}
}

// dryRunConfig is mem0Config with the dry-run fuel limit.
func (p *proc) dryRunConfig(s *Server) wasm.Config {
	c := p.mem0Config(s)
	c.FuelLimit = uint64(max(s.cfg.DryRunFuel, 0))
	return c
}

// StateInfo describes the memory returned by State.
type StateInfo struct {
	Timestamp, Ordinate, BlockHeight int64
}

// State evaluates pid to the latest message and returns its memory.
func (s *Server) State(ctx context.Context, pid string) ([]byte, StateInfo, error) {
	p, err := s.process(ctx, pid)
	if err != nil {
		return nil, StateInfo{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := s.evaluate(ctx, p, evalOptions{}); err != nil {
		return nil, StateInfo{}, err
	}
	mem, err := p.inst.Snapshot()
	if err != nil {
		return nil, StateInfo{}, err
	}
	return mem, StateInfo{Timestamp: p.pos.Timestamp, Ordinate: p.pos.Ordinate, BlockHeight: p.pos.Height}, nil
}

// StateAt returns pid's memory after its last message with timestamp <= to
// (ms), without moving the live instance backwards.
func (s *Server) StateAt(ctx context.Context, pid string, to int64) ([]byte, StateInfo, error) {
	p, err := s.process(ctx, pid)
	if err != nil {
		return nil, StateInfo{}, err
	}
	mem, pos, err := s.stateAt(ctx, p, to)
	if err != nil {
		return nil, StateInfo{}, err
	}
	return mem, StateInfo{Timestamp: pos.Timestamp, Ordinate: pos.Ordinate, BlockHeight: pos.Height}, nil
}

// ---- HTTP ----

// Handler returns the reference CU's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, obj{{"address", s.cfg.Address}, {"timestamp", time.Now().UnixMilli()},
			{"pricing", s.pricing()}, {"prices", s.priceInfo()}, {"attestations", !s.cfg.NoAttestations}})
	})
	mux.HandleFunc("GET /attestation/{message}", func(w http.ResponseWriter, r *http.Request) {
		pid := r.URL.Query().Get("process-id")
		if pid == "" {
			writeError(w, http.StatusBadRequest, "process-id query parameter is required")
			return
		}
		item, view, err := s.Attest(r.Context(), pid, r.PathValue("message"))
		if err != nil {
			s.fail(w, err)
			return
		}
		w.Header().Set("ao-attestation", view.ID)
		if wantsJSON(r) {
			writeJSON(w, http.StatusOK, view)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(item)
	})
	mux.HandleFunc("POST /verify", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxVerifyBody))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("The verification request is larger than %d bytes", maxVerifyBody))
			return
		}
		item, v, err := s.Verify(r.Context(), body)
		if err != nil {
			s.fail(w, err)
			return
		}
		w.Header().Set("ao-verdict", v.ID)
		if wantsJSON(r) {
			writeJSON(w, http.StatusOK, v)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(item)
	})
	mux.HandleFunc("GET /quote", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		pid := q.Get("process-id")
		kind := q.Get("kind")
		if pid == "" && kind != "verify" {
			writeError(w, http.StatusBadRequest, "process-id query parameter is required (kind=result or dry-run)")
			return
		}
		if pid != "" && !isID(pid) {
			writeError(w, http.StatusBadRequest, "process-id is not a process id")
			return
		}
		qt, err := s.Quote(r.Context(), kind, pid, q.Get("message"), q.Get("payer"))
		s.replyJSON(w, qt, err)
	})
	mux.HandleFunc("GET /usage/{process}", func(w http.ResponseWriter, r *http.Request) {
		u, err := s.store.usage(r.Context(), r.PathValue("process"))
		s.replyJSON(w, obj{{"process", r.PathValue("process")}, {"usage", u}}, err)
	})
	mux.HandleFunc("GET /balance/{address}", func(w http.ResponseWriter, r *http.Request) {
		addr := r.PathValue("address")
		if !isID(addr) {
			writeError(w, http.StatusBadRequest, "The address must be a wallet address (43 base64url characters)")
			return
		}
		if r.URL.Query().Get("sync") != "" {
			if err := s.syncLedger(r.Context()); err != nil {
				s.fail(w, err)
				return
			}
		}
		b, err := s.Balance(r.Context(), addr)
		s.replyJSON(w, obj{{"address", addr}, {"balance", strconv.FormatInt(b, 10)}, {"token", s.cfg.Ledger}}, err)
	})
	mux.HandleFunc("GET /result/{message}", func(w http.ResponseWriter, r *http.Request) {
		pid := r.URL.Query().Get("process-id")
		if pid == "" {
			writeError(w, http.StatusBadRequest, "process-id query parameter is required")
			return
		}
		b, err := s.Result(r.Context(), pid, r.PathValue("message"))
		if err == nil {
			if id := s.attestationID(r.Context(), pid, r.PathValue("message")); id != "" {
				w.Header().Set("ao-attestation", id)
			}
		}
		s.reply(w, b, err)
	})
	mux.HandleFunc("GET /results/{process}", func(w http.ResponseWriter, r *http.Request) {
		q, err := parseResultsQuery(r, 25, 0)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		pg, err := s.Results(r.Context(), r.PathValue("process"), q)
		s.replyJSON(w, pg, err)
	})
	mux.HandleFunc("GET /cron/{process}", func(w http.ResponseWriter, r *http.Request) {
		q, err := parseResultsQuery(r, 500, 1000)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		pg, err := s.Cron(r.Context(), r.PathValue("process"), q)
		s.replyJSON(w, pg, err)
	})
	mux.HandleFunc("POST /dry-run", func(w http.ResponseWriter, r *http.Request) {
		pid := r.URL.Query().Get("process-id")
		if pid == "" {
			writeError(w, http.StatusBadRequest, "process-id query parameter is required")
			return
		}
		o := DryRunOptions{To: r.URL.Query().Get("to"), MaxAge: -1}
		if v := r.Header.Get("X-Max-Age"); v != "" {
			ms, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || ms < 0 {
				writeError(w, http.StatusBadRequest, "x-max-age must be a number of milliseconds")
				return
			}
			o.MaxAge = time.Duration(min(ms, int64(time.Duration(1<<62)/time.Millisecond))) * time.Millisecond
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 10<<20))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		if b, ok := s.dryRunCached(pid, body, o); ok {
			s.reply(w, b, nil) // a cached answer costs nothing
			return
		}
		if !s.limiter.allow(r) {
			s.metrics.dryRunLimited.Add(1)
			writeError(w, http.StatusTooManyRequests, "Rate limit exceeded")
			return
		}
		pay, err := s.dryRunPayer(r.Context(), pid)
		if err != nil {
			s.fail(w, err)
			return
		}
		b, err := s.DryRun(r.Context(), pid, body, o)
		if perr := pay(r.Context(), err == nil); err == nil {
			err = perr
		}
		s.reply(w, b, err)
	})
	mux.HandleFunc("GET /state/{process}", func(w http.ResponseWriter, r *http.Request) {
		// Each answer is a copy of a whole process memory (up to the
		// memory limit): a few at a time, a bounded line, then 503.
		if err := s.stateCopies.acquire(r.Context()); err != nil {
			if errors.Is(err, errPoolFull) {
				w.Header().Set("Retry-After", "5")
				writeError(w, http.StatusServiceUnavailable, "Too many state downloads at once; retry in a few seconds")
				return
			}
			s.fail(w, err)
			return
		}
		defer s.stateCopies.release()
		var (
			mem  []byte
			info StateInfo
			err  error
		)
		if to := r.URL.Query().Get("to"); to != "" {
			ms, perr := strconv.ParseInt(to, 10, 64)
			if perr != nil || ms < 0 {
				writeError(w, http.StatusBadRequest, "to must be a timestamp in milliseconds")
				return
			}
			mem, info, err = s.StateAt(r.Context(), r.PathValue("process"), ms)
		} else {
			mem, info, err = s.State(r.Context(), r.PathValue("process"))
		}
		if err != nil {
			s.reply(w, nil, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Last-Timestamp", strconv.FormatInt(info.Timestamp, 10))
		h.Set("Last-Ordinate", strconv.FormatInt(info.Ordinate, 10))
		h.Set("Last-Block-Height", strconv.FormatInt(info.BlockHeight, 10))
		w.Write(mem)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.writeMetrics(w)
		s.writeClusterMetrics(w)
	})
	s.clusterRoutes(mux)
	return httpx.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "*")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		s.metrics.requests.Add(1)
		mux.ServeHTTP(w, r)
	}))
}

// parseResultsQuery reads from, to, sort and limit.
func parseResultsQuery(r *http.Request, def, max int) (ResultsQuery, error) {
	v := r.URL.Query()
	q := ResultsQuery{From: v.Get("from"), To: v.Get("to"), Sort: strings.ToUpper(v.Get("sort")), Limit: def}
	if q.Sort == "" {
		q.Sort = "ASC"
	}
	if q.Sort != "ASC" && q.Sort != "DESC" {
		return q, fmt.Errorf("sort must be ASC or DESC")
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return q, fmt.Errorf("invalid limit %q", l)
		}
		q.Limit = n
	}
	if max > 0 && q.Limit > max {
		q.Limit = max
	}
	if q.Limit > 10000 {
		q.Limit = 10000
	}
	for _, c := range []string{q.From, q.To} {
		if c != "" {
			if _, err := ParseCursor(c); err != nil {
				return q, err
			}
		}
	}
	return q, nil
}

func (s *Server) reply(w http.ResponseWriter, b []byte, err error) {
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (s *Server) replyJSON(w http.ResponseWriter, v any, err error) {
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	var he *HTTPError
	var pe *PaymentError
	switch {
	case errors.As(err, &pe):
		writePaymentError(w, pe)
	case errors.As(err, &he):
		writeError(w, he.Code, he.Msg)
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "request canceled")
	case errors.As(err, new(*UpstreamError)):
		s.log.Warn("request failed upstream", "err", err)
		writeError(w, http.StatusBadGateway, err.Error())
	default:
		s.log.Error("request failed", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := jsonText(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode the response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
