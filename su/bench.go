package su

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/wallet"
)

// BenchConfig configures RunBench.
type BenchConfig struct {
	Duration    time.Duration // per measurement (default 2 s)
	Processes   int           // the "many processes" row (default 64)
	Wallets     []string      // SU wallet kinds (default arweave, ed25519)
	Clients     string        // wallet kind that signs the incoming messages (default arweave, as aoconnect users and MUs sign)
	Stores      []string      // "sqlite", "postgres" (default both; postgres is skipped if unreachable)
	PostgresURL string        // default postgres://postgres@127.0.0.1:5432/test
	Dir         string        // scratch directory (default a temporary one)
	Log         io.Writer     // progress lines (optional)
}

// BenchResult is one row of RunBench.
type BenchResult struct {
	Wallet, Store string
	RawSign       float64       // sequential signatures per second of the wallet alone (best of the measurements)
	RawParallel   float64       // signatures per second of Cores goroutines signing at once (the hardware's ceiling)
	One           float64       // assignments per second, one process
	Many          float64       // assignments per second, Processes processes
	OneCPU        time.Duration // this process's CPU time per assignment, one process (0 if unknown)
	ManyCPU       time.Duration // the same, Processes processes (a PostgreSQL server's own CPU is not included)
	Cores         int
	Err           error
}

// discardChain is a permanent store that accepts everything (benchmarks).
type discardChain struct{}

func (discardChain) Height(context.Context) (int64, error)          { return 1, nil }
func (discardChain) Upload(context.Context, []byte) error           { return nil }
func (d discardChain) Exists(context.Context, string) (bool, error) { return true, nil }

// RunBench measures the wallet's raw signing rate and the SU's scheduling rate
// (verify, sign, group-commit, outbox publish; no HTTP) for one process and for
// many, for each wallet kind and store, and writes a table to w.
func RunBench(ctx context.Context, cfg BenchConfig, w io.Writer) ([]BenchResult, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = 2 * time.Second
	}
	if cfg.Processes <= 0 {
		cfg.Processes = 64
	}
	if len(cfg.Wallets) == 0 {
		cfg.Wallets = []string{wallet.Arweave, wallet.Ed25519}
	}
	if cfg.Clients == "" {
		cfg.Clients = wallet.Arweave
	}
	if len(cfg.Stores) == 0 {
		cfg.Stores = []string{"sqlite", "postgres"}
	}
	if cfg.PostgresURL == "" {
		cfg.PostgresURL = "postgres://postgres@127.0.0.1:5432/test"
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "aonode-bench-su-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		cfg.Dir = d
	}
	clients, err := newBenchClients(cfg.Clients)
	if err != nil {
		return nil, err
	}
	cores := runtime.GOMAXPROCS(0)
	var results []BenchResult
	for _, kind := range cfg.Wallets {
		fmt.Fprintf(cfg.Log, "generating a %s SU wallet\n", kind)
		wl, err := wallet.Generate(kind)
		if err != nil {
			return nil, err
		}
		raw := rawSignRate(wl, cfg.Duration, 1)
		par := rawSignRate(wl, cfg.Duration, cores)
		fmt.Fprintf(cfg.Log, "%s raw signing: %.0f/s sequential, %.0f/s on %d goroutines\n", kind, raw, par, cores)
		for _, st := range cfg.Stores {
			r := BenchResult{Wallet: kind, Store: st, Cores: cores}
			for i, n := range []int{1, cfg.Processes} {
				// The machine may be shared: the raw rate is measured again just
				// before each row and the best measurement is the reference.
				raw = max(raw, rawSignRate(wl, cfg.Duration/2, 1))
				run, err := benchScheduling(ctx, cfg, wl, st, n, fmt.Sprintf("%s-%s-%d", kind, st, i), clients)
				if err != nil {
					r.Err = err
					fmt.Fprintf(cfg.Log, "%s/%s: %v\n", kind, st, err)
					break
				}
				fmt.Fprintf(cfg.Log, "%s/%s %d process(es): %.0f/s, %.0f µs CPU per assignment\n", kind, st, n, run.Rate, micros(run.CPUPerOp))
				if i == 0 {
					r.One, r.OneCPU = run.Rate, run.CPUPerOp
				} else {
					r.Many, r.ManyCPU = run.Rate, run.CPUPerOp
				}
			}
			results = append(results, r)
		}
		par = max(par, rawSignRate(wl, cfg.Duration/2, cores))
		for i := range results {
			if results[i].Wallet == kind {
				results[i].RawSign, results[i].RawParallel = raw, par
			}
		}
	}
	writeBenchTable(w, cfg, results)
	return results, nil
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func writeBenchTable(w io.Writer, cfg BenchConfig, rs []BenchResult) {
	cores := runtime.GOMAXPROCS(0)
	fmt.Fprintf(w, "SU scheduling benchmark (%s per row, GOMAXPROCS %d; clients sign with %s; the SU verifies, signs, group-commits and publishes)\n\n",
		cfg.Duration, cores, cfg.Clients)
	fmt.Fprintf(w, "%-9s %-9s %11s %11s %12s %7s %12s %9s %9s\n", "wallet", "store", "raw sign/s", fmt.Sprintf("%d×raw/s", cores),
		"1 process/s", "of raw", fmt.Sprintf("%d procs/s", cfg.Processes), fmt.Sprintf("of %d×raw", cores), "CPU µs/op")
	for _, r := range rs {
		if r.Err != nil {
			fmt.Fprintf(w, "%-9s %-9s %11.0f %11.0f  skipped: %v\n", r.Wallet, r.Store, r.RawSign, r.RawParallel, r.Err)
			continue
		}
		fmt.Fprintf(w, "%-9s %-9s %11.0f %11.0f %12.0f %6.0f%% %12.0f %8.0f%% %9.0f\n", r.Wallet, r.Store, r.RawSign, r.RawParallel,
			r.One, 100*r.One/r.RawSign, r.Many, 100*r.Many/(float64(r.Cores)*r.RawSign), micros(r.ManyCPU))
	}
	fmt.Fprintf(w, "\n%d×raw/s: %d goroutines signing at once (what the hardware allows). CPU µs/op: this process's CPU time per\n"+
		"assignment in the %d-process row (a PostgreSQL server's own CPU is not included).\n", cores, cores, cfg.Processes)
}

