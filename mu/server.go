package mu

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/internal/httpx"
	"github.com/aonode/aonode/placement"
)

// Config configures a Server.
type Config struct {
	// Signer is the MU wallet: it signs every item the MU pushes.
	Signer ans104.Signer
	// DataDir holds the durable queue (mu.db).
	DataDir string
	// The units the MU talks to. Nil clients are made from the URLs.
	Scheduler  SchedulerClient
	Compute    ComputeClient
	Gateway    GatewayClient
	GatewayURL string
	CUURL      string
	// CUURLs and CUDiscover place each process on one of several CUs
	// (package placement: the cheapest healthy CU, spread over equal ones,
	// sticky per process, with failover). CUURLs adds to CUURL; CUDiscover
	// also finds CUs by their Compute-Price records on GatewayURL. With one
	// CU and no discovery the MU talks to it directly, as it always has.
	// Placement, when set, is used as it is: the caller owns its table and
	// keeps it fresh (Refresh once its CUs serve, then Run).
	CUURLs     []string
	CUDiscover bool
	Placement  *placement.Placer
	// Workers bounds concurrent crank steps: pulls and pushes (default 16).
	Workers int
	// IngestWorkers bounds concurrent ingest steps, users' items and
	// assignments on their way to the SU (default 16). Ingest has its own
	// budget so that POST / is never queued behind cranking: what the MU
	// acknowledges, the SU holds, and a result() right after it is answered.
	IngestWorkers int
	// MaxAttempts ends a step that keeps failing transiently (a unit that is
	// down, a 5xx). Zero or negative: never, the default, so an outage delays
	// messages but loses none. A refusal that no retry can change (413, 422,
	// an invalid item: see refusal) ends a step at once as failed, kept in
	// the trace with its reason, so that it does not hold up its queue.
	// RetryDelay doubles per attempt up to MaxRetryDelay (defaults 250 ms, 30 s).
	MaxAttempts   int
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// CronInterval is how often monitored processes are polled (default 1 s).
	// A monitor whose polls fail is polled less often: the interval doubles
	// per failure up to MaxRetryDelay.
	CronInterval time.Duration
	// MaxMonitors caps the cron-monitored processes (default 1000): each
	// costs a CU request per CronInterval, and a monitor is stored durably.
	MaxMonitors int
	// RateLimit limits items per wallet at ingress (zero: off).
	RateLimit RateLimit
	// SpawnPush also pulls and cranks a new process's boot result (AOP-6).
	SpawnPush bool
	// TraceRetention keeps finished steps for the trace query (default 24 h).
	TraceRetention time.Duration
	// IngestWait is how long POST / waits for the SU before answering 202 with
	// the item queued (default 15 s).
	IngestWait time.Duration
	// MaxBodyBytes bounds request bodies (default 10 MiB, as the reference).
	MaxBodyBytes int64
	Logger       *slog.Logger
}

// Server is a running MU.
type Server struct {
	cfg     Config
	st      *store
	su      SchedulerClient
	cu      ComputeClient
	gw      GatewayClient
	loc     *locator
	run     *runner // the crank
	in      *runner // ingest: its own workers, successors go to run
	crons   *crons
	lim     *limiter
	metrics *metrics
	log     *slog.Logger
	address string
	placer  *placement.Placer // nil with one CU
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
}

