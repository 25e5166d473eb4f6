package su

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/wallet"
)

// BenchmarkSchedule reports assignments per second through the scheduler, and
// this process's CPU time per assignment, for one process and for 64, with
// Ed25519 SU and client wallets on the embedded store. For the full table
// (RSA, PostgreSQL, raw signing rate) run `aonode bench su`.
func BenchmarkSchedule(b *testing.B) {
	w, err := wallet.Generate(wallet.Ed25519)
	if err != nil {
		b.Fatal(err)
	}
	clients, err := newBenchClients(wallet.Ed25519)
	if err != nil {
		b.Fatal(err)
	}
	d := time.Duration(b.N) * time.Millisecond
	for _, n := range []int{1, 64} {
		run, err := benchScheduling(context.Background(), BenchConfig{Duration: d, Dir: b.TempDir(), Log: os.Stderr}, w, "sqlite", n, "b", clients)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(run.Rate, fmt.Sprintf("assign/s-%dprocs", n))
		b.ReportMetric(micros(run.CPUPerOp), fmt.Sprintf("cpu-µs/assign-%dprocs", n))
	}
}

// TestRunBench runs the whole benchmark briefly (Ed25519, embedded store) and
// checks the table it prints.
func TestRunBench(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	var out, log strings.Builder
	rs, err := RunBench(context.Background(), BenchConfig{Duration: 200 * time.Millisecond, Processes: 8, Wallets: []string{wallet.Ed25519},
		Clients: wallet.Ed25519, Stores: []string{"sqlite"}, Dir: t.TempDir(), Log: &log}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Err != nil || rs[0].RawSign <= 0 || rs[0].RawParallel <= 0 || rs[0].One <= 0 || rs[0].Many <= 0 {
		t.Fatalf("results %+v\n%s", rs, log.String())
	}
	for _, want := range []string{"clients sign with ed25519", "8 procs/s", "of raw", "ed25519   sqlite"} {
		if !contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
