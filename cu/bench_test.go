package cu

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkCU prints full replay rate, warm messages/s through the CU core
// and cold restore time from a checkpoint, for aos 2.0.4 on loopback.
//
//	go test ./cu -run '^$' -bench CU -benchtime 1x
func BenchmarkCU(b *testing.B) {
	n := newNetwork(b)
	pid := n.spawn()
	const N = 100
	var last string
	for i := 0; i < N; i++ {
		last = n.eval(pid, fmt.Sprintf("T = (T or 0) + %d; return T", i))
	}
	ctx := context.Background()
	for range b.N {
		s, _ := n.newCU(Config{CheckpointEvery: -1}, false)
		if _, err := s.process(ctx, pid); err != nil { // compile outside the timing
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := s.Result(ctx, pid, last); err != nil {
			b.Fatal(err)
		}
		replay := time.Since(start)
		b.ReportMetric(float64(N+1)/replay.Seconds(), "replay-msgs/s")

		for i := 0; i < N; i++ {
			last = n.eval(pid, fmt.Sprintf("T = T + %d; return T", i))
		}
		start = time.Now()
		if _, err := s.Result(ctx, pid, last); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(N)/time.Since(start).Seconds(), "warm-msgs/s")

		p, _ := s.process(ctx, pid)
		p.mu.Lock()
		s.checkpoint(ctx, p)
		p.inst.Close(ctx)
		p.inst = nil
		start = time.Now()
		if err := s.ensureInstance(ctx, p, latest); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "restore-ms")
		b.ReportMetric(float64(p.inst.MemorySize())/(1<<20), "memory-MiB")
		p.mu.Unlock()
	}
}
