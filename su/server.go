package su

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/internal/httpx"
)

// Config configures a Server.
type Config struct {
	// Signer is the SU wallet (a *wallet.Wallet works): Arweave RSA as the
	// reference requires, or Ed25519.
	Signer ans104.Signer
	// Store is the storage; when nil it is opened from Database and DataDir
	// (see OpenStore) and closed by Close.
	Store    Store
	Database string
	DataDir  string
	// Chain is the permanent store; nil means none (Block-Height 0, and the
	// outbox keeps everything until the SU runs with one).
	Chain Chain
	// URL is this SU's public URL, published in a Scheduler-Location record at
	// start ("" publishes none). LocationTTL is its Time-To-Live (default 1 h).
	URL         string
	LocationTTL time.Duration
	// Legacy turns AOP-6 off: processes get no assignment, messages start at nonce 0.
	Legacy bool
	Logger *slog.Logger
	// HeightInterval is how often the block height is refreshed (default 5 s).
	HeightInterval time.Duration
	// MaxBodyBytes bounds POST bodies (default 10 MiB, as the reference).
	MaxBodyBytes int64
	// Now is the clock of assignment timestamps in Unix milliseconds
	// (tests); default the wall clock.
	Now func() int64
}

// maxConcurrentPages bounds the schedule pages built at once (each holds up
// to maxPageBytes of items, and its JSON more); more wait up to 30 s, then
// get 503.
var maxConcurrentPages = max(4, 2*runtime.GOMAXPROCS(0))

// Server is a running SU: scheduler, publisher and HTTP handler.
type Server struct {
	cfg       Config
	sched     *Scheduler
	store     Store
	ownsStore bool
	reader    Reader
	metrics   *Metrics
	pub       *publisher
	height    atomic.Int64
	address   string
	log       *slog.Logger
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	handler   http.Handler
	bodies    *httpx.Limiter // bytes of large bodies held at once
	pages     *httpx.Limiter // schedule pages being built at once, one unit each
}

