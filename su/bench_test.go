package su

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/aonode/aonode/wallet"
)

// BenchmarkSchedule reports assignments per second through the scheduler for
// one process and for 64, with an Ed25519 SU wallet on the embedded store. For
// the full table (RSA, PostgreSQL, raw signing rate) run `aonode bench su`.
func BenchmarkSchedule(b *testing.B) {
	w, err := wallet.Generate(wallet.Ed25519)
	if err != nil {
		b.Fatal(err)
	}
	d := time.Duration(b.N) * time.Millisecond
	for _, n := range []int{1, 64} {
		rate, err := benchScheduling(context.Background(), BenchConfig{Duration: d, Dir: b.TempDir(), Log: os.Stderr}, w, "sqlite", n, "b")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(rate, map[int]string{1: "assign/s-1proc", 64: "assign/s-64procs"}[n])
	}
}
