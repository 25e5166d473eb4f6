package cu

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkEvictRestore evicts an aos process whose memory changed and brings
// it back, as a CU under a small memory budget does for every access.
func BenchmarkEvictRestore(b *testing.B) {
	n := newNetwork(b)
	s, cuURL := n.newCU(Config{MemoryBudget: 1 << 40}, false)
	pid := n.spawn()
	result(b, cuURL, pid, n.eval(pid, "X = 1"))
	var ev, re time.Duration
	for i := range b.N {
		result(b, cuURL, pid, n.eval(pid, fmt.Sprintf("X = %d", i)))
		s.cfg.MemoryBudget = 1
		t0 := time.Now()
		s.enforceBudget(context.Background())
		ev += time.Since(t0)
		s.cfg.MemoryBudget = 1 << 40
		t0 = time.Now()
		p, _ := s.process(context.Background(), pid)
		p.mu.Lock()
		if err := s.ensureInstance(context.Background(), p, latest); err != nil {
			b.Fatal(err)
		}
		p.mu.Unlock()
		re += time.Since(t0)
	}
	if s.metrics.restores.Load() != int64(b.N) {
		b.Fatalf("%d restores for %d evictions (%d evictions counted)", s.metrics.restores.Load(), b.N, s.metrics.evictions.Load())
	}
	b.ReportMetric(float64(ev.Microseconds())/float64(b.N)/1000, "evict-ms")
	b.ReportMetric(float64(re.Microseconds())/float64(b.N)/1000, "restore-ms")
}