// New starts an SU. The caller serves Handler() and calls Close.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Signer == nil {
		return nil, errors.New("su: no wallet")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HeightInterval <= 0 {
		cfg.HeightInterval = 5 * time.Second
	}
	if cfg.LocationTTL <= 0 {
		cfg.LocationTTL = time.Hour
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 10 << 20
	}
	s := &Server{cfg: cfg, store: cfg.Store, metrics: NewMetrics(), address: ans104.Address(cfg.Signer.Owner()), log: cfg.Logger}
	if s.store == nil {
		st, err := OpenStore(ctx, cfg.Database, cfg.DataDir)
		if err != nil {
			return nil, err
		}
		s.store, s.ownsStore = st, true
	}
	s.reader = Reader{Store: s.store}
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel

	// Block height: the permanent store's, else the last one we used.
	if v, err := s.store.Meta(ctx, "height"); err == nil {
		if h, err := strconv.ParseInt(v, 10, 64); err == nil {
			s.height.Store(h)
		}
	}
	if cfg.Chain != nil {
		hctx, hcancel := context.WithTimeout(ctx, 3*time.Second)
		s.refreshHeight(hctx)
		hcancel()
		s.wg.Go(func() {
			t := time.NewTicker(cfg.HeightInterval)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					c, cl := context.WithTimeout(bg, 10*time.Second)
					s.refreshHeight(c)
					cl()
				case <-bg.Done():
					return
				}
			}
		})
	}

	var onCommit func()
	if cfg.Chain != nil {
		s.pub = newPublisher(s.store, cfg.Chain, s.log, s.metrics)
		onCommit = s.pub.poke
	}
	scfg := SchedulerConfig{
		Signer: cfg.Signer, Store: s.store, Legacy: cfg.Legacy, Logger: s.log, Metrics: s.metrics,
		Height: s.height.Load, OnCommit: onCommit, Now: cfg.Now,
	}
	if tc, ok := cfg.Chain.(TxChecker); ok {
		scfg.Exists, scfg.BaseLayerStatus = tc.Exists, tc.Status
	}
	sched, err := NewScheduler(scfg)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.sched = sched
	s.metrics.gauges = func() map[string]float64 { return map[string]float64{"su_processes_active": float64(sched.Active())} }

	if cfg.URL != "" && cfg.Chain != nil {
		if err := s.publishLocation(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	if s.pub != nil {
		s.wg.Go(func() { s.pub.run(bg) })
	}
	s.bodies = httpx.NewLimiter(4*cfg.MaxBodyBytes, 30*time.Second)
	s.pages = httpx.NewLimiter(int64(maxConcurrentPages), 30*time.Second)
	s.handler = httpx.Wrap(s.routes())
	return s, nil
}

func (s *Server) refreshHeight(ctx context.Context) {
	h, err := s.cfg.Chain.Height(ctx)
	if err != nil {
		s.log.Warn("block height not refreshed", "err", err)
		return
	}
	if old := s.height.Swap(h); old != h {
		s.metrics.height.Store(h)
		if err := s.store.SetMeta(ctx, "height", strconv.FormatInt(h, 10)); err != nil {
			s.log.Warn("block height not saved", "err", err)
		}
	}
}

// LocationTags are the tags of the Scheduler-Location record (units.md §8.1).
func LocationTags(url string, ttl time.Duration) []ans104.Tag {
	return []ans104.Tag{
		{Name: "Data-Protocol", Value: "ao"},
		{Name: "Variant", Value: "ao.TN.1"},
		{Name: "Type", Value: "Scheduler-Location"},
		{Name: "Url", Value: url},
		{Name: "Time-To-Live", Value: strconv.FormatInt(ttl.Milliseconds(), 10)},
		{Name: "Content-Type", Value: "text/plain"},
	}
}

// publishLocation signs a Scheduler-Location record and puts it in the outbox.
func (s *Server) publishLocation(ctx context.Context) error {
	item, err := ans104.Sign(s.cfg.Signer, []byte("1984"), ans104.Options{Anchor: randomAnchor(), Tags: LocationTags(s.cfg.URL, s.cfg.LocationTTL)})
	if err != nil {
		return fmt.Errorf("su: sign Scheduler-Location: %w", err)
	}
	if err := s.store.Commit(ctx, &Batch{Outbox: []OutboxItem{{ItemID: item.ID(), Item: item.Bytes()}}}); err != nil {
		return fmt.Errorf("su: store Scheduler-Location: %w", err)
	}
	s.log.Info("Scheduler-Location queued for publishing", "id", item.ID(), "url", s.cfg.URL)
	return nil
}

// Scheduler returns the core scheduler (for embedding without HTTP).
func (s *Server) Scheduler() *Scheduler { return s.sched }

// Store returns the storage.
func (s *Server) Store() Store { return s.store }

// Address is the SU wallet's address, which processes name in their Scheduler tag.
func (s *Server) Address() string { return s.address }

// Handler is the SU's HTTP API.
func (s *Server) Handler() http.Handler { return s.handler }

// Flush waits until the outbox has been published (or ctx ends).
func (s *Server) Flush(ctx context.Context) error {
	if s.pub == nil {
		return errors.New("su: no permanent store configured")
	}
	for {
		ch := s.pub.idleCh()
		s.pub.poke()
		select {
		case <-ch:
			items, err := s.store.PendingOutbox(ctx, 1)
			if err != nil {
				return err
			}
			if len(items) == 0 {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops the SU (in-flight requests fail) and closes a store it opened.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.sched != nil {
			s.sched.Close()
		}
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		if s.ownsStore {
			err = s.store.Close()
		}
	})
	return err
}

// ---- HTTP ----

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) routes() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
				h.Set("Access-Control-Allow-Headers", req)
			} else {
				h.Set("Access-Control-Allow-Headers", "*")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		sw := &statusWriter{ResponseWriter: w, code: 200}
		route := s.dispatch(sw, r)
		s.metrics.observeRequest(route, sw.code)
	})
}

// healthz answers a load balancer: 200 while the SU's store answers a read,
// 503 when it does not (GET /health, the reference's, answers 200 always).
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.store.Meta(ctx, "healthz"); err != nil && !errors.Is(err, ErrNotFound) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// dispatch routes a request (the reference's routes, in its order) and returns
// the route name for metrics.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) string {
	path := r.URL.Path
	segs := strings.Split(strings.Trim(path, "/"), "/")
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case path == "/" && get:
		s.info(w)
		return "info"
	case path == "/" && r.Method == http.MethodPost:
		s.write(w, r)
		return "write"
	case path == "/timestamp" && get:
		writeJSON(w, http.StatusOK, map[string]string{"timestamp": strconv.FormatInt(time.Now().UnixMilli(), 10), "block_height": PadHeight(s.height.Load())})
		return "timestamp"
	case path == "/health" && get:
		w.WriteHeader(http.StatusOK)
		return "health"
	case path == "/healthz" && get:
		s.healthz(w, r)
		return "healthz"
	case path == "/metrics" && get:
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.metrics.WriteTo(w)
		return "metrics"
	case len(segs) == 2 && segs[0] == "processes" && segs[1] != "" && get:
		s.process(w, r, segs[1])
		return "process"
	case len(segs) == 2 && segs[1] == "latest" && segs[0] != "" && get:
		s.latest(w, r, segs[0])
		return "latest"
	case len(segs) == 1 && segs[0] != "" && get:
		s.read(w, r, segs[0])
		return "read"
	case len(segs) == 1 || (len(segs) == 2 && (segs[0] == "processes" || segs[1] == "latest")):
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
		return "other"
	}
	writeError(w, http.StatusNotFound, "Not found")
	return "other"
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := marshalJSON(v)
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

