package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/client"
)

// BenchConfig configures RunBench.
type BenchConfig struct {
	// WasmPath is the aos module to run (wasm32-unknown-emscripten4).
	WasmPath string
	// Messages is the length of the single-process row (default 200).
	Messages int
	// Processes × PerProcess is the many-processes row (defaults 50 × 20).
	Processes, PerProcess int
	// Random processes are spawned for the random-access row and Accesses
	// random message+result pairs made over them (defaults 200 and 400)
	// under a memory budget of RandomBudget bytes (default 32 MiB, well
	// below what that many live processes hold).
	Random, Accesses int
	RandomBudget     int64
	// Concurrency is the number of clients at once in the many-processes
	// and random rows (default 8).
	Concurrency int
	// Idle, when > 0, spawns that many aos processes on one more node and
	// reports how fast they booted and the resident memory of this process
	// (the node runs in it) with all of them spawned.
	Idle int
	// UnitWallets is the kind of the nodes' unit wallets (Config.UnitWallets).
	UnitWallets string
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// BenchRow is one line of the table.
type BenchRow struct {
	Name     string
	Messages int
	Rate     float64 // message+result pairs a second
	P50, P99 time.Duration
	// EvalsPerMessage is the CU's evaluations per client message (the
	// boot of every process counted as one message of its own).
	EvalsPerMessage float64
}

// RunBench measures the whole node the way clients use it: each client
// message is signed (Ed25519), posted to the MU and its result read from the
// CU, as aoconnect's message() then result() do. Every row runs on a fresh
// node in a temporary directory, in this run, so the ratios to the first
// row (one warm process) compare like with like.
func RunBench(ctx context.Context, cfg BenchConfig, out io.Writer) error {
	if cfg.Messages <= 0 {
		cfg.Messages = 200
	}
	if cfg.Processes <= 0 {
		cfg.Processes = 50
	}
	if cfg.PerProcess <= 0 {
		cfg.PerProcess = 20
	}
	if cfg.Random <= 0 {
		cfg.Random = 200
	}
	if cfg.Accesses <= 0 {
		cfg.Accesses = 400
	}
	if cfg.RandomBudget <= 0 {
		cfg.RandomBudget = 32 << 20
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	wasm, err := os.ReadFile(cfg.WasmPath)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	// Each row: a fresh node with its budget, that many processes spawned,
	// then the messages jobs names (a process each) with conc clients.
	specs := []struct {
		name   string
		budget int64
		procs  int
		conc   int
		jobs   func(pids []string) []string
		cus    int
	}{
		{"1 process, sequential", 0, 1, 1, func(pids []string) []string {
			return slices.Repeat(pids, cfg.Messages)
		}, 1},
		{fmt.Sprintf("%d processes × %d, %d clients", cfg.Processes, cfg.PerProcess, cfg.Concurrency), 0, cfg.Processes, cfg.Concurrency,
			func(pids []string) []string { return slices.Repeat(pids, cfg.PerProcess) }, 1},
		{fmt.Sprintf("random over %d processes, %d MiB budget", cfg.Random, cfg.RandomBudget>>20), cfg.RandomBudget, cfg.Random, cfg.Concurrency,
			func(pids []string) []string {
				jobs := make([]string, cfg.Accesses)
				for i := range jobs {
					jobs[i] = pids[mrand.IntN(len(pids))]
				}
				return jobs
			}, 1},
		// The second row again over three CUs on this same machine: not a
		// speed-up, but what placement, the router and spreading the
		// processes cost.
		{fmt.Sprintf("%d processes × %d, %d clients, 3 CUs", cfg.Processes, cfg.PerProcess, cfg.Concurrency), 0, cfg.Processes, cfg.Concurrency,
			func(pids []string) []string { return slices.Repeat(pids, cfg.PerProcess) }, 3},
	}
	var rows []BenchRow
	for _, sp := range specs {
		row, err := benchNode(ctx, cfg, wasm, sp.budget, sp.cus, func(b *bench) (BenchRow, error) {
			pids, err := b.spawn(ctx, sp.procs)
			if err != nil {
				return BenchRow{}, err
			}
			return b.run(ctx, sp.name, sp.jobs(pids), sp.conc)
		})
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}

	var idle string
	if cfg.Idle > 0 {
		_, err := benchNode(ctx, cfg, wasm, 0, 1, func(b *bench) (BenchRow, error) {
			start := time.Now()
			if _, err := b.spawn(ctx, cfg.Idle); err != nil {
				return BenchRow{}, err
			}
			took := time.Since(start)
			time.Sleep(3 * time.Second) // the CU re-reads sizes every 2 s
			idle = fmt.Sprintf("%d aos processes spawned and booted in %s (%.0f/s); resident memory of the process %d MiB, CU live instances %d MiB (budget %d MiB)\n",
				cfg.Idle, took.Round(time.Second), float64(cfg.Idle)/took.Seconds(), residentMiB(), b.n.CU.LiveMemory()>>20, b.n.CU.MemoryBudget()>>20)
			return BenchRow{}, nil
		})
		if err != nil {
			return err
		}
	}

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\tmessages\tmsg+result/s\tof 1 process\tp50\tp99\tevaluations/msg\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f%%\t%s\t%s\t%.2f\t\n", r.Name, r.Messages, r.Rate, 100*r.Rate/rows[0].Rate,
			r.P50.Round(100*time.Microsecond), r.P99.Round(100*time.Microsecond), r.EvalsPerMessage)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = io.WriteString(out, idle)
	return err
}

// residentMiB is this process's resident memory (VmRSS), 0 where unknown.
func residentMiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb >> 10
		}
	}
	return 0
}

