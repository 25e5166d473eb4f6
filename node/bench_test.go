package node

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/aonode/aonode/internal/interop"
)

// TestRunBench runs a small `aonode bench node` and checks its table: every
// row, and one evaluation per client message.
func TestRunBench(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	var out bytes.Buffer
	cfg := BenchConfig{WasmPath: interop.WaoModulePath(t, "aos2_0_4_32.wasm"), Messages: 20, Processes: 4, PerProcess: 3,
		Random: 6, Accesses: 12, RandomBudget: 8 << 20, Concurrency: 3, Idle: 5}
	if err := RunBench(context.Background(), cfg, &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[5], "5 aos processes spawned") || !strings.Contains(lines[4], "3 CUs") {
		t.Fatalf("want a header, 4 rows (the last over 3 CUs) and the idle line:\n%s", out.String())
	}
	for _, l := range lines[1:5] {
		f := strings.Fields(l)
		if evals := f[len(f)-1]; evals != "1.00" {
			t.Errorf("evaluations per message %s, want 1.00: %s", evals, l)
		}
	}
}
