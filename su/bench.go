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
	Wallets     []string      // wallet kinds (default arweave, ed25519)
	Stores      []string      // "sqlite", "postgres" (default both; postgres is skipped if unreachable)
	PostgresURL string        // default postgres://postgres@127.0.0.1:5432/test
	Dir         string        // scratch directory (default a temporary one)
	Log         io.Writer     // progress lines (optional)
}

// BenchResult is one row of RunBench.
type BenchResult struct {
	Wallet, Store string
	RawSign       float64 // sequential signatures per second of the wallet alone
	One           float64 // assignments per second, one process
	Many          float64 // assignments per second, Processes processes
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
	cores := runtime.GOMAXPROCS(0)
	var results []BenchResult
	for _, kind := range cfg.Wallets {
		fmt.Fprintf(cfg.Log, "generating a %s SU wallet\n", kind)
		wl, err := wallet.Generate(kind)
		if err != nil {
			return nil, err
		}
		raw := rawSignRate(wl, cfg.Duration)
		fmt.Fprintf(cfg.Log, "%s raw signing: %.0f/s\n", kind, raw)
		for _, st := range cfg.Stores {
			// The machine may be shared: take the best of repeated raw measurements.
			raw = max(raw, rawSignRate(wl, cfg.Duration/2))
			r := BenchResult{Wallet: kind, Store: st, RawSign: raw, Cores: cores}
			for i, n := range []int{1, cfg.Processes} {
				rate, err := benchScheduling(ctx, cfg, wl, st, n, fmt.Sprintf("%s-%s-%d", kind, st, i))
				if err != nil {
					r.Err = err
					fmt.Fprintf(cfg.Log, "%s/%s: %v\n", kind, st, err)
					break
				}
				fmt.Fprintf(cfg.Log, "%s/%s %d process(es): %.0f/s\n", kind, st, n, rate)
				if i == 0 {
					r.One = rate
				} else {
					r.Many = rate
				}
			}
			results = append(results, r)
		}
	}
	writeBenchTable(w, cfg, results)
	return results, nil
}

func writeBenchTable(w io.Writer, cfg BenchConfig, rs []BenchResult) {
	fmt.Fprintf(w, "SU scheduling benchmark (%s per row, GOMAXPROCS %d; clients sign with Ed25519; the SU verifies, signs, group-commits and publishes)\n\n", cfg.Duration, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "%-9s %-9s %12s %14s %8s %14s %8s\n", "wallet", "store", "raw sign/s", "1 process/s", "of raw", fmt.Sprintf("%d procs/s", cfg.Processes), "of N×raw")
	for _, r := range rs {
		if r.Err != nil {
			fmt.Fprintf(w, "%-9s %-9s %12.0f  skipped: %v\n", r.Wallet, r.Store, r.RawSign, r.Err)
			continue
		}
		fmt.Fprintf(w, "%-9s %-9s %12.0f %14.0f %7.0f%% %14.0f %7.0f%%\n", r.Wallet, r.Store, r.RawSign,
			r.One, 100*r.One/r.RawSign, r.Many, 100*r.Many/(float64(r.Cores)*r.RawSign))
	}
}

// rawSignRate is sequential signatures per second over a 48-byte deep hash.
func rawSignRate(s ans104.Signer, d time.Duration) float64 {
	var msg [48]byte
	rand.Read(msg[:])
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		if _, err := s.Sign(msg[:]); err != nil {
			return 0
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
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

// benchScheduling schedules messages on n processes from 4n (at least 256)
// concurrent clients and returns committed assignments per second.
func benchScheduling(ctx context.Context, cfg BenchConfig, suWallet ans104.Signer, storeKind string, n int, name string) (float64, error) {
	st, cleanup, err := benchStore(ctx, cfg, storeKind, name)
	if err != nil {
		return 0, err
	}
	defer cleanup()
	srv, err := New(ctx, Config{Signer: suWallet, Store: st, Chain: discardChain{}})
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	sched := srv.Scheduler()
	_, clientKey, _ := ed25519.GenerateKey(rand.Reader)
	client := ans104.NewEd25519Signer(clientKey)
	pids := make([]string, n)
	for i := range pids {
		it, err := ans104.Sign(client, nil, ans104.Options{Tags: []ans104.Tag{
			{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Process"},
			{Name: "Module", Value: strings.Repeat("M", 43)}, {Name: "Scheduler", Value: srv.Address()},
			{Name: "Name", Value: fmt.Sprint(i)}}})
		if err != nil {
			return 0, err
		}
		if _, err := sched.Submit(ctx, it.Bytes()); err != nil {
			return 0, err
		}
		pids[i] = it.ID()
	}
	seq := 0 // message numbers are unique across calls: Ed25519 items are deterministic
	gen := func(count int) ([][]byte, error) {
		out := make([][]byte, count)
		base := seq
		seq += count
		var wg sync.WaitGroup
		var firstErr atomic.Value
		workers := runtime.GOMAXPROCS(0)
		for wk := range workers {
			wg.Go(func() {
				for i := wk; i < count; i += workers {
					target, _ := ans104.DecodeID(pids[i%n])
					it, err := ans104.Sign(client, []byte("benchmark message"), ans104.Options{Target: target[:], Tags: []ans104.Tag{
						{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Message"},
						{Name: "Action", Value: "Bench"}, {Name: "Seq", Value: fmt.Sprint(base + i)}}})
					if err != nil {
						firstErr.Store(err)
						return
					}
					out[i] = it.Bytes()
				}
			})
		}
		wg.Wait()
		if err, ok := firstErr.Load().(error); ok {
			return nil, err
		}
		return out, nil
	}
	clients := max(256, 4*n)
	run := func(msgs [][]byte, limit time.Duration) (int64, time.Duration, error) {
		var next, done atomic.Int64
		var firstErr atomic.Value
		start := time.Now()
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for time.Since(start) < limit {
					i := next.Add(1) - 1
					if i >= int64(len(msgs)) {
						return
					}
					if _, err := sched.Submit(ctx, msgs[i]); err != nil {
						firstErr.Store(err)
						return
					}
					done.Add(1)
				}
			})
		}
		wg.Wait()
		if err, ok := firstErr.Load().(error); ok {
			return 0, 0, err
		}
		return done.Load(), time.Since(start), nil
	}
	// Calibrate with a short run, then pre-sign enough messages for the full one.
	warm, err := gen(max(2*clients, 200))
	if err != nil {
		return 0, err
	}
	c, el, err := run(warm, cfg.Duration/4)
	if err != nil {
		return 0, err
	}
	estimate := float64(c) / el.Seconds()
	msgs, err := gen(int(estimate*cfg.Duration.Seconds()*1.5) + 2*clients)
	if err != nil {
		return 0, err
	}
	c, el, err = run(msgs, cfg.Duration)
	if err != nil {
		return 0, err
	}
	if os.Getenv("SU_BENCH_DEBUG") != "" {
		m := srv.metrics
		fmt.Fprintf(cfg.Log, "commits %d items %d avg %.2fms avg batch %.1f; signs %d avg %.1fus\n", m.commits.Load(), m.commitItems.Load(),
			float64(m.commitNanos.Load())/1e6/float64(m.commits.Load()), float64(m.commitItems.Load())/float64(m.commits.Load()),
			m.signs.Load(), float64(m.signNanos.Load())/1e3/float64(m.signs.Load()))
	}
	return float64(c) / el.Seconds(), nil
}