// fail maps an error to a status: refused input 400 (as the reference answers
// everything), storage trouble 503 (retry), anything else 500.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var ie *InputError
	switch {
	case errors.As(err, &ie):
		writeError(w, http.StatusBadRequest, ie.Msg)
	case errors.Is(err, ErrRetry), errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("request not completed", "err", err)
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.log.Error("request failed", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) info(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, struct {
		Address   string `json:"address"`
		Timestamp string `json:"timestamp"`
	}{s.address, strconv.FormatInt(time.Now().UnixMilli(), 10)})
}

func (s *Server) write(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pid, assign := q.Get("process-id"), q.Get("assign")
	hasPid, hasAssign := q.Has("process-id"), q.Has("assign")
	if hasPid != hasAssign {
		writeError(w, http.StatusBadRequest, "If sending assign or process-id, you must send both.")
		return
	}
	body, release, err := httpx.ReadBody(w, r, s.bodies, s.cfg.MaxBodyBytes)
	defer release()
	if err != nil {
		switch code := httpx.Status(err); code {
		case http.StatusRequestEntityTooLarge:
			writeError(w, code, fmt.Sprintf("Payload larger than %d bytes", s.cfg.MaxBodyBytes))
		case http.StatusBadRequest:
			writeError(w, code, "Cannot read the request body")
		default:
			writeError(w, code, err.Error())
		}
		return
	}
	var rc *Receipt
	if hasAssign {
		var exclude []string
		for _, e := range strings.Split(q.Get("exclude"), ",") {
			if e = strings.TrimSpace(e); e != "" {
				exclude = append(exclude, e)
			}
		}
		rc, err = s.sched.Assign(r.Context(), pid, assign, q.Has("base-layer"), exclude)
	} else {
		rc, err = s.sched.Submit(r.Context(), body)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Timestamp int64  `json:"timestamp"`
		ID        string `json:"id"`
	}{time.Now().UnixMilli(), rc.ID})
}

func (s *Server) read(w http.ResponseWriter, r *http.Request, id string) {
	q := r.URL.Query()
	pp, err := ParsePageParams(q)
	if err != nil {
		s.fail(w, err)
		return
	}
	ctx := r.Context()
	pid := q.Get("process-id")
	if m, ok, err := s.reader.MessageIn(ctx, pid, id, pp.ShowAnchor); err != nil {
		s.fail(w, err)
		return
	} else if ok {
		writeJSON(w, http.StatusOK, m)
		return
	}
	proc, err := s.store.Process(ctx, id)
	if errors.Is(err, ErrNotFound) {
		// A message of another process is not this process's to show. (With
		// no process-id, MessageIn looked everywhere already.)
		if pid != "" {
			if _, elsewhere, err := s.reader.Message(ctx, id, false); err == nil && elsewhere {
				writeError(w, http.StatusNotFound, fmt.Sprintf("Message %s is not in the schedule of process %s", id, pid))
				return
			}
		}
		writeError(w, http.StatusBadRequest, "Message or Process not found")
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	// A page holds up to maxPageBytes of items, and its JSON more: bound how
	// many are built at once.
	release, err := s.pages.Acquire(ctx, 1)
	if errors.Is(err, httpx.ErrBusy) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "Too many schedule reads at once; retry later")
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	defer release()
	page, err := s.reader.Page(ctx, proc, pp)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) process(w http.ResponseWriter, r *http.Request, id string) {
	p, err := s.store.Process(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusBadRequest, "Process not found")
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	j, err := ProcessToJSON(p)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) latest(w http.ResponseWriter, r *http.Request, id string) {
	m, err := s.reader.Latest(r.Context(), id)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}