type bench struct {
	n      *Node
	c      *client.Client
	module string
	log    io.Writer
	spawns int
}

// benchNode runs f on a fresh node with the module published.
func benchNode(ctx context.Context, cfg BenchConfig, wasm []byte, budget int64, cus int, f func(*bench) (BenchRow, error)) (BenchRow, error) {
	dir, err := os.MkdirTemp("", "aonode-bench-node-")
	if err != nil {
		return BenchRow{}, err
	}
	defer os.RemoveAll(dir)
	// Free ports are found by listening and closing; another program may
	// take one before the node binds it, so a taken port means another try.
	var n *Node
	for attempt := 0; ; attempt++ {
		ports := make([]int, 5+max(cus, 1))
		for i := range ports {
			if ports[i], err = loopbackPort(); err != nil {
				return BenchRow{}, err
			}
		}
		fmt.Fprintf(cfg.Log, "bench: starting a node in %s\n", dir)
		ncfg := Config{DataDir: dir, GatewayPort: ports[0], SUPort: ports[1], CUPort: ports[2], MUPort: ports[3],
			BlockInterval: 100 * time.Millisecond, MemoryBudget: budget, UnitWallets: cfg.UnitWallets}
		if cus > 1 {
			ncfg.CUs, ncfg.RouterPort, ncfg.CUPorts = cus, ports[4], ports[5:]
		}
		n, err = Start(ctx, ncfg)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 4 {
			return BenchRow{}, err
		}
	}
	defer n.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	c := client.New(ans104.NewEd25519Signer(key))
	c.Gateway, c.SU, c.CU, c.MU = n.GatewayURL, n.SUURL, n.CUURL, n.MUURL
	mod, err := c.PublishModule(ctx, wasm, client.Module{Format: "wasm32-unknown-emscripten4", MemoryLimit: "1-gb", ComputeLimit: "9000000000000"})
	if err != nil {
		return BenchRow{}, err
	}
	return f(&bench{n: n, c: c, module: mod, log: cfg.Log})
}

// spawn spawns k processes and waits for each to boot (its first result).
func (b *bench) spawn(ctx context.Context, k int) ([]string, error) {
	fmt.Fprintf(b.log, "bench: spawning %d processes\n", k)
	pids := make([]string, k)
	errs := make([]error, k)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(k, 8) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < k; i = int(next.Add(1)) - 1 {
				pid, err := b.c.Spawn(ctx, client.Spawn{Module: b.module, Scheduler: b.n.SUAddress})
				if err == nil {
					_, err = b.c.Result(ctx, pid, pid)
				}
				pids[i], errs[i] = pid, err
			}
		})
	}
	wg.Wait()
	b.spawns += k
	return pids, errors.Join(errs...)
}

// run sends one Eval to each process of jobs (in order, conc clients at
// once) and reads its result.
func (b *bench) run(ctx context.Context, name string, jobs []string, conc int) (BenchRow, error) {
	fmt.Fprintf(b.log, "bench: %s: %d messages\n", name, len(jobs))
	evals0 := b.evaluations()
	lat := make([]time.Duration, len(jobs))
	errs := make([]error, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(jobs); i = int(next.Add(1)) - 1 {
				t0 := time.Now()
				id, err := b.c.Message(ctx, client.Message{Process: jobs[i], Tags: []client.Tag{{Name: "Action", Value: "Eval"}},
					Data: []byte("N = (N or 0) + 1; return N")})
				if err == nil {
					var r *client.Result
					if r, err = b.c.Result(ctx, jobs[i], id); err == nil && r.Failed() {
						err = fmt.Errorf("message %s failed: %s", id, r.Error)
					}
				}
				lat[i], errs[i] = time.Since(t0), err
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return BenchRow{}, fmt.Errorf("bench %s: %w", name, err)
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(math.Ceil(p*float64(len(lat))))-1)] }
	return BenchRow{Name: name, Messages: len(jobs), Rate: float64(len(jobs)) / elapsed.Seconds(), P50: q(0.50), P99: q(0.99),
		EvalsPerMessage: float64(b.evaluations()-evals0) / float64(len(jobs))}, nil
}

func (b *bench) evaluations() int64 {
	var n int64
	for _, c := range b.n.CUs {
		n += c.Evaluations()
	}
	return n
}

func loopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
