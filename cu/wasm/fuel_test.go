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
	const limit = 200_000_000_000 // large enough that the rollback after it costs little
	in, s, env := booted(b, Config{FuelLimit: limit})
	msg := s.eval(`while true do end`)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		mustHandle(b, in, msg, env)
	}
	b.ReportMetric(float64(limit)*float64(b.N)/time.Since(start).Seconds()/1e9, "Gfuel/s")
}

// TestResident checks that a booted aos instance holds far less than its
// linear memory, and that memory it writes counts.
func TestResident(t *testing.T) {
	in, s, env := booted(t, Config{})
	before, size := in.Resident(), in.MemorySize()
	t.Logf("booted aos: %d KiB resident of %d KiB", before>>10, size>>10)
	if before == size {
		t.Skip("no /proc/self/pagemap here")
	}
	if before == 0 || before >= size {
		t.Fatalf("resident %d of %d", before, size)
	}
	mustHandle(t, in, s.eval(`Big = string.rep("y", 20 * 1024 * 1024); return #Big`), env)
	if after := in.Resident(); after < before+20<<20 {
		t.Fatalf("resident %d after writing 20 MiB (was %d)", after, before)
	}
}

func BenchmarkResident(b *testing.B) {
	in, _, _ := booted(b, Config{})
	for range b.N {
		in.Resident()
	}
}

func TestTrapMessage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"wasm error: out of bounds memory access", "memory access out of bounds"},
		{"wasm error: integer divide by zero", "divide by zero"},
		{"wasm error: unreachable", "unreachable"},
		{"wasm error: stack overflow", "Maximum call stack size exceeded"},
		{"wasm error: something new", "wasm error: something new"},
		{"memcpy out of bounds", "memcpy out of bounds"},
	} {
		if got := trapMessage(tc.in); got != tc.want {
			t.Errorf("trapMessage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
