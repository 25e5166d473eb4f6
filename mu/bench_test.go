package mu

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/internal/pgtest"
)

// TestBench runs the benchmark briefly (the numbers come from `aonode bench mu`
// or MU_BENCH=1 go test ./mu -run TestBench -v).
func TestBench(t *testing.T) {
	d := 300 * time.Millisecond
	if os.Getenv("MU_BENCH") != "" {
		d = 5 * time.Second
	}
	var out strings.Builder
	if err := RunBench(context.Background(), BenchConfig{Duration: d, Wallets: []string{"ed25519", "arweave"}, Concurrency: 8, Postgres: pgtest.URL(t)}, &out); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
}