// New opens the queue in cfg.DataDir, resumes its pending steps and monitors,
// and starts cranking. The caller serves Handler() and calls Close.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Signer == nil {
		return nil, errors.New("mu: no wallet")
	}
	if cfg.Scheduler == nil {
		cfg.Scheduler = NewHTTPScheduler()
	}
	var placer *placement.Placer
	if cfg.Compute == nil {
		var err error
		if placer, err = newPlacer(cfg); err != nil {
			return nil, err
		}
		switch {
		case placer != nil:
			cfg.Compute = NewPlacedCompute(placer)
		case cfg.CUURL != "":
			cfg.Compute = NewHTTPCompute(cfg.CUURL)
		default:
			cfg.Compute = NewHTTPCompute(cfg.CUURLs[0])
		}
	}
	if cfg.Gateway == nil {
		if cfg.GatewayURL == "" {
			return nil, errors.New("mu: no gateway")
		}
		cfg.Gateway = NewHTTPGateway(cfg.GatewayURL)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.RetryDelay, 250*time.Millisecond)
	def(&cfg.MaxRetryDelay, 30*time.Second)
	def(&cfg.CronInterval, time.Second)
	def(&cfg.TraceRetention, 24*time.Hour)
	def(&cfg.IngestWait, 15*time.Second)
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.IngestWorkers <= 0 {
		cfg.IngestWorkers = 16
	}
	if cfg.MaxMonitors <= 0 {
		cfg.MaxMonitors = 1000
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 10 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := openStore(ctx, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, st: st, su: cfg.Scheduler, cu: cfg.Compute, gw: cfg.Gateway, metrics: newMetrics(),
		log: cfg.Logger, address: ans104.Address(cfg.Signer.Owner()), placer: placer}
	s.loc = newLocator(cfg.Gateway, st)
	s.lim = &limiter{lim: cfg.RateLimit, win: map[string]*window{}, now: time.Now}
	// The crank and ingest runners differ only in their workers and where
	// successors go.
	newRunner := func(workers int, out *runner) *runner {
		r := &runner{st: st, exec: s.exec, out: out, log: cfg.Logger, workers: workers, maxAttempts: max(cfg.MaxAttempts, 0),
			baseDelay: cfg.RetryDelay, maxDelay: cfg.MaxRetryDelay, metrics: s.metrics}
		r.init()
		return r
	}
	s.run = newRunner(cfg.Workers, nil)
	s.in = newRunner(cfg.IngestWorkers, s.run)
	s.crons = &crons{s: s, max: cfg.MaxMonitors, every: cfg.CronInterval, maxDelay: max(cfg.MaxRetryDelay, cfg.CronInterval),
		cursors: map[string]string{}, inflight: map[string]bool{}, failing: map[string]*backoff{}}

	pending, err := st.pending(ctx)
	if err != nil {
		st.close()
		return nil, err
	}
	mons, err := st.monitors(ctx)
	if err != nil {
		st.close()
		return nil, err
	}
	for pid, cur := range mons {
		s.crons.cursors[pid] = cur
	}
	s.metrics.monitors.Store(int64(len(mons)))
	for _, t := range pending {
		if t.Kind == kindIngest {
			s.in.add(t)
		} else {
			s.run.add(t)
		}
	}
	if len(pending) > 0 {
		s.log.Info("resuming crank steps", "pending", len(pending))
	}

	if placer != nil && cfg.Placement == nil {
		// The first choices already know the CUs' prices and health.
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		placer.Refresh(rctx)
		rcancel()
	}
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() { s.run.run(bg) })
	s.wg.Go(func() { s.in.run(bg) })
	s.wg.Go(func() { s.crons.run(bg) })
	if placer != nil && cfg.Placement == nil {
		s.wg.Go(func() { placer.Run(bg) })
	}
	s.wg.Go(func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-bg.Done():
				return
			case <-t.C:
				if err := st.purge(bg, nowMS()-cfg.TraceRetention.Milliseconds()); err != nil {
					s.log.Warn("purging finished steps failed", "err", err)
				}
			}
		}
	})
	return s, nil
}

// newPlacer builds the placement over cfg's CUs, or nil for one CU.
func newPlacer(cfg Config) (*placement.Placer, error) {
	if cfg.Placement != nil {
		return cfg.Placement, nil
	}
	urls := cfg.CUURLs
	if cfg.CUURL != "" {
		urls = append([]string{cfg.CUURL}, urls...)
	}
	if len(urls) == 0 && !cfg.CUDiscover {
		return nil, errors.New("mu: no CU")
	}
	if len(urls) == 1 && !cfg.CUDiscover {
		return nil, nil
	}
	pc := placement.Config{URLs: urls, Logger: cfg.Logger}
	if cfg.CUDiscover {
		if cfg.GatewayURL == "" {
			return nil, errors.New("mu: CU discovery needs a gateway URL")
		}
		pc.GatewayURL = cfg.GatewayURL
	}
	p, err := placement.New(pc)
	if err != nil {
		return nil, fmt.Errorf("mu: CUs: %w", err)
	}
	return p, nil
}

