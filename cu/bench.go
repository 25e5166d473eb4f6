package cu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
	CacheDir string // wazero compilation cache
	// NodeDir is a directory with interop/loader.js and @permaweb/ao-loader
	// installed; "" (or no node) leaves out the reference rows.
	NodeDir string
}

// RunBench measures, in one run, one warm aos process answering Pings here
// (with deadline checks, and without), the same through node's ao-loader in
// the reference CU's default mode (memory passed in and out per message) and
// in its live-instance mode, the cold restore of a checkpoint, and a full
// replay, and prints a table to w.
func RunBench(ctx context.Context, cfg BenchConfig, w io.Writer) error {
	if cfg.Messages <= 0 {
		cfg.Messages = 1000
	}
	bin, err := os.ReadFile(cfg.WasmPath)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "measurement (%s, %d Ping messages)\tresult\n", filepath.Base(cfg.WasmPath), cfg.Messages)
	row := func(name, value string) { fmt.Fprintf(tw, "%s\t%s\n", name, value) }

	msgs := benchMessages(cfg.Messages)
	var image []byte
	for _, uninterruptible := range []bool{false, true} {
		m, err := wasm.Compile(ctx, bin, wasm.Options{Format: cfg.Format, CacheDir: cfg.CacheDir, Uninterruptible: uninterruptible})
		if err != nil {
			return err
		}
		in, err := m.Instantiate(ctx, wasm.Config{MemoryLimit: 1 << 30})
		if err != nil {
			return err
		}
		replayStart := time.Now()
		for _, msg := range msgs[:2] { // boot, then the Ping handler
			if _, err := handleOK(ctx, in, msg); err != nil {
				return err
			}
		}
		start := time.Now()
		for _, msg := range msgs[2:] {
			if _, err := handleOK(ctx, in, msg); err != nil {
				return err
			}
		}
		el := time.Since(start)
		name := "aonode, live instance, deadline checks on"
		if uninterruptible {
			name = "aonode, live instance, no deadline checks"
		}
		row(name, fmt.Sprintf("%.0f msg/s", float64(cfg.Messages)/el.Seconds()))
		if !uninterruptible {
			replay := time.Since(replayStart)
			row("aonode, full replay from boot", fmt.Sprintf("%.0f msg/s (%d messages in %v)", float64(len(msgs))/replay.Seconds(), len(msgs), replay.Round(time.Millisecond)))
			// A cold restore is of an evicted process: close the live one first.
			if image, err = in.Snapshot(); err != nil {
				return err
			}
			in.Close(ctx)
			restore, err := benchRestore(ctx, m, image)
			if err != nil {
				return err
			}
			row("aonode, cold restore of a checkpoint", restore)
		}
		in.Close(ctx)
		m.Close(ctx)
	}
	if cfg.NodeDir == "" {
		return tw.Flush()
	}
	for _, mode := range []struct{ arg, name string }{
		{"bench-reload", "node ao-loader, memory in and out per message (reference CU default)"},
		{"bench", "node ao-loader, live instance"},
	} {
		v, err := nodeBench(ctx, cfg, mode.arg)
		if err != nil {
			row(mode.name, "not measured: "+err.Error())
			continue
		}
		row(mode.name, fmt.Sprintf("%.0f msg/s", v))
	}
	return tw.Flush()
}

// benchRestore writes a checkpoint file and times reading, verifying and
// instantiating it, as the CU does for an evicted process.
func benchRestore(ctx context.Context, m *wasm.Module, image []byte) (string, error) {
	dir, err := os.MkdirTemp("", "aonode-bench")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "checkpoint")
	want := sha256.Sum256(image)
	if err := writeMemoryFile(path, image); err != nil {
		return "", err
	}
	start := time.Now()
	mem, err := readMemoryFile(path, len(image))
	if err != nil {
		return "", err
	}
	t1 := time.Now()
	if sha256.Sum256(mem) != want {
		return "", errors.New("checkpoint changed")
	}
	t2 := time.Now()
	in, err := m.RestoreOwned(ctx, wasm.Config{MemoryLimit: 1 << 30}, mem)
	if err != nil {
		return "", err
	}
	end := time.Now()
	in.Close(ctx)
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	return fmt.Sprintf("%d ms (%.0f MiB memory: read %d ms, verify %d ms, instantiate %d ms)",
		ms(end.Sub(start)), float64(len(image))/(1<<20), ms(t1.Sub(start)), ms(t2.Sub(t1)), ms(end.Sub(t2))), nil
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

// nodeBench runs interop/loader.js and returns its messages per second.
func nodeBench(ctx context.Context, cfg BenchConfig, mode string) (float64, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return 0, errors.New("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(cfg.NodeDir, "node_modules", "@permaweb", "ao-loader")); err != nil {
		return 0, fmt.Errorf("@permaweb/ao-loader is not installed in %s (npm ci there)", cfg.NodeDir)
	}
	path, err := filepath.Abs(cfg.WasmPath)
	if err != nil {
		return 0, err
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
		return 0, fmt.Errorf("node %s: %w", script, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "@@ao "); ok {
			var r struct {
				PerSecond float64 `json:"perSecond"`
			}
			if json.Unmarshal([]byte(rest), &r) == nil && r.PerSecond > 0 {
				return r.PerSecond, nil
			}
		}
	}
	return 0, errors.New("no result from node")
}
