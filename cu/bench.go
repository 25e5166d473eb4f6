package cu

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aonode/aonode/cu/wasm"
)

// BenchConfig configures RunBench.
type BenchConfig struct {
	WasmPath string // an aos module
	Format   string // its Module-Format
	Messages int    // Ping messages per measurement (default 1000)
	// Rounds is how many times each row is measured (default 3), the rows
	// taking turns; the table gives the median and the range, as one run on
	// a shared or virtual machine can be off by a fifth.
	Rounds   int
	CacheDir string // compilation cache of the engines
	// Engines are the wasm engines to measure, each in its own rows (default:
	// every engine built into the binary, wasm.Engines).
	Engines []string
	// NodeDir is a directory with interop/loader.js and @permaweb/ao-loader
	// installed; "" (or no node) leaves out the reference rows.
	NodeDir string
}

// RunBench measures, in one run and on each of cfg.Engines, one warm aos process answering Pings here
// (under the fuel limit and turns, as the CU runs a message, and without fuel checks), the same through node's ao-loader in
// the reference CU's default mode (memory passed in and out per message) and
// in its live-instance mode, the cold restore of a checkpoint, and a full
// replay, and prints a table to w.
func RunBench(ctx context.Context, cfg BenchConfig, w io.Writer) error {
	if cfg.Messages <= 0 {
		cfg.Messages = 1000
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	bin, err := os.ReadFile(cfg.WasmPath)
	if err != nil {
		return err
	}
	msgs := benchMessages(cfg.Messages)
	if len(cfg.Engines) == 0 {
		cfg.Engines = wasm.Engines()
	}
	type engineRows struct {
		name      string
		mods      [2]*wasm.Module // fuel checks on, off
		warm      [2]samples
		warmCPU   [2]samples // messages per CPU-second of the process
		replay    samples
		replayCPU samples
		forks     samples
		restores  []restoreTimes
	}
	rows := make([]*engineRows, len(cfg.Engines))
	for j, e := range cfg.Engines {
		rows[j] = &engineRows{name: e}
		for i := range rows[j].mods {
			m, err := wasm.Compile(ctx, bin, wasm.Options{Format: cfg.Format, CacheDir: cfg.CacheDir, Uninterruptible: i == 1, Engine: e})
			if err != nil {
				return err
			}
			defer m.Close(ctx)
			rows[j].mods[i] = m
		}
	}
	turns := benchTurns{p: newPool(1, 0)}
	for range cfg.Rounds {
		for _, er := range rows {
			for i, m := range er.mods {
				// The checked module runs as the CU runs a message: under the
				// fuel limit, a wall-clock guard and a yield hook.
				icfg, hctx := wasm.Config{MemoryLimit: 1 << 30}, ctx
				if i == 0 {
					icfg.FuelLimit = uint64(DefaultMessageFuel)
					var cancel context.CancelFunc
					hctx, cancel = context.WithTimeout(wasm.WithYield(ctx, turns.yield), 5*time.Minute)
					defer cancel()
				}
				in, err := m.Instantiate(ctx, icfg)
				if err != nil {
					return err
				}
				replayStart, replayCPU := time.Now(), processCPU()
				for _, msg := range msgs[:2] { // boot, then the Ping handler
					if _, err := handleOK(hctx, in, msg); err != nil {
						return err
					}
				}
				start, startCPU := time.Now(), processCPU()
				for _, msg := range msgs[2:] {
					if _, err := handleOK(hctx, in, msg); err != nil {
						return err
					}
				}
				er.warm[i] = append(er.warm[i], float64(cfg.Messages)/time.Since(start).Seconds())
				er.warmCPU[i] = er.warmCPU[i].add(float64(cfg.Messages), processCPU()-startCPU)
				if i == 1 {
					in.Close(ctx)
					continue
				}
				er.replay = append(er.replay, float64(len(msgs))/time.Since(replayStart).Seconds())
				er.replayCPU = er.replayCPU.add(float64(len(msgs)), processCPU()-replayCPU)
				// A dry-run evaluates on a fork of the live memory.
				dryRuns := min(10, cfg.Messages)
				start = time.Now()
				for _, msg := range msgs[2 : 2+dryRuns] {
					f, err := m.Fork(ctx, wasm.Config{MemoryLimit: 1 << 30}, in)
					if err != nil {
						return err
					}
					_, err = handleOK(ctx, f, msg)
					f.Close(ctx)
					if err != nil {
						return err
					}
				}
				er.forks = append(er.forks, float64(dryRuns)/time.Since(start).Seconds())
				// A cold restore is of an evicted process: close the live one first.
				image, err := in.Snapshot()
				in.Close(ctx)
				if err != nil {
					return err
				}
				rt, err := benchRestore(ctx, m, image)
				if err != nil {
					return err
				}
				er.restores = append(er.restores, rt)
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "measurement (%s, %d Ping messages, median of %d)\tresult\n", filepath.Base(cfg.WasmPath), cfg.Messages, cfg.Rounds)
	row := func(name, value string) { fmt.Fprintf(tw, "%s\t%s\n", name, value) }
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	for _, er := range rows {
		a := "aonode (" + er.name + ")"
		row(a+", live instance, fuel limit and turns (as the CU runs)", er.warm[0].rate()+er.warmCPU[0].perCPU())
		row(a+", live instance, no fuel checks", er.warm[1].rate()+er.warmCPU[1].perCPU())
		row(a+", full replay from boot", er.replay.rate()+er.replayCPU.perCPU()+fmt.Sprintf(" (%d messages)", len(msgs)))
		row(a+", dry-runs (fork of the live memory, one Ping each)", er.forks.rate())
		restores := er.restores
		slices.SortFunc(restores, func(a, b restoreTimes) int { return cmp.Compare(a.total(), b.total()) })
		r := restores[len(restores)/2]
		row(a+", cold restore of a checkpoint", fmt.Sprintf("%d ms (%d–%d; %.0f MiB memory: read and hash %d ms, instantiate %d ms)",
			ms(r.total()), ms(restores[0].total()), ms(restores[len(restores)-1].total()), float64(r.size)/(1<<20), ms(r.read), ms(r.instantiate)))
	}
	if cfg.NodeDir == "" {
		return tw.Flush()
	}
	modes := []struct{ arg, name string }{
		{"bench-reload", "node ao-loader, memory in and out per message (reference CU default)"},
		{"bench", "node ao-loader, live instance"},
	}
	node := make([]samples, len(modes))
	nodeCPU := make([]samples, len(modes))
	var nodeReplay, nodeReplayCPU samples // of the live instance
	errs := make([]error, len(modes))
	for range cfg.Rounds {
		for i, mode := range modes {
			if errs[i] != nil {
				continue
			}
			r, err := nodeBench(ctx, cfg, mode.arg)
			if err != nil {
				errs[i] = err
				continue
			}
			node[i] = append(node[i], r.PerSecond)
			if r.CPUPerSecond > 0 {
				nodeCPU[i] = append(nodeCPU[i], r.CPUPerSecond)
			}
			if mode.arg == "bench" && r.ReplayPerSecond > 0 {
				nodeReplay = append(nodeReplay, r.ReplayPerSecond)
				if r.ReplayCPUPerSecond > 0 {
					nodeReplayCPU = append(nodeReplayCPU, r.ReplayCPUPerSecond)
				}
			}
		}
	}
	for i, mode := range modes {
		if errs[i] != nil {
			row(mode.name, "not measured: "+errs[i].Error())
			continue
		}
		row(mode.name, node[i].rate()+nodeCPU[i].perCPU())
	}
	if len(nodeReplay) > 0 {
		row("node ao-loader, live instance, full replay from boot", nodeReplay.rate()+nodeReplayCPU.perCPU()+fmt.Sprintf(" (%d messages)", len(msgs)))
	}
	return tw.Flush()
}

// samples are one row's measurements in messages per second.
type samples []float64

// add appends the rate of n messages in cpu of process CPU time (nothing
// where CPU time is not known).
func (s samples) add(n float64, cpu time.Duration) samples {
	if cpu <= 0 {
		return s
	}
	return append(s, n/cpu.Seconds())
}

// perCPU formats messages per CPU-second of the process (all its threads,
// the garbage collector's included): on a machine shared with other work,
// what the wall-clock rate would be on an idle core, and much steadier.
func (s samples) perCPU() string {
	if len(s) == 0 {
		return ""
	}
	s = slices.Clone(s)
	slices.Sort(s)
	if len(s) == 1 {
		return fmt.Sprintf("; %.0f per CPU-second", s[0])
	}
	return fmt.Sprintf("; %.0f per CPU-second (%.0f–%.0f)", s[len(s)/2], s[0], s[len(s)-1])
}

// rate formats the median and, with more than one sample, the range.
func (s samples) rate() string {
	s = slices.Clone(s)
	slices.Sort(s)
	if len(s) == 1 {
		return fmt.Sprintf("%.0f msg/s", s[0])
	}
	return fmt.Sprintf("%.0f msg/s (%.0f–%.0f)", s[len(s)/2], s[0], s[len(s)-1])
}

// restoreTimes are the phases of one cold restore.
type restoreTimes struct {
	read, instantiate time.Duration // read: decode and SHA-256
	size              int
}

func (r restoreTimes) total() time.Duration { return r.read + r.instantiate }

// benchRestore writes a checkpoint file and times reading (with the digest
// check) and instantiating it, as the CU does for an evicted process.
func benchRestore(ctx context.Context, m *wasm.Module, image []byte) (restoreTimes, error) {
	dir, err := os.MkdirTemp("", "aonode-bench")
	if err != nil {
		return restoreTimes{}, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "checkpoint")
	digest, err := writeMemory(path, image, nil)
	if err != nil {
		return restoreTimes{}, err
	}
	start := time.Now()
	im, err := readMemoryFile(path, len(image), digest)
	if err != nil {
		return restoreTimes{}, err
	}
	t1 := time.Now()
	in, err := m.RestoreImage(ctx, wasm.Config{MemoryLimit: 1 << 30}, im)
	if err != nil {
		return restoreTimes{}, err
	}
	end := time.Now()
	in.Close(ctx)
	return restoreTimes{read: t1.Sub(start), instantiate: end.Sub(t1), size: len(image)}, nil
}

// benchTurns is the CU's yield hook (handle) with nobody waiting: what a
// message pays for taking turns.
type benchTurns struct{ p *pool }

func (t benchTurns) yield() error {
	if t.p.contended() {
		t.p.release()
		return t.p.acquire(context.Background())
	}
	return nil
}

func handleOK(ctx context.Context, in *wasm.Instance, msg [2][]byte) (*wasm.Result, error) {
	r, err := in.Handle(ctx, msg[0], msg[1])
	if err != nil {
		return nil, err
	}
	if r.Failed() {
		return nil, fmt.Errorf("bench message failed: %s", r.Error)
	}
	return r, nil
}

// benchMessages returns boot, an Eval adding a Ping handler that replies, and
// n Pings, each with its env, as the CU would give them to handle().
func benchMessages(n int) [][2][]byte {
	const pid, owner, module = "BENCH_PROCESS_0000000000000000000000000000", "BENCH_OWNER_00000000000000000000000000000000", "BENCH_MODULE_000000000000000000000000000000"
	type tag struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	ptags := []tag{{"Data-Protocol", "ao"}, {"Variant", "ao.TN.1"}, {"Type", "Process"}, {"Module", module}, {"Scheduler", owner}}
	env, _ := json.Marshal(map[string]any{
		"Process": map[string]any{"Id": pid, "Owner": owner, "Tags": ptags},
		"Module":  map[string]any{"Id": module, "Owner": owner, "Tags": []tag{{"Module-Format", "wasm32-unknown-emscripten4"}}},
	})
	out := make([][2][]byte, 0, n+2)
	add := func(id, data string, tags []tag) {
		nonce := len(out)
		if id == "" {
			id = "BENCH_MESSAGE_" + strconv.Itoa(nonce)
			id += strings.Repeat("0", 43-len(id))
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(map[string]any{"Id": id, "Signature": "S", "Data": data, "Owner": owner, "Target": pid, "Anchor": "",
			"From": owner, "Tags": tags, "Epoch": 0, "Nonce": nonce, "Timestamp": 1_700_000_000_000 + int64(nonce),
			"Block-Height": 1, "Hash-Chain": "H", "Cron": false, "Read-Only": false})
		out = append(out, [2][]byte{bytes.TrimSpace(b.Bytes()), env})
	}
	add(pid, "", ptags)
	add("", `Handlers.add("ping", "Ping", function (m) m.reply({ Data = "pong" }) end)`, []tag{{"Action", "Eval"}})
	for range n {
		add("", "", []tag{{"Action", "Ping"}})
	}
	return out
}

// nodeResult is what interop/loader.js reports of one bench run: Pings per
// second of wall-clock and of the node process's CPU time, and the same for
// boot and Pings together (the live instance's full replay).
type nodeResult struct {
	PerSecond          float64 `json:"perSecond"`
	CPUPerSecond       float64 `json:"cpuPerSecond"`
	ReplayPerSecond    float64 `json:"replayPerSecond"`
	ReplayCPUPerSecond float64 `json:"replayCpuPerSecond"`
}

// nodeBench runs interop/loader.js in a bench mode.
func nodeBench(ctx context.Context, cfg BenchConfig, mode string) (nodeResult, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return nodeResult{}, errors.New("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(cfg.NodeDir, "node_modules", "@permaweb", "ao-loader")); err != nil {
		return nodeResult{}, fmt.Errorf("@permaweb/ao-loader is not installed in %s (npm ci there)", cfg.NodeDir)
	}
	path, err := filepath.Abs(cfg.WasmPath)
	if err != nil {
		return nodeResult{}, err
	}
	script := "loader.js"
	if strings.HasPrefix(cfg.Format, "wasm64") {
		script = "loader64.js"
	}
	cmd := exec.CommandContext(ctx, "node", script, mode, path, cfg.Format, strconv.Itoa(cfg.Messages))
	cmd.Dir = cfg.NodeDir
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		return nodeResult{}, fmt.Errorf("node %s: %w", script, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "@@ao "); ok {
			var r nodeResult
			if json.Unmarshal([]byte(rest), &r) == nil && r.PerSecond > 0 {
				return r, nil
			}
		}
	}
	return nodeResult{}, errors.New("no result from node")
}