// Placement is the MU's CU placement, nil when it has one CU.
func (s *Server) Placement() *placement.Placer { return s.placer }

// Address is the MU wallet's address (the signer of every pushed item).
func (s *Server) Address() string { return s.address }

// Close stops cranking (steps in flight end and stay pending for the next
// start) and closes the store.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		err = s.st.close()
	})
	return err
}

// Idle waits until no step is pending or running (or ctx ends); for tests
// and benchmarks.
func (s *Server) Idle(ctx context.Context) error {
	// Ingest first: its steps add to the crank, never the other way round.
	for _, r := range []*runner{s.in, s.run} {
		select {
		case <-r.idleCh():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ---- HTTP ----

// Handler is the MU's HTTP API (units.md §4.1).
func (s *Server) Handler() http.Handler {
	return httpx.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "*")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		sw := &statusWriter{ResponseWriter: w, code: 200}
		route := s.dispatch(sw, r)
		s.metrics.request(route, sw.code)
	}))
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) string {
	path := r.URL.Path
	switch {
	case path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		if r.URL.Query().Has("debug") {
			s.trace(w, r)
			return "trace"
		}
		// The body is the reference's; the header names the wallet that signs
		// pushed messages, which processes must list as an Authority to trust
		// them (aonode spawn reads it).
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Ao-Mu-Address", s.Address())
		io.WriteString(w, "ao messenger unit")
		return "info"
	case path == "/" && r.Method == http.MethodPost:
		q := r.URL.Query()
		if q.Has("process-id") || q.Has("assign") {
			s.postAssign(w, r)
			return "assign"
		}
		s.postItem(w, r)
		return "message"
	case path == "/metrics" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.metrics.writeTo(w)
		if s.placer != nil {
			s.placer.WriteMetrics(w, "mu_")
		}
		return "metrics"
	case strings.HasPrefix(path, "/monitor/"):
		if r.Method != http.MethodPost && r.Method != http.MethodDelete {
			writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
			return "other"
		}
		s.monitor(w, r, strings.TrimPrefix(path, "/monitor/"))
		return "monitor"
	case path == "/":
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
		return "other"
	}
	writeError(w, http.StatusNotFound, "Not found")
	return "other"
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	return readBodyMax(w, r, s.cfg.MaxBodyBytes)
}

func readBodyMax(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Payload larger than %d bytes", limit))
		} else {
			writeError(w, http.StatusBadRequest, "Cannot read the request body")
		}
		return nil, false
	}
	return b, true
}

// InputError is an item the MU refuses at ingress (HTTP 400).
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// CheckItem parses and verifies a user's item as the reference MU does at
// ingress (units.md §4.2): a valid signature, Data-Protocol ao, Type Process
// or Message (the first Type tag wins), a target for a Message, and Module
// and Scheduler for a Process.
func CheckItem(b []byte) (*ans104.DataItem, string, error) {
	item, err := ans104.Parse(b)
	if err != nil {
		return nil, "", &InputError{"Invalid data item: " + err.Error()}
	}
	if err := item.Verify(); err != nil {
		return nil, "", &InputError{"Data item " + item.ID() + " does not verify: invalid signature"}
	}
	ao := false
	for _, t := range item.Tags {
		if t.Name == "Data-Protocol" && t.Value == "ao" {
			ao = true
		}
	}
	if !ao {
		return nil, "", &InputError{"Data-Protocol tag must be ao"}
	}
	typ, ok := item.Tag("Type")
	if !ok {
		return nil, "", &InputError{"Type tag not present"}
	}
	switch typ {
	case "Message":
		if len(item.Target) != 32 {
			return nil, "", &InputError{"A Message must have a target process"}
		}
	case "Process":
		m, _ := item.Tag("Module")
		sc, _ := item.Tag("Scheduler")
		if m == "" || sc == "" {
			return nil, "", &InputError{"A Process must have Module and Scheduler tags"}
		}
	default:
		return nil, "", &InputError{"Type must be Process or Message"}
	}
	return item, typ, nil
}