// rawSignRate is signatures per second over a 48-byte deep hash, with
// goroutines signing at once (1: the sequential rate).
func rawSignRate(s ans104.Signer, d time.Duration, goroutines int) float64 {
	var msg [48]byte
	rand.Read(msg[:])
	var n atomic.Int64
	var failed atomic.Bool
	start := time.Now()
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for time.Since(start) < d {
				if _, err := s.Sign(msg[:]); err != nil {
					failed.Store(true)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		return 0
	}
	return float64(n.Load()) / time.Since(start).Seconds()
}

// benchClients signs the benchmark's incoming items. Processes are signed by
// a fixed Ed25519 key, so that the same processes (same ids) exist in every
// store for a given SU; messages are signed by a key of the configured kind
// and kept, so that the expensive kinds are signed once for all stores.
type benchClients struct {
	kind  string
	proc  ans104.Signer
	msg   ans104.Signer
	pools map[string][][]byte // by SU address and process count
}

func newBenchClients(kind string) (*benchClients, error) {
	w, err := wallet.Generate(kind)
	if err != nil {
		return nil, fmt.Errorf("su: bench clients: %w", err)
	}
	_, pk, _ := ed25519.GenerateKey(rand.Reader)
	return &benchClients{kind: kind, proc: ans104.NewEd25519Signer(pk), msg: w, pools: make(map[string][][]byte)}, nil
}

func (c *benchClients) processes(suAddress string, n int) ([][]byte, []string, error) {
	items := make([][]byte, n)
	ids := make([]string, n)
	for i := range n {
		it, err := ans104.Sign(c.proc, nil, ans104.Options{Tags: []ans104.Tag{
			{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Process"},
			{Name: "Module", Value: strings.Repeat("M", 43)}, {Name: "Scheduler", Value: suAddress},
			{Name: "Name", Value: fmt.Sprint(i)}}})
		if err != nil {
			return nil, nil, err
		}
		items[i], ids[i] = it.Bytes(), it.ID()
	}
	return items, ids, nil
}

// messages returns messages from..from+count of the pool for these processes,
// signing more (on every core) when the pool is short. Message i goes to
// process i mod len(pids).
func (c *benchClients) messages(suAddress string, pids []string, from, count int) ([][]byte, error) {
	key := fmt.Sprintf("%s/%d", suAddress, len(pids))
	pool := c.pools[key]
	if need := from + count; len(pool) < need {
		base := len(pool)
		pool = append(pool, make([][]byte, need-base)...)
		var wg sync.WaitGroup
		var firstErr atomic.Value
		workers := runtime.GOMAXPROCS(0)
		for wk := range workers {
			wg.Go(func() {
				for i := base + wk; i < need; i += workers {
					target, _ := ans104.DecodeID(pids[i%len(pids)])
					it, err := ans104.Sign(c.msg, []byte("benchmark message"), ans104.Options{Target: target[:], Tags: []ans104.Tag{
						{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Message"},
						{Name: "Action", Value: "Bench"}, {Name: "Seq", Value: fmt.Sprint(i)}}})
					if err != nil {
						firstErr.Store(err)
						return
					}
					pool[i] = it.Bytes()
				}
			})
		}
		wg.Wait()
		if err, ok := firstErr.Load().(error); ok {
			return nil, err
		}
		c.pools[key] = pool
	}
	return pool[from : from+count], nil
}

func benchStore(ctx context.Context, cfg BenchConfig, kind, name string) (Store, func(), error) {
	switch kind {
	case "sqlite":
		st, err := OpenSQLite(ctx, filepath.Join(cfg.Dir, name+".db"))
		return st, func() { st.Close() }, err
	case "postgres":
		schema := "su_bench_" + strings.NewReplacer("-", "_").Replace(name) + fmt.Sprintf("_%d", time.Now().UnixNano())
		admin, err := OpenPostgresAdmin(ctx, cfg.PostgresURL)
		if err != nil {
			return nil, nil, fmt.Errorf("postgres unreachable: %w", err)
		}
		if err := admin.exec(ctx, "CREATE SCHEMA "+schema); err != nil {
			admin.close()
			return nil, nil, err
		}
		st, err := OpenPostgres(ctx, WithSearchPath(cfg.PostgresURL, schema))
		cleanup := func() {
			if st != nil {
				st.Close()
			}
			admin.exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			admin.close()
		}
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		return st, cleanup, nil
	}
	return nil, nil, fmt.Errorf("unknown store %q", kind)
}

// benchScheduling schedules messages on exactly n processes from 4n (at least
// 256) concurrent clients and returns committed assignments per second. The
// messages are signed beforehand; every one is new to the store.
func benchScheduling(ctx context.Context, cfg BenchConfig, suWallet ans104.Signer, storeKind string, n int, name string, clients *benchClients) (schedRun, error) {
	st, cleanup, err := benchStore(ctx, cfg, storeKind, name)
	if err != nil {
		return schedRun{}, err
	}
	defer cleanup()
	srv, err := New(ctx, Config{Signer: suWallet, Store: st, Chain: discardChain{}})
	if err != nil {
		return schedRun{}, err
	}
	defer srv.Close()
	sched := srv.Scheduler()
	procs, pids, err := clients.processes(srv.Address(), n)
	if err != nil {
		return schedRun{}, err
	}
	for _, p := range procs {
		if _, err := sched.Submit(ctx, p); err != nil {
			return schedRun{}, err
		}
	}
	clientCount := max(256, 4*n)
	var cpu time.Duration
	// run submits msgs until they or the time run out, and returns how many it
	// took (all of which were scheduled) and the time it ran.
	run := func(msgs [][]byte, limit time.Duration) (int64, time.Duration, error) {
		var next, done atomic.Int64
		var firstErr atomic.Value
		if benchRunHook != nil {
			benchRunHook(true)
		}
		cpu0 := processCPU()
		start := time.Now()
		var wg sync.WaitGroup
		for range clientCount {
			wg.Go(func() {
				for time.Since(start) < limit {
					i := next.Add(1) - 1
					if i >= int64(len(msgs)) {
						return
					}
					rc, err := sched.Submit(ctx, msgs[i])
					if err == nil && rc.Existing {
						err = fmt.Errorf("su: bench message %s was scheduled already", rc.ID)
					}
					if err != nil {
						firstErr.Store(err)
						return
					}
					done.Add(1)
				}
			})
		}
		wg.Wait()
		el := time.Since(start)
		cpu = processCPU() - cpu0
		if benchRunHook != nil {
			benchRunHook(false)
		}
		if err, ok := firstErr.Load().(error); ok {
			return 0, 0, err
		}
		return done.Load(), el, nil
	}
	// Calibrate with a short run, then take enough new messages for the full one.
	warm, err := clients.messages(srv.Address(), pids, 0, 2*clientCount)
	if err != nil {
		return schedRun{}, err
	}
	c, el, err := run(warm, cfg.Duration/4)
	if err != nil {
		return schedRun{}, err
	}
	estimate := float64(c) / el.Seconds()
	msgs, err := clients.messages(srv.Address(), pids, int(c), int(estimate*cfg.Duration.Seconds()*1.5)+2*clientCount)
	if err != nil {
		return schedRun{}, err
	}
	if m := srv.metrics; os.Getenv("SU_BENCH_DEBUG") != "" {
		defer func(commits, items, nanos, signs, signNanos int64) {
			commits, items, nanos = m.commits.Load()-commits, m.commitItems.Load()-items, m.commitNanos.Load()-nanos
			signs, signNanos = m.signs.Load()-signs, m.signNanos.Load()-signNanos
			fmt.Fprintf(cfg.Log, "commits %d items %d avg %.2fms avg batch %.1f; signs %d avg %.1fus\n", commits, items,
				float64(nanos)/1e6/float64(max(commits, 1)), float64(items)/float64(max(commits, 1)), signs, float64(signNanos)/1e3/float64(max(signs, 1)))
		}(m.commits.Load(), m.commitItems.Load(), m.commitNanos.Load(), m.signs.Load(), m.signNanos.Load())
	}
	c, el, err = run(msgs, cfg.Duration)
	if err != nil {
		return schedRun{}, err
	}
	return schedRun{Rate: float64(c) / el.Seconds(), CPUPerOp: cpu / time.Duration(max(c, 1)), Ops: c}, nil
}

var benchRunHook func(start bool) // tests: called as a measured run starts and ends

// schedRun is one measurement of benchScheduling.
type schedRun struct {
	Rate     float64       // committed assignments per second
	CPUPerOp time.Duration // process CPU time per assignment (0 when unknown)
	Ops      int64
}
