package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestFuelLimitDeterministic runs a runaway message under a fuel limit, on an
// idle machine and with the evaluation slowed down at random between slices
// (as a loaded machine would), and requires the same failed result, the same
// memory afterwards, and a working process after it.
func TestFuelLimitDeterministic(t *testing.T) {
	const limit = 20_000_000_000
	type outcome struct {
		err    string
		gas    uint64
		mem    string
		after  string
		slices int
	}
	run := func(slow bool) outcome {
		in, s, env := booted(t, Config{FuelLimit: limit})
		mustHandle(t, in, s.eval(`X = 1; return X`), env)
		var slices int
		ctx := WithYield(context.Background(), func() error {
			slices++
			if slow && slices%8 == 0 {
				// Another goroutine burning the CPU, and a random pause.
				runtime.Gosched()
				time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
			}
			return nil
		})
		r, err := in.Handle(ctx, s.eval(`X = 2; local i = 0; while true do i = i + 1 end`), env)
		if err != nil {
			t.Fatalf("runaway: %v (want a failed result)", err)
		}
		if !r.Failed() || !strings.Contains(string(r.Error), ErrFuelExhausted.Error()) {
			t.Fatalf("runaway result %s", r.Error)
		}
		snap, err := in.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(snap)
		after := mustHandle(t, in, s.eval(`return X`), env)
		return outcome{err: string(r.Error), gas: r.GasUsed, mem: hex.EncodeToString(sum[:]), after: string(after.Output), slices: slices}
	}
	idle, loaded := run(false), run(true)
	if idle.slices < 10 {
		t.Fatalf("only %d slices: the yield hook is not called between slices", idle.slices)
	}
	idle.slices, loaded.slices = 0, 0
	if idle != loaded {
		t.Fatalf("idle and loaded runs differ:\n%+v\n%+v", idle, loaded)
	}
	var out struct {
		Data string `json:"data"`
	}
	json.Unmarshal([]byte(idle.after), &out)
	if !strings.HasSuffix(out.Data, "\n1") && out.Data != "1" {
		t.Fatalf("after the runaway X is %s, want 1 (rolled back)", idle.after)
	}
}

// TestFuelLimitLegitimate checks that a message within the limit is not
// affected by it and that a yield error aborts the message as an error, not a
// result.
func TestFuelLimitLegitimate(t *testing.T) {
	in, s, env := booted(t, Config{FuelLimit: 500_000_000_000})
	r := mustHandle(t, in, s.eval(`local n = 0 for i = 1, 300000 do n = n + i % 7 end return n`), env)
	if r.Failed() {
		t.Fatalf("legitimate message failed: %s", r.Error)
	}
	stop := errors.New("stop")
	_, err := in.Handle(WithYield(context.Background(), func() error { return stop }), s.eval(`while true do end`), env)
	if !errors.Is(err, stop) {
		t.Fatalf("yield error: got %v", err)
	}
	r = mustHandle(t, in, s.eval(`return 40 + 2`), env)
	if !bytes.Contains(r.Output, []byte("42")) {
		t.Fatalf("after an aborted message: %s", r.Output)
	}
}

// BenchmarkFuelRate measures how much fuel this machine burns per second on
// a Lua loop, to size the CU's default limits.
func BenchmarkFuelRate(b *testing.B) {
	const limit = 1_000_000_000
	in, s, env := booted(b, Config{FuelLimit: limit})
	msg := s.eval(`while true do end`)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		mustHandle(b, in, msg, env)
	}
	b.ReportMetric(float64(limit)*float64(b.N)/time.Since(start).Seconds()/1e9, "Gfuel/s")
}
