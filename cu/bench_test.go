package cu

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
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

// BenchmarkAttestations prints warm messages/s through the CU core with
// attestations on (result and memory digests kept per message, the item
// signed when asked for) and off, in one run, the two taking turns, for aos
// 2.0.4 on loopback. The "signed" row also signs every attestation (what
// PublishAttestations and a client reading every ao-attestation header
// cost), with an Ed25519 CU wallet. The CPU time per message (of the whole
// test process: SU and gateway included) is steadier than the rate on a
// shared machine.
//
//	go test ./cu -run '^$' -bench Attestations -benchtime 5x
func BenchmarkAttestations(b *testing.B) {
	n := newNetwork(b)
	pid := n.spawn()
	ctx := context.Background()
	const N = 200
	cus := []struct {
		name string
		cfg  Config
		sign bool
	}{
		{"off", Config{NoAttestations: true}, false},
		{"on", Config{Signer: cuKey("bench")}, false},
		{"signed", Config{Signer: cuKey("bench")}, true},
	}
	servers := make([]*Server, len(cus))
	for i, c := range cus {
		c.cfg.CheckpointEvery = -1
		servers[i], _ = n.newCU(c.cfg, false)
	}
	rates := make([][]float64, len(cus))
	cpus := make([][]float64, len(cus)) // CPU µs per message, of this whole process (SU and gateway included)
	for range b.N {
		var msgs []string
		for i := range N {
			msgs = append(msgs, n.send(pid, fmt.Sprint(i), ans104.Tag{Name: "Action", Value: "Ping"}))
		}
		for i, c := range cus {
			s := servers[i]
			if _, err := s.Result(ctx, pid, pid); err != nil { // warm: up to the process
				b.Fatal(err)
			}
			start, cpu0 := time.Now(), cpuTime()
			for _, m := range msgs {
				if _, err := s.Result(ctx, pid, m); err != nil {
					b.Fatal(err)
				}
				if c.sign {
					if _, _, err := s.Attest(ctx, pid, m); err != nil {
						b.Fatal(err)
					}
				}
			}
			rates[i] = append(rates[i], float64(N)/time.Since(start).Seconds())
			cpus[i] = append(cpus[i], float64((cpuTime()-cpu0).Microseconds())/N)
		}
	}
	for i, c := range cus {
		slices.Sort(rates[i])
		slices.Sort(cpus[i])
		b.ReportMetric(rates[i][len(rates[i])/2], "msgs/s-"+c.name)
		b.ReportMetric(cpus[i][len(cpus[i])/2], "cpu-µs/msg-"+c.name)
	}
}

// cpuTime is the CPU time this process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