// wait waits for a submitted task's first outcome, up to IngestWait.
func (s *Server) wait(r *http.Request, ch <-chan firstResult) (firstResult, bool) {
	if ch == nil {
		return firstResult{}, false
	}
	t := time.NewTimer(s.cfg.IngestWait)
	defer t.Stop()
	select {
	case res := <-ch:
		return res, true
	case <-t.C:
	case <-r.Context().Done():
	}
	return firstResult{}, false
}

func errStatus(err error) int {
	var se *stepError
	if errors.As(err, &se) && se.status != 0 {
		return se.status
	}
	return http.StatusInternalServerError
}

func (s *Server) postItem(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	item, typ, err := CheckItem(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	wallet := item.OwnerAddress()
	if !s.lim.allow(wallet) {
		writeError(w, http.StatusTooManyRequests, "Rate limit exceeded")
		return
	}
	id := item.ID()
	pid := id
	if typ == "Message" {
		pid = ans104.Base64URL(item.Target)
	}
	t := &task{Key: "i:" + id, Kind: kindIngest, Queue: "i:" + id, Process: pid, Ref: id, Root: id, Wallet: wallet,
		Item: body, Payload: payload{Process: typ == "Process"}}
	ch, err := s.submit(r.Context(), t)
	if err != nil {
		s.log.Error("queueing an item failed", "id", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot queue the item: "+err.Error())
		return
	}
	if res, ok := s.wait(r, ch); ok && res.err != nil {
		writeError(w, errStatus(res.err), res.err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"message": "Processing DataItem", "id": id})
}

// submit queues a user task; a task that failed for good before is replaced,
// so that sending the same item again retries it.
func (s *Server) submit(ctx context.Context, t *task) (<-chan firstResult, error) {
	if err := s.st.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM tasks WHERE key = ? AND state = ?`, t.Key, stateFailed)
		return err
	}); err != nil {
		return nil, err
	}
	return s.in.submit(ctx, t)
}

func (s *Server) postAssign(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pid, tx := q.Get("process-id"), q.Get("assign")
	if pid == "" || tx == "" {
		writeError(w, http.StatusBadRequest, "You must set both process-id and assign to send an assignment, not just one")
		return
	}
	if _, err := ans104.DecodeID(pid); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid process-id: "+err.Error())
		return
	}
	if _, err := ans104.DecodeID(tx); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid assign: "+err.Error())
		return
	}
	var exclude []string
	for _, e := range strings.Split(q.Get("exclude"), ",") {
		if e = strings.TrimSpace(e); e != "" {
			exclude = append(exclude, e)
		}
	}
	t := &task{Key: "ua:" + pid + ":" + tx, Kind: kindIngest, Queue: "q:user>" + pid, Process: pid, Ref: tx, Root: tx,
		Payload: payload{Pid: pid, Assign: &OutAssignment{Processes: []string{pid}, Message: tx, BaseLayer: q.Has("base-layer"), Exclude: exclude}}}
	ch, err := s.submit(r.Context(), t)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "cannot queue the assignment: "+err.Error())
		return
	}
	if ch == nil { // sent before: answer with what it became
		if prev, err := s.st.queryTasks(r.Context(), `WHERE key = ?`, t.Key); err == nil && len(prev) == 1 && prev[0].State == stateDone {
			writeJSON(w, http.StatusAccepted, map[string]string{"message": "Processing Assignment", "id": prev[0].Ref})
			return
		}
		writeError(w, http.StatusServiceUnavailable, "the assignment is queued and has not reached the SU yet; retry")
		return
	}
	res, ok := s.wait(r, ch)
	switch {
	case !ok:
		writeError(w, http.StatusServiceUnavailable, "the assignment is queued and has not reached the SU yet; retry")
	case res.err != nil:
		writeError(w, errStatus(res.err), res.err.Error())
	default:
		writeJSON(w, http.StatusAccepted, map[string]string{"message": "Processing Assignment", "id": res.id})
	}
}

// monitorBodyBytes bounds a monitor request: one small signed item
// (aoconnect's has the data " " and no tags).
const monitorBodyBytes = 64 << 10

// monitor starts (POST) or stops (DELETE) polling a process's crons. The
// body must be a data item with a valid signature whose target is the
// process, as aoconnect's monitor() and unmonitor() send; the reference does
// not verify it, but a monitor costs a CU request per CronInterval for ever,
// so only a signed request for a process its SU knows, up to MaxMonitors,
// is stored.
func (s *Server) monitor(w http.ResponseWriter, r *http.Request, pid string) {
	if _, err := ans104.DecodeID(pid); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid process id: "+err.Error())
		return
	}
	body, ok := readBodyMax(w, r, monitorBodyBytes)
	if !ok {
		return
	}
	if len(body) == 0 {
		writeError(w, http.StatusBadRequest, "The body must be a data item signed by you whose target is the process "+pid)
		return
	}
	item, err := ans104.Parse(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Invalid data item: "+err.Error())
		return
	}
	if err := item.Verify(); err != nil {
		writeError(w, http.StatusBadRequest, "Data item "+item.ID()+" does not verify: invalid signature")
		return
	}
	if len(item.Target) != 32 || ans104.Base64URL(item.Target) != pid {
		writeError(w, http.StatusBadRequest, "The data item's target must be the process "+pid)
		return
	}
	if r.Method == http.MethodDelete {
		s.crons.admit.Lock()
		defer s.crons.admit.Unlock()
		if err := s.st.deleteMonitor(r.Context(), pid); err != nil {
			writeError(w, http.StatusServiceUnavailable, "cannot delete the monitor: "+err.Error())
			return
		}
		s.crons.set(pid, false)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Process deleted")
		return
	}
	if on, _ := s.crons.state(pid); !on {
		if _, _, err := s.loc.locate(r.Context(), pid); err != nil {
			switch {
			case errors.Is(err, errNotProcess):
				writeError(w, http.StatusBadRequest, err.Error())
			case errors.Is(err, ErrNotFound):
				writeError(w, http.StatusNotFound, "Process "+pid+" or its scheduler not found: "+err.Error())
			default:
				writeError(w, http.StatusServiceUnavailable, "cannot locate the process: "+err.Error())
			}
			return
		}
	}
	s.crons.admit.Lock()
	defer s.crons.admit.Unlock()
	if on, n := s.crons.state(pid); !on {
		if n >= s.crons.max {
			writeError(w, http.StatusTooManyRequests, fmt.Sprintf("This MU monitors %d processes, its limit", n))
			return
		}
		if err := s.st.putMonitor(r.Context(), pid); err != nil {
			writeError(w, http.StatusServiceUnavailable, "cannot store the monitor: "+err.Error())
			return
		}
		s.crons.set(pid, true)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "Monitoring process")
}

// TraceQuery is a parsed GET /?debug=… request.
type TraceQuery struct {
	Process  string
	ID       string // the message, assign or spawn id asked about
	Wallet   string
	Page     int // 1-based
	PageSize int
}

// ParseTraceQuery reads the reference's trace parameters: process, one of
// message, assign or spawn, and optional wallet, page and page-size.
func ParseTraceQuery(q url.Values) (TraceQuery, error) {
	tq := TraceQuery{Process: q.Get("process"), Wallet: q.Get("wallet"), Page: 1, PageSize: 10}
	n := 0
	for _, k := range []string{"message", "assign", "spawn"} {
		if q.Has(k) {
			n++
			tq.ID = q.Get(k)
		}
	}
	if n > 1 {
		return tq, &InputError{"Only one of message, assign or spawn may be given"}
	}
	for _, p := range []struct {
		name string
		dst  *int
		max  int
	}{{"page", &tq.Page, 1 << 20}, {"page-size", &tq.PageSize, 100}} {
		if v := q.Get(p.name); v != "" {
			i, err := strconv.Atoi(v)
			if err != nil || i < 1 || i > p.max {
				return tq, &InputError{fmt.Sprintf("%s must be between 1 and %d", p.name, p.max)}
			}
			*p.dst = i
		}
	}
	for _, v := range []string{tq.Process, tq.ID, tq.Wallet} {
		if len(v) > 256 {
			return tq, &InputError{"parameter too long"}
		}
	}
	if tq.Process == "" && tq.ID == "" && tq.Wallet == "" {
		return tq, &InputError{"Give process, message, assign, spawn or wallet"}
	}
	return tq, nil
}

// TraceRow is one crank step in the trace.
type TraceRow struct {
	ID        int64  `json:"id"`
	Kind      string `json:"kind"`
	Key       string `json:"key"`
	ProcessID string `json:"processId"`
	Ref       string `json:"ref,omitempty"`
	Root      string `json:"pushedFor,omitempty"`
	Parent    int64  `json:"parent,omitempty"`
	Wallet    string `json:"wallet,omitempty"`
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	NextAt    int64  `json:"nextAt,omitempty"`
	LastError string `json:"lastError,omitempty"`
	Created   int64  `json:"createdAt"`
	Updated   int64  `json:"updatedAt"`
}

func (s *Server) trace(w http.ResponseWriter, r *http.Request) {
	tq, err := ParseTraceQuery(r.URL.Query())
	if err != nil {
		code := http.StatusBadRequest
		if strings.HasPrefix(err.Error(), "Only one") {
			code = http.StatusUnprocessableEntity
		}
		writeError(w, code, err.Error())
		return
	}
	rows, more, err := s.Trace(r.Context(), tq)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	type edge struct {
		Node   TraceRow `json:"node"`
		Cursor string   `json:"cursor"`
	}
	edges := make([]edge, 0, len(rows))
	for _, row := range rows {
		edges = append(edges, edge{row, strconv.FormatInt(row.ID, 10)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"pageInfo": map[string]bool{"hasNextPage": more}, "edges": edges})
}

// Trace returns the steps about a process and/or a message: the steps that
// handled the id itself and every step pushed for it, oldest first.
func (s *Server) Trace(ctx context.Context, tq TraceQuery) ([]TraceRow, bool, error) {
	var conds []string
	var args []any
	if tq.ID != "" {
		if tq.Process != "" {
			conds = append(conds, "((ref = ? AND process = ?) OR root = ? OR key LIKE ?)")
			args = append(args, tq.ID, tq.Process, tq.ID, "%:"+tq.Process+":"+tq.ID+":%")
		} else {
			conds = append(conds, "(ref = ? OR root = ?)")
			args = append(args, tq.ID, tq.ID)
		}
	} else if tq.Process != "" {
		conds = append(conds, "process = ?")
		args = append(args, tq.Process)
	}
	if tq.Wallet != "" {
		conds = append(conds, "wallet = ?")
		args = append(args, tq.Wallet)
	}
	q := "WHERE " + strings.Join(conds, " AND ") + fmt.Sprintf(" ORDER BY id LIMIT %d OFFSET %d", tq.PageSize+1, (tq.Page-1)*tq.PageSize)
	ts, err := s.st.queryTasks(ctx, q, args...)
	if err != nil {
		return nil, false, err
	}
	more := len(ts) > tq.PageSize
	if more {
		ts = ts[:tq.PageSize]
	}
	rows := make([]TraceRow, 0, len(ts))
	for _, t := range ts {
		st := "pending"
		switch t.State {
		case stateDone:
			st = "done"
		case stateFailed:
			st = "failed"
		}
		row := TraceRow{ID: t.ID, Kind: t.Kind, Key: t.Key, ProcessID: t.Process, Ref: t.Ref, Root: t.Root, Parent: t.Parent,
			Wallet: t.Wallet, Status: st, Attempts: t.Attempts, LastError: t.LastError, Created: t.Created, Updated: t.Updated}
		if t.State == statePending {
			row.NextAt = t.NextAt
		}
		rows = append(rows, row)
	}
	return rows, more, nil
}
